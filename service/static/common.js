// teleread — shared helpers for every page (loaded with `defer` before the page script).
// Exposes window.teleread. No inline code anywhere: the page's translated strings come from
// the <script type="application/json" id="i18n-strings"> block rendered by base.html.
"use strict";

(() => {
  const body = document.body;
  const locale = body.dataset.locale || document.documentElement.lang || "en";
  const timeZone = body.dataset.timezone || undefined;

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

  const strings = readStrings();
  const messages = Object.assign({}, strings.common || {}, strings.page || {});
  const pluralRules = new Intl.PluralRules(locale);

  /** Replace {name} placeholders; unknown names are left as they are. */
  function format(template, vars) {
    if (!vars) return template;
    return template.replace(/\{(\w+)\}/g, (whole, name) =>
      Object.prototype.hasOwnProperty.call(vars, name) ? String(vars[name]) : whole,
    );
  }

  /** Translated message by key (falls back to the key itself). */
  function t(key, vars) {
    const template = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
    return format(template, vars);
  }

  /** Plural message: strings.plurals[key] is {one, other}; `n` is also passed as {n}. */
  function plural(key, n, vars) {
    const forms = (strings.plurals || {})[key] || {};
    const template = forms[pluralRules.select(n)] || forms.other || key;
    return format(template, Object.assign({ n }, vars || {}));
  }

  /** A DICOM person name as people write it: "WANG^FANG" → "WANG FANG", "王^芳" → "王芳" (no
   *  space in Chinese names, as on the PDF); component groups ("ZHANG^SAN=张^三") all kept. */
  function personName(name) {
    return (name || "")
      .split("=")
      .map((group) => {
        const parts = group.split("^").map((p) => p.trim()).filter(Boolean);
        return parts.join(/[\u3400-\u9fff]/.test(group) ? "" : " ");
      })
      .filter(Boolean)
      .join(" = ");
  }

  /** Translated label from one of the code maps (status, priority, body_part, reasons). */
  function label(map, code) {
    if (code === null || code === undefined || code === "") return "";
    const table = strings[map] || {};
    return Object.prototype.hasOwnProperty.call(table, code) ? table[code] : String(code);
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  /**
   * fetch() wrapper for the JSON API. Resolves to {ok, status, data} (data is the parsed
   * JSON body or null); rejects only on network failure or abort.
   */
  async function api(url, { method = "GET", json, signal } = {}) {
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

  /** Go to the login page, coming back here afterwards. */
  function redirectToLogin() {
    const here = location.pathname + location.search;
    location.assign("/login?next=" + encodeURIComponent(here));
  }

  /** Only same-origin absolute paths ("/x"), never "//host" or "/\host". */
  function safeNextPath(candidate, fallback = "/worklist") {
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
  function el(tag, props, ...children) {
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

  /** Milliseconds the zone (default: the facility's) is ahead of UTC at the instant `utcMs`,
   *  to the minute. Throws RangeError for a zone the browser does not know. */
  function zoneOffsetMs(utcMs, zone = timeZone) {
    const parts = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    }).formatToParts(new Date(utcMs));
    const v = Object.fromEntries(parts.map((p) => [p.type, Number(p.value)]));
    const wall = Date.UTC(v.year, v.month - 1, v.day, v.hour, v.minute, v.second);
    return Math.round((wall - Math.floor(utcMs / 1000) * 1000) / 60000) * 60000;
  }

  /** A wall time in the zone, given as if it were UTC (`Date.UTC(...)`), → the UTC instant.
   *  Two passes, so that a daylight-saving change between the two readings is honoured. */
  function wallToUtcMs(wallAsUtcMs, zone = timeZone) {
    const first = wallAsUtcMs - zoneOffsetMs(wallAsUtcMs, zone);
    return wallAsUtcMs - zoneOffsetMs(first, zone);
  }

  function makeDateFormat(options) {
    try {
      return new Intl.DateTimeFormat(locale, Object.assign({ timeZone }, options));
    } catch (_err) {
      // Unknown IANA zone in the facility record: fall back to the browser's zone.
      return new Intl.DateTimeFormat(locale, options);
    }
  }

  const dateTimeFormat = makeDateFormat({ dateStyle: "short", timeStyle: "short" });
  const timeFormat = makeDateFormat({ timeStyle: "medium" });

  /** ISO-8601 timestamp → short date and time in the facility's time zone ("" if none). */
  function formatDateTime(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? "" : dateTimeFormat.format(date);
  }

  const shortDateTimeFormat = makeDateFormat({
    month: "numeric",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });

  /** ISO-8601 timestamp → month, day and time without the year, for dense tables ("" if none). */
  function formatShortDateTime(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? "" : shortDateTimeFormat.format(date);
  }

  function formatTime(date) {
    return timeFormat.format(date);
  }

  /** Byte count → "812 KB", "1.2 MB" in the page locale. */
  function formatBytes(bytes) {
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
  function showStatus(text) {
    const node = document.getElementById("app-status");
    if (node && node.textContent !== text) node.textContent = text;
  }

  // Logout button: POST /api/logout, then the login page whatever the answer.
  const logoutButton = document.getElementById("logout-button");
  if (logoutButton) {
    logoutButton.addEventListener("click", async () => {
      logoutButton.disabled = true;
      showStatus(t("logging_out"));
      try {
        await api("/api/logout", { method: "POST" });
        location.assign("/login");
      } catch (_err) {
        logoutButton.disabled = false;
        showStatus(t("network_error"));
      }
    });
  }

  // Language links keep the rest of the query string (e.g. worklist filters).
  for (const link of document.querySelectorAll("a[data-lang]")) {
    link.addEventListener("click", (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
      event.preventDefault();
      const url = new URL(location.href);
      url.searchParams.set("lang", link.dataset.lang);
      location.assign(url.pathname + url.search + url.hash);
    });
  }

  window.teleread = Object.freeze({
    locale,
    timeZone,
    strings,
    t,
    plural,
    label,
    personName,
    format,
    csrfToken,
    api,
    el,
    redirectToLogin,
    safeNextPath,
    formatDateTime,
    formatShortDateTime,
    formatTime,
    formatBytes,
    showStatus,
    zoneOffsetMs,
    wallToUtcMs,
  });
})();
