// teleread — the HL7 results outbox on the facilities page: GET /api/admin/hl7-outbox (optionally
// ?status=pending|sent|failed) lists each ORU^R01 sent to a facility's HIS, waiting, or failed
// with the reason; POST /api/admin/hl7-outbox/{id}/retry sends a failed one again. Its strings
// are the template's `hl7` and `hl7_status` tables (label()), apart from the facility form's.

import {
  apiAnswer,
  el,
  format,
  formatDateTime,
  label,
  personName,
  redirectToLogin,
  t,
} from "./common.js";

const table = document.getElementById("hl7-outbox");
const filter = document.getElementById("hl7-status");
const errorBox = document.getElementById("hl7-error");
const emptyBox = document.getElementById("hl7-empty");

function text(key, vars) {
  return format(label("hl7", key), vars || {});
}

function when(stamp) {
  const shown = formatDateTime(stamp);
  return shown ? el("time", { dateTime: stamp, text: shown }) : "";
}

function problem(result) {
  if (result.status === 401) redirectToLogin();
  if (result.status === 0) return t("network_error");
  const detail = (result.data && (result.data.detail || result.data.error)) || "";
  return text("failed", { status: result.status, detail });
}

async function retry(item, button) {
  button.disabled = true;
  const result = await apiAnswer(`/api/admin/hl7-outbox/${item.id}/retry`, { method: "POST" });
  button.disabled = false;
  errorBox.textContent = result.ok ? "" : problem(result);
  if (result.ok) await load();
}

function buildRow(item) {
  const row = el("tr", {
    className: "hl7-row",
    dataset: { outboxId: String(item.id), status: item.status },
  });
  const kind = text(item.result_status === "C" ? "correction" : "final");
  const actions = el("td", { className: "col-actions" });
  if (item.status !== "sent") {
    const button = el("button", {
      type: "button",
      className: "button button-small hl7-retry",
      text: text("retry"),
    });
    button.setAttribute("aria-label", `${text("retry")} #${item.id}`);
    button.addEventListener("click", () => retry(item, button));
    actions.append(button);
  }
  row.append(
    el("td", { className: "col-created" }, when(item.created_at)),
    el("td", { className: "col-facility" }, item.facility_name, el("br"), el("code", { text: item.endpoint })),
    el("td", { className: "col-patient", text: `${personName(item.patient_name)} (${item.patient_id})` }),
    el(
      "td",
      { className: "col-consultation" },
      el("a", { href: `/consultations/${item.consultation_id}`, text: `#${item.consultation_id}` }),
      ` · ${text("version", { version: item.version })} · ${kind}`,
    ),
    el("td", { className: "col-status", text: label("hl7_status", item.status) }),
    el("td", { className: "col-attempts", text: String(item.attempts) }),
    el("td", { className: "col-next" }, item.status === "pending" ? when(item.next_attempt_at) : ""),
    el("td", { className: "col-reason", text: item.reason || "" }),
    actions,
  );
  return row;
}

async function load() {
  table.setAttribute("aria-busy", "true");
  const status = filter.value;
  const result = await apiAnswer(`/api/admin/hl7-outbox${status ? `?status=${status}` : ""}`);
  table.setAttribute("aria-busy", "false");
  if (!result.ok || !result.data) {
    errorBox.textContent = problem(result);
    return;
  }
  errorBox.textContent = "";
  const items = result.data.items || [];
  table.tBodies[0].replaceChildren(...items.map(buildRow));
  emptyBox.hidden = items.length > 0;
  emptyBox.textContent = items.length ? "" : text("empty");
}

filter.addEventListener("change", load);
load();
