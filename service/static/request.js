// teleread — new consultation request page. Posts the form to POST /api/consultations, then
// opens the consultation's live status page. A 409 repeat_exam shows the repeat-exam alert
// (./repeat_alert.js) before anything is filed.

import { api, t } from "./common.js";
import { showRepeatAlert } from "./repeat_alert.js";

const form = document.getElementById("consult-form");
const status = document.getElementById("consult-status");
const submit = document.getElementById("consult-submit");

const UID = /^[0-9]+(\.[0-9]+)+$/;

function value(name) {
  return form.elements[name].value.trim();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const study = value("study");
  const question = value("clinical_question");
  if (!study) {
    status.textContent = t("need_study");
    form.elements.study.focus();
    return;
  }
  if (!question) {
    status.textContent = t("need_question");
    form.elements.clinical_question.focus();
    return;
  }
  const json = { priority: form.elements.priority.value || "urgent" };
  if (UID.test(study)) json.study_instance_uid = study;
  else json.accession_number = study;
  for (const name of [
    "patient_id",
    "patient_name",
    "patient_sex",
    "patient_identity_number",
    "patient_health_card_number",
    "modality",
    "requested_procedure",
    "body_part",
    "clinical_history",
    "clinical_question",
    "callback_phone",
  ]) {
    if (value(name)) json[name] = value(name);
  }
  const born = value("patient_birth_date");
  if (born) json.patient_birth_date = born.replaceAll("-", "");
  submit.disabled = true;
  await send(json);
});

async function send(json) {
  status.textContent = t("sending");
  try {
    const result = await api("/api/consultations", { method: "POST", json });
    if (result.ok && result.data) {
      location.assign(`/consultations/${result.data.id}`);
      return;
    }
    if (result.status === 409 && result.data && result.data.error === "repeat_exam") {
      status.textContent = "";
      const resend = (reason, alertId) =>
        send(Object.assign({}, json, { repeat_reason: reason, repeat_alert_id: alertId }));
      showRepeatAlert(result.data, resend, () => {
        submit.disabled = false;
      });
      return;
    }
    const detail = result.data && result.data.detail;
    status.textContent =
      typeof detail === "string" && detail ? detail : t("request_failed", { status: result.status });
  } catch (_err) {
    status.textContent = t("network_error");
  }
  submit.disabled = false;
}
