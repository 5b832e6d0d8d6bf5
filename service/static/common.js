// teleread — what every page's script shares: the page's language, time zone and translated
// strings, the JSON API, element building, and error and time texts. An ES module: page scripts
// `import { t, api } from "./common.js"` (the viewer's from "../common.js"); the browser runs it
// once per page however many modules import it. No inline code anywhere: the page's translated
// strings come from the <script type="application/json" id="i18n-strings"> block of base.html.
// The pure parts live in modules without DOM access that node tests: messages.js, people.js,
// times.js.

import { format } from "./messages.js";
import { personName } from "./people.js";
import {
  dateFormatter,
  dayStartIso as dayStartInZone,
  wallToUtcMs as wallToUtcInZone,
  zoneOffsetMs as zoneOffsetInZone,
} from "./times.js";

export { format, personName };

const body = document.body;
export const locale = body.dataset.locale || document.documentElement.lang || "en";
export const timeZone = body.dataset.timezone || undefined;

function readStrings() {
  const node = document.getElementById("i18n-strings");
  if (!node) return {};
  try {
    return JSON.parse(node.textContent || "{}");
  } catch (err) {
    console.error("teleread: bad i18n-strings block", err);
    return {};
  }
}

export const strings = readStrings();
const messages = Object.assign({}, strings.common || {}, strings.page || {});
const pluralRules = new Intl.PluralRules(locale);

/** Translated message by key (falls back to the key itself). */
export function t(key, vars) {
  const template = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
  return format(template, vars);
}

/** Plural message: strings.plurals[key] is {one, other}; `n` is also passed as {n}. */
export function plural(key, n, vars) {
  const forms = (strings.plurals || {})[key] || {};
  const template = forms[pluralRules.select(n)] || forms.other || key;
  return format(template, Object.assign({ n }, vars || {}));
}

/** Translated label from one of the code maps (status, priority, body_part, reasons). */
export function label(map, code) {
  if (code === null || code === undefined || code === "") return "";
  const table = strings[map] || {};
  return Object.prototype.hasOwnProperty.call(table, code) ? table[code] : String(code);
}

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

/**
 * fetch() wrapper for the JSON API. Resolves to {ok, status, data} (data is the parsed
 * JSON body or null); rejects only on network failure or abort.
 */
export async function api(url, { method = "GET", json, signal } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", signal };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const response = await fetch(url, init);
  let data = null;
  if ((response.headers.get("Content-Type") || "").includes("json")) {
    try {
      data = await response.json();
    } catch (_err) {
      data = null;
    }
  }
  return { ok: response.ok, status: response.status, data };
}

/** api() that answers {ok: false, status: 0, data: null} when the network fails, instead of
 *  rejecting: one code path for every failure. */
export async function apiAnswer(url, options) {
  try {
    return await api(url, options);
  } catch (_err) {
    return { ok: false, status: 0, data: null };
  }
}

/**
 * The sentence to show for a failed API answer ({ok, status, data} of api(); status 0 when the
 * network failed). A lost connection and an expired session read the same on every page; an
 * answer whose `error` code is one of the page's `codes` ({code: message key}) gets that message;
 * anything else the page's `fallbackKey`. Messages may use {status}, {detail} and {seconds} (the
 * answer's retry_after).
 */
export function errorText(result, fallbackKey, codes = {}) {
  const data = result.data || {};
  if (result.status === 0) return t("network_error");
  if (result.status === 401) return t("session_expired");
  const vars = { status: result.status, detail: data.detail || "", seconds: data.retry_after || 60 };
  if (typeof data.error === "string" && Object.hasOwn(codes, data.error)) {
    return t(codes[data.error], vars);
  }
  return t(fallbackKey, { ...vars, detail: data.detail || data.error || "" });
}

/** The element with this id (null when the page has none). */
export function $(id) {
  return document.getElementById(id);
}

/** Go to the login page, coming back here afterwards. */
export function redirectToLogin() {
  const here = location.pathname + location.search;
  location.assign("/login?next=" + encodeURIComponent(here));
}

/** Only same-origin absolute paths ("/x"), never "//host" or "/\host". */
export function safeNextPath(candidate, fallback = "/worklist") {
  if (typeof candidate !== "string" || !candidate.startsWith("/")) return fallback;
  // eslint-disable-next-line no-control-regex -- control characters are what is refused here
  if (candidate.startsWith("//") || /[\\\u0000-\u001f\u007f]/.test(candidate)) return fallback;
  try {
    const url = new URL(candidate, location.origin);
    if (url.origin !== location.origin) return fallback;
    return url.pathname + url.search + url.hash;
  } catch (_err) {
    return fallback;
  }
}

/** createElement helper: el("td", {className: "x", dataset: {a: "1"}}, "text", node). */
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null) continue;
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "className") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key in node) node[key] = value;
      else node.setAttribute(key, value);
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Milliseconds the zone (default: the facility's) is ahead of UTC at the instant `utcMs`. */
export function zoneOffsetMs(utcMs, zone = timeZone) {
  return zoneOffsetInZone(utcMs, zone);
}

/** A wall time in the zone (default: the facility's), given as if it were UTC → the instant. */
export function wallToUtcMs(wallAsUtcMs, zone = timeZone) {
  return wallToUtcInZone(wallAsUtcMs, zone);
}

/** The first instant of the day "YYYY-MM-DD" (+ `addDays`) in the facility's zone, ISO UTC. */
export function dayStartIso(day, addDays, zone = timeZone) {
  return dayStartInZone(day, addDays, zone);
}

/** ISO-8601 timestamp → short date and time in the facility's time zone ("" if none). */
export const formatDateTime = dateFormatter(locale, timeZone, { dateStyle: "short", timeStyle: "short" });

/** ISO-8601 timestamp → month, day and time without the year, for dense tables ("" if none). */
export const formatShortDateTime = dateFormatter(locale, timeZone, {
  month: "numeric",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});

/** A Date → its time of day (with seconds) in the facility's zone. */
export const formatTime = dateFormatter(locale, timeZone, { timeStyle: "medium" });

/** Byte count → "812 KB", "1.2 MB" in the page locale. */
export function formatBytes(bytes) {
  const units = ["byte", "kilobyte", "megabyte", "gigabyte"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return new Intl.NumberFormat(locale, {
    style: "unit",
    unit: units[unit],
    unitDisplay: "short",
    maximumFractionDigits: unit === 0 ? 0 : 1,
  }).format(value);
}

/** Message in the shared #app-status line (empty string clears it). */
export function showStatus(text) {
  const node = document.getElementById("app-status");
  if (node && node.textContent !== text) node.textContent = text;
}
