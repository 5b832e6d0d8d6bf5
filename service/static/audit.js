// teleread — audit trail search (managers and administrators). GET /api/audit with the form's
// filters, page by page with the answer's `next` cursor; the CSV link carries the same filters to
// GET /api/audit.csv. Dates are whole days in the user's facility time zone, sent as UTC instants
// ("from" = that day's first instant, "to" = the first instant of the day after).

import { api, apiAnswer, dayStartIso, el, formatDateTime, label, redirectToLogin, t } from "./common.js";

const PAGE_SIZE = 100;
const TEXT_FILTERS = ["patient_id", "user", "facility", "action", "outcome"];
const DATE_FILTERS = ["from", "to"];

const form = document.getElementById("audit-form");
const table = document.getElementById("audit-results");
const tbody = table.tBodies[0];
const errorBox = document.getElementById("audit-error");
const emptyBox = document.getElementById("audit-empty");
const countBox = document.getElementById("audit-count");
const moreButton = document.getElementById("audit-more");
const csvLink = document.getElementById("audit-csv");
const facilitySelect = document.getElementById("audit-facility");

const facilityNames = new Map();
const state = { next: null, shown: 0, generation: 0 };

// ---- form <-> query -----------------------------------------------------------------------

function formFilters() {
  const filters = {};
  for (const name of [...TEXT_FILTERS, ...DATE_FILTERS]) {
    const value = form.elements[name].value.trim();
    if (value) filters[name] = value;
  }
  return filters;
}

/** Query parameters of the API for the form's filters (dates converted). */
function apiParams(filters) {
  const params = new URLSearchParams();
  for (const name of TEXT_FILTERS) if (filters[name]) params.set(name, filters[name]);
  if (filters.from) params.set("from", dayStartIso(filters.from, 0));
  if (filters.to) params.set("to", dayStartIso(filters.to, 1));
  return params;
}

function readFormFromUrl() {
  const params = new URLSearchParams(location.search);
  for (const name of [...TEXT_FILTERS, ...DATE_FILTERS]) {
    const value = params.get(name);
    if (value) form.elements[name].value = value;
  }
}

function writeFormToUrl(filters) {
  const url = new URL(location.href);
  for (const name of [...TEXT_FILTERS, ...DATE_FILTERS]) {
    if (filters[name]) url.searchParams.set(name, filters[name]);
    else url.searchParams.delete(name);
  }
  url.searchParams.delete("lang");
  history.replaceState(null, "", url.pathname + url.search + url.hash);
}

// ---- rendering ----------------------------------------------------------------------------

function detailText(detail) {
  if (!detail || (typeof detail === "object" && !Object.keys(detail).length)) return "";
  return typeof detail === "string" ? detail : JSON.stringify(detail);
}

/** The technical detail (JSON with code-like keys) folded away: an auditor opens it on demand,
 * and the row itself reads in words. */
function detailBox(detail) {
  if (!detail) return "";
  return el("details", {}, el("summary", { text: t("detail_show") }), el("code", { text: detail }));
}

function buildRow(item) {
  const row = el("tr", {
    className: "audit-row",
    dataset: { id: String(item.id), action: item.action || "", outcome: item.outcome || "" },
  });
  const when = formatDateTime(item.at);
  const facility =
    item.facility_id === null || item.facility_id === undefined
      ? ""
      : facilityNames.get(item.facility_id) || `#${item.facility_id}`;
  const resource = [label("resources", item.resource_type), item.resource_id].filter(Boolean).join(" ");
  const detail = detailText(item.detail);
  const user = el("td", { className: "col-user" }, el("div", { text: item.username || "—" }));
  if (item.role) user.append(el("div", { className: "muted", text: label("roles", item.role) }));
  const patient = el("td", { className: "col-patient" }, el("div", { text: item.patient_id || "" }));
  if (item.study_instance_uid) {
    patient.append(el("div", { className: "uid", text: item.study_instance_uid }));
  }
  row.append(
    el(
      "td",
      { className: "col-time" },
      when ? el("time", { dateTime: item.at, title: item.at, text: when }) : item.at || "",
    ),
    user,
    el("td", { className: "col-facility", text: facility }),
    el("td", { className: "col-action", title: item.action || "", text: label("actions", item.action) }),
    el("td", { className: "col-resource", text: resource }),
    patient,
    el(
      "td",
      { className: "col-outcome" },
      el("span", {
        className: `outcome outcome-${item.outcome}`,
        text: label("outcomes", item.outcome),
      }),
    ),
    el("td", { className: "col-ip", text: item.client_ip || "" }),
    el("td", { className: "col-detail" }, detailBox(detail)),
  );
  return row;
}

// ---- searching ----------------------------------------------------------------------------

async function fetchPage(params, cursor) {
  const query = new URLSearchParams(params);
  query.set("limit", String(PAGE_SIZE));
  if (cursor) query.set("cursor", cursor);
  return apiAnswer(`/api/audit?${query}`);
}

function showFailure(result) {
  if (result.status === 401) {
    redirectToLogin();
    return;
  }
  if (result.status === 0) errorBox.textContent = t("network_error");
  else if (result.status === 404 || result.status === 405) errorBox.textContent = t("unavailable");
  else if (result.status === 403) errorBox.textContent = t("forbidden");
  else {
    const detail = result.data && result.data.detail;
    errorBox.textContent = t("search_failed", { status: result.status }) + (detail ? ` ${detail}` : "");
  }
}

function showPage(data, append) {
  const rows = (data.items || []).map(buildRow);
  if (append) tbody.append(...rows);
  else tbody.replaceChildren(...rows);
  state.shown = tbody.rows.length;
  state.next = data.next || null;
  moreButton.hidden = !state.next;
  emptyBox.hidden = state.shown > 0;
  emptyBox.textContent = state.shown ? "" : t("empty");
  countBox.textContent = t("shown", { n: state.shown });
}

async function search() {
  const filters = formFilters();
  if (filters.from && filters.to && filters.from > filters.to) {
    errorBox.textContent = t("bad_dates");
    return;
  }
  writeFormToUrl(filters);
  const params = apiParams(filters);
  csvLink.href = `/api/audit.csv${params.toString() ? `?${params}` : ""}`;
  state.params = params;
  const generation = ++state.generation;
  table.setAttribute("aria-busy", "true");
  countBox.textContent = t("loading");
  const result = await fetchPage(params, null);
  if (generation !== state.generation) return;
  table.setAttribute("aria-busy", "false");
  if (!result.ok || !result.data) {
    countBox.textContent = "";
    tbody.replaceChildren();
    moreButton.hidden = true;
    showFailure(result);
    return;
  }
  errorBox.textContent = "";
  showPage(result.data, false);
}

async function loadMore() {
  if (!state.next) return;
  moreButton.disabled = true;
  const generation = state.generation;
  const result = await fetchPage(state.params, state.next);
  moreButton.disabled = false;
  if (generation !== state.generation) return;
  if (!result.ok || !result.data) {
    showFailure(result);
    return;
  }
  showPage(result.data, true);
}

async function loadFacilities() {
  let result;
  try {
    result = await api("/api/facilities");
  } catch (_err) {
    return;
  }
  if (!result.ok || !result.data) return;
  const wanted = new URLSearchParams(location.search).get("facility") || "";
  for (const facility of result.data.items || []) {
    facilityNames.set(facility.id, facility.name);
    facilitySelect.append(
      el("option", {
        value: String(facility.id),
        text: facility.name,
        selected: String(facility.id) === wanted,
      }),
    );
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  search();
});
moreButton.addEventListener("click", loadMore);

readFormFromUrl();
loadFacilities().then(search);
