// The centre's dashboard: applies the chosen period (whole days in the facility's time zone) to
// the chart pictures (server-side SVG) and fills the tables from the turnaround API. No inline
// code (strict CSP).

import { api, dayStartIso, el, formatDateTime, label, redirectToLogin, t, zoneOffsetMs } from "./common.js";

const form = document.getElementById("dashboard-form");
const error = document.getElementById("dashboard-error");
const DAY = 86400000;

/** "2026-12-02" of a wall time given as if it were UTC. */
function isoDay(wallAsUtc) {
  return new Date(wallAsUtc).toISOString().slice(0, 10);
}

/** The period as API parameters: [first instant of "from", first instant after "to"). */
function period() {
  const params = new URLSearchParams();
  params.set("from", dayStartIso(form.elements.from.value, 0));
  params.set("to", dayStartIso(form.elements.to.value, 1));
  return params;
}

/** A duration as people read it against a 20-minute stat target: whole minutes below 2 h,
 * hours to one decimal above; never negative (clock skew between events is not time). */
function hours(seconds) {
  if (seconds === null) return "–";
  const s = Math.max(0, seconds);
  if (s < 7200) return t("minutes", { n: Math.round(s / 60) });
  return t("hours", { n: (s / 3600).toFixed(1) });
}

async function load(url) {
  const answer = await api(url);
  if (answer.status === 401) redirectToLogin();
  if (!answer.ok) throw new Error(t("failed", { status: answer.status }));
  return answer.data;
}

function fill(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows);
}

function tatRows(data) {
  const rows = [];
  for (const group of data.groups) {
    for (const [stage, s] of Object.entries(group.stages)) {
      rows.push(
        el("tr", null,
          el("td", { text: label("priority", group.group.priority) }),
          el("td", { text: label("stages", stage) }),
          el("td", { text: String(s.count) }),
          el("td", { text: hours(s.p50) }),
          el("td", { text: hours(s.p90) }),
          el("td", { text: hours(s.p95) })),
      );
    }
  }
  // Two-level sign-off: the writer's reading and the wait for review, over every priority.
  for (const [stage, s] of Object.entries(data.review_stages || {})) {
    if (!s.count) continue;
    rows.push(
      el("tr", { dataset: { reviewStage: stage } },
        el("td", { text: t("all_priorities") }),
        el("td", { text: label("stages", stage) }),
        el("td", { text: String(s.count) }),
        el("td", { text: hours(s.p50) }),
        el("td", { text: hours(s.p90) }),
        el("td", { text: hours(s.p95) })),
    );
  }
  return rows;
}

function slaRows(data) {
  return data.groups.map((g) =>
    el("tr", null,
      el("td", { text: g.group.facility_name || t("unnamed") }),
      el("td", { text: label("priority", g.group.priority) }),
      el("td", { text: String(g.decided) }),
      el("td", { text: String(g.met) }),
      el("td", { text: g.share_met === null ? "–" : t("percent", { n: (g.share_met * 100).toFixed(1) }) })),
  );
}

function breachRows(data) {
  return data.items.map((b) =>
    el("tr", null,
      el("td", null, el("a", { href: `/consultations/${b.consultation_id}`, text: `#${b.consultation_id}` })),
      el("td", { text: b.facility }),
      el("td", { text: label("priority", b.priority) }),
      el("td", { text: formatDateTime(b.due_at) }),
      el("td", { text: hours(b.late_seconds) }),
      el("td", { text: label("breach_stages", b.stage) })),
  );
}

async function refresh() {
  error.textContent = "";
  if (form.elements.from.value > form.elements.to.value) {
    error.textContent = t("bad_dates");
    return;
  }
  const params = period();
  for (const img of document.querySelectorAll("img[data-chart]")) {
    img.src = `/dashboard/charts/${img.dataset.chart}.svg?${params}`;
  }
  document.getElementById("dashboard-tat-csv").href =
    `/api/turnaround?group_by=facility,priority&format=csv&${params}`;
  document.getElementById("dashboard-workload-csv").href = `/api/turnaround/workload.csv?${params}`;
  try {
    const [tat, sla, breaches] = await Promise.all([
      load(`/api/turnaround?group_by=priority&${params}`),
      load(`/api/turnaround/sla?group_by=facility,priority&${params}`),
      load(`/api/turnaround/breaches?limit=50&${params}`),
    ]);
    fill("dashboard-tat", tatRows(tat));
    fill("dashboard-sla", slaRows(sla));
    fill("dashboard-breaches", breachRows(breaches));
    const none = document.getElementById("dashboard-no-breaches");
    none.hidden = breaches.items.length > 0;
    none.textContent = t("no_breaches");
    document.body.dataset.loaded = "yes";
  } catch (err) {
    error.textContent = err.message;
  }
}

const now = Date.now();
const today = now + zoneOffsetMs(now); // the facility's wall clock, as if it were UTC
form.elements.to.value = isoDay(today);
form.elements.from.value = isoDay(today - 29 * DAY);
form.addEventListener("submit", (event) => {
  event.preventDefault();
  refresh();
});
refresh();
