// teleread — the duty roster page (regional managers, admins). Lists GET /api/roster: shifts
// running now or starting within 7 days, and who is on duty now; adds shifts with POST
// /api/roster and removes them with DELETE /api/roster/{id}. Shift times are typed and shown
// in the facility's time zone (body[data-timezone]), whatever the computer's zone is.

import { api, el, formatDateTime, label, redirectToLogin, t, wallToUtcMs, zoneOffsetMs } from "./common.js";

const WEEK_MS = 7 * 24 * 3600 * 1000;
const table = document.getElementById("roster");
const tbody = table.tBodies[0];
const form = document.getElementById("roster-form");
const person = document.getElementById("roster-person");
const formError = document.getElementById("roster-form-error");
const formStatus = document.getElementById("roster-form-status");
const listError = document.getElementById("roster-error");
const emptyBox = document.getElementById("roster-empty");
const onDutyBox = document.getElementById("roster-on-duty");
const zone = document.body.dataset.timezone || undefined;
let people = new Map();

// ---- time zone arithmetic (wall time in the facility's zone <-> UTC) ----------------

/** "2026-12-01T08:00" typed as the facility's wall time → ISO 8601 UTC, or null. */
function wallToIso(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(value || "");
  if (!m) return null;
  const asUtc = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
  return new Date(wallToUtcMs(asUtc, zone)).toISOString();
}

/** An instant → "YYYY-MM-DDTHH:MM" wall time in the facility's zone (input value). */
function isoToWall(ms) {
  const local = new Date(ms + zoneOffsetMs(ms, zone));
  return local.toISOString().slice(0, 16);
}

// ---- rendering ------------------------------------------------------------------------

function personName(userId) {
  const p = people.get(userId);
  return p ? p.display_name || p.username : `#${userId}`;
}

function buildRow(entry) {
  const row = el("tr", {
    className: "roster-row",
    dataset: { entryId: String(entry.id), userId: String(entry.user_id) },
  });
  const name = entry.display_name || entry.username;
  const remove = el("button", {
    type: "button",
    className: "button button-small roster-remove",
    text: t("remove"),
  });
  remove.addEventListener("click", () => removeEntry(entry, remove));
  row.append(
    el("td", { className: "col-person", text: name }),
    el("td", { className: "col-duty", text: label("duty", entry.role_on_duty) }),
    el("td", { className: "col-starts" }, timeNode(entry.starts_at)),
    el("td", { className: "col-ends" }, timeNode(entry.ends_at)),
    el("td", { className: "col-actions" }, remove),
  );
  return row;
}

function timeNode(iso) {
  return el("time", { dateTime: iso, title: iso, text: formatDateTime(iso) });
}

function renderOnDuty(onDuty) {
  onDutyBox.textContent = onDuty.length
    ? `${t("on_duty_now")}: ${onDuty
        .map((d) => `${personName(d.user_id)} (${label("duty", d.role_on_duty)})`)
        .join(", ")}`
    : t("nobody_on_duty");
}

// ---- loading ----------------------------------------------------------------------------

async function fetchJson(url) {
  const result = await api(url);
  if (result.status === 401) {
    redirectToLogin();
    return null;
  }
  if (!result.ok || !result.data) {
    listError.textContent =
      result.status === 403 ? t("forbidden") : t("load_failed", { status: result.status });
    return null;
  }
  return result.data;
}

async function loadPeople() {
  const data = await fetchJson("/api/roster/people");
  if (!data) return;
  people = new Map(data.items.map((p) => [p.id, p]));
  person.replaceChildren(
    ...data.items.map((p) =>
      el("option", {
        value: String(p.id),
        text: p.display_name || p.username,
        dataset: { role: p.role },
      }),
    ),
  );
  syncDuty();
}

async function load() {
  table.setAttribute("aria-busy", "true");
  try {
    const data = await fetchJson("/api/roster");
    if (!data) return;
    listError.textContent = "";
    const horizon = Date.now() + WEEK_MS;
    const shown = data.items.filter((e) => Date.parse(e.starts_at) < horizon);
    tbody.replaceChildren(...shown.map(buildRow));
    emptyBox.hidden = shown.length > 0;
    emptyBox.textContent = shown.length ? "" : t("empty");
    renderOnDuty(data.on_duty || []);
  } catch (_err) {
    listError.textContent = t("network_error");
  } finally {
    table.setAttribute("aria-busy", "false");
  }
}

// ---- changes ----------------------------------------------------------------------------

/** A manager goes on duty as a manager, a specialist as a reader (the API's rule). */
function syncDuty() {
  const option = person.selectedOptions[0];
  if (option) form.elements.role_on_duty.value = option.dataset.role === "manager" ? "manager" : "reader";
}

person.addEventListener("change", syncDuty);

function problem(result) {
  const data = result.data || {};
  if (result.status === 400) return t("invalid", { detail: data.detail || "" });
  if (result.status === 403) return t("forbidden");
  return t("failed", { status: result.status });
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  formError.textContent = "";
  formStatus.textContent = "";
  const startsAt = wallToIso(form.elements.starts_at.value);
  const endsAt = wallToIso(form.elements.ends_at.value);
  if (!person.value || !startsAt || !endsAt) {
    formError.textContent = t("missing_fields");
    return;
  }
  const submit = document.getElementById("roster-submit");
  submit.disabled = true;
  try {
    const result = await api("/api/roster", {
      method: "POST",
      json: {
        user_id: Number(person.value),
        role_on_duty: form.elements.role_on_duty.value,
        starts_at: startsAt,
        ends_at: endsAt,
      },
    });
    if (result.status === 401) return redirectToLogin();
    if (!result.ok) {
      formError.textContent = problem(result);
      return;
    }
    formStatus.textContent = t("added");
    await load();
  } catch (_err) {
    formError.textContent = t("network_error");
  } finally {
    submit.disabled = false;
  }
});

async function removeEntry(entry, button) {
  button.disabled = true;
  formStatus.textContent = "";
  try {
    const result = await api(`/api/roster/${entry.id}`, { method: "DELETE" });
    if (result.status === 401) return redirectToLogin();
    if (!result.ok && result.status !== 404) {
      listError.textContent = problem(result);
      button.disabled = false;
      return;
    }
    formStatus.textContent = t("removed");
    await load();
  } catch (_err) {
    listError.textContent = t("network_error");
    button.disabled = false;
  }
}

// Default shift: the next full hour, for 8 hours.
const nextHour = Math.ceil(Date.now() / 3600000) * 3600000;
form.elements.starts_at.value = isoToWall(nextHour);
form.elements.ends_at.value = isoToWall(nextHour + 8 * 3600000);

(async () => {
  await loadPeople();
  await load();
})();
