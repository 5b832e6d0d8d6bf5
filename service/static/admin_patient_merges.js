// teleread — patient merges on the facilities page. GET /api/admin/patient-merges lists what
// hospital systems merged (HL7 ADT^A40); POST /api/admin/patient-merges/{id}/reverse gives each
// consultation the merge changed its patient identity back (field by field where nothing
// changed it since). A reversal is asked for once: the server refuses a second (409).

import { apiAnswer, el, errorText, formatDateTime, redirectToLogin, t } from "./common.js";

const table = document.getElementById("patient-merges");
const tbody = table.tBodies[0];
const listError = document.getElementById("merges-error");
const statusBox = document.getElementById("merges-status");
const emptyBox = document.getElementById("merges-empty");

const ERRORS = { already_reversed: "merge_already_reversed", not_found: "merge_not_found" };

function when(iso) {
  const text = formatDateTime(iso);
  return text ? el("time", { dateTime: iso, text }) : "";
}

function identity(id, authority) {
  return el("code", { text: authority ? `${id} (${authority})` : id });
}

function reversedCell(merge) {
  if (!merge.reversed_at) return el("td", { className: "col-reversed", text: t("merge_in_force") });
  const who = merge.reversed_by_name || "";
  const cell = el("td", { className: "col-reversed" }, when(merge.reversed_at));
  if (who) cell.append(` — ${who}`);
  return cell;
}

function buildRow(merge) {
  const row = el("tr", {
    className: "merge-row",
    dataset: { mergeId: String(merge.id), reversed: String(Boolean(merge.reversed_at)) },
  });
  const changed = merge.consultations_changed
    ? merge.consultation_ids.map((id) => `#${id}`).join(", ")
    : t("merge_none_changed");
  const actions = el("td", { className: "col-actions" });
  if (!merge.reversed_at) {
    const button = el("button", {
      type: "button",
      className: "button button-small merge-reverse",
      text: t("merge_reverse"),
    });
    button.setAttribute(
      "aria-label",
      t("merge_reverse_label", { prior: merge.prior_patient_id, surviving: merge.surviving_patient_id }),
    );
    button.addEventListener("click", () => reverse(merge, button));
    actions.append(button);
  }
  row.append(
    el("td", { className: "col-merged" }, when(merge.merged_at)),
    el("td", { className: "col-facility", text: merge.facility_name }),
    el("td", { className: "col-prior" }, identity(merge.prior_patient_id, merge.prior_authority)),
    el(
      "td",
      { className: "col-surviving" },
      identity(merge.surviving_patient_id, merge.surviving_authority),
    ),
    el("td", { className: "col-source", text: merge.source }),
    el("td", { className: "col-changed", text: changed }),
    reversedCell(merge),
    actions,
  );
  return row;
}

async function load() {
  table.setAttribute("aria-busy", "true");
  const result = await apiAnswer("/api/admin/patient-merges");
  table.setAttribute("aria-busy", "false");
  if (!result.ok || !result.data) {
    if (result.status === 401) redirectToLogin();
    listError.textContent = errorText(result, "merges_load_failed");
    return;
  }
  listError.textContent = "";
  const items = result.data.items || [];
  tbody.replaceChildren(...items.map(buildRow));
  emptyBox.hidden = items.length > 0;
  emptyBox.textContent = items.length ? "" : t("merges_empty");
}

async function reverse(merge, button) {
  const question = t("merge_reverse_confirm", {
    prior: merge.prior_patient_id,
    surviving: merge.surviving_patient_id,
  });
  if (!window.confirm(question)) return;
  button.disabled = true;
  const result = await apiAnswer(`/api/admin/patient-merges/${merge.id}/reverse`, { method: "POST" });
  if (!result.ok) {
    if (result.status === 401) redirectToLogin();
    button.disabled = false;
    listError.textContent = errorText(result, "merge_reverse_failed", ERRORS);
    await load();
    return;
  }
  listError.textContent = "";
  const kept = Object.keys(result.data.kept || {}).length;
  statusBox.textContent = t(kept ? "merge_reversed_kept" : "merge_reversed", {
    prior: merge.prior_patient_id,
    n: kept,
  });
  await load();
}

load();
