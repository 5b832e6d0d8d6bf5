// teleread — managers hand a worklist row to another specialist: the row's Reassign button
// opens a dialog listing GET /api/consultations/{id}/assignees (on-duty readers first, with how
// many items each holds), and POST /api/consultations/{id}/reassign does it. The worklist then
// refetches ("worklist:changed" on the filter form) and the row shows the new holder.

import { api, el, redirectToLogin, t } from "./common.js";

const dialog = document.getElementById("reassign-dialog");
const table = document.getElementById("worklist");
const filterForm = document.getElementById("worklist-filters");
const form = document.getElementById("reassign-form");
const subject = document.getElementById("reassign-subject");
const select = document.getElementById("reassign-user");
const errorBox = document.getElementById("reassign-error");
const confirmButton = document.getElementById("reassign-confirm");
let consultationId = null;

function optionText(person) {
  if (person.holder) return t("assignee_holder", { name: person.name });
  return t(person.on_duty ? "assignee_on_duty" : "assignee_off_duty", {
    name: person.name,
    n: person.claims,
  });
}

async function open(row) {
  consultationId = row.dataset.consultationId;
  const d = row.dataset;
  subject.textContent = t("reassign_subject", {
    patient: d.patient,
    modality: d.modality,
    facility: d.facility,
  });
  select.replaceChildren();
  errorBox.textContent = "";
  confirmButton.disabled = true;
  dialog.showModal();
  let result;
  try {
    result = await api(`/api/consultations/${consultationId}/assignees`);
  } catch (_err) {
    errorBox.textContent = t("network_error");
    return;
  }
  if (result.status === 401) return redirectToLogin();
  if (!result.ok || !result.data) {
    errorBox.textContent = t("assignees_failed");
    return;
  }
  const people = result.data.items || [];
  select.replaceChildren(
    ...people.map((person) =>
      el("option", { value: String(person.id), text: optionText(person), disabled: person.holder }),
    ),
  );
  const first = people.find((person) => !person.holder);
  if (!first) {
    errorBox.textContent = t("assignees_none");
    return;
  }
  select.value = String(first.id);
  confirmButton.disabled = false;
  select.focus();
}

table.addEventListener("click", (event) => {
  const button = event.target.closest(".reassign-action");
  const row = button && button.closest("tr.worklist-row");
  if (row) open(row);
});

document.getElementById("reassign-cancel").addEventListener("click", () => dialog.close());

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!consultationId || !select.value) return;
  confirmButton.disabled = true;
  let result;
  try {
    result = await api(`/api/consultations/${consultationId}/reassign`, {
      method: "POST",
      json: { user_id: Number(select.value) },
    });
  } catch (_err) {
    errorBox.textContent = t("network_error");
    confirmButton.disabled = false;
    return;
  }
  if (result.status === 401) return redirectToLogin();
  if (!result.ok) {
    const detail = (result.data && result.data.detail) || `HTTP ${result.status}`;
    errorBox.textContent = t("reassign_failed", { detail });
    confirmButton.disabled = false;
    return;
  }
  dialog.close();
  filterForm.dispatchEvent(new CustomEvent("worklist:changed"));
});
