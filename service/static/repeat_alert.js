// teleread — the repeat-exam alert on the request form. A request answered 409 repeat_exam was
// not filed: the requester sees where and when the same exam was done, its impression and
// whether that facility is recognised, then proceeds with a reason (the request is sent again
// with it) or withdraws (POST /api/repeat-alerts/{id}/withdraw: nothing filed, recorded).

import { api, label, t } from "./common.js";

const panel = document.getElementById("repeat-alert");
const detail = document.getElementById("repeat-alert-detail");
const list = document.getElementById("repeat-alert-matches");
const reason = document.getElementById("repeat-alert-reason");
const status = document.getElementById("repeat-alert-status");
const proceed = document.getElementById("repeat-alert-proceed");
const withdraw = document.getElementById("repeat-alert-withdraw");

let current = null;

function item(match) {
  const li = document.createElement("li");
  const where = document.createElement("strong");
  where.textContent = t("repeat_at", { facility: match.facility_name, when: match.performed_at_local });
  const exam = document.createElement("span");
  exam.textContent = ` ${match.modality} ${label("body_part", match.body_part) || match.body_part}`;
  const impression = document.createElement("p");
  impression.textContent = match.impression
    ? t("repeat_impression", { text: match.impression })
    : t("repeat_no_report");
  const recognised = document.createElement("p");
  recognised.className = match.recognised ? "repeat-recognised" : "repeat-not-recognised";
  recognised.textContent = match.recognised ? t("repeat_recognised") : t("repeat_not_recognised");
  li.append(where, exam);
  if (match.done === false) {
    const requested = document.createElement("p");
    requested.textContent = t("repeat_requested");
    li.append(requested);
  }
  li.append(impression, recognised);
  return li;
}

/** Show the alert of a 409 answer; `resend(reason, alertId)` files the request again. */
export function showRepeatAlert(answer, resend, done) {
  current = { answer, resend, done };
  detail.textContent = answer.detail || "";
  list.replaceChildren(...(answer.matches || []).map(item));
  reason.value = "";
  status.textContent = "";
  proceed.disabled = false;
  withdraw.disabled = false;
  panel.hidden = false;
  reason.focus();
}

proceed.addEventListener("click", async () => {
  if (!current) return;
  const text = reason.value.trim();
  if (!text) {
    status.textContent = t("repeat_need_reason");
    reason.focus();
    return;
  }
  proceed.disabled = true;
  await current.resend(text, current.answer.alert_id);
  proceed.disabled = false;
});

withdraw.addEventListener("click", async () => {
  if (!current) return;
  withdraw.disabled = true;
  proceed.disabled = true;
  try {
    const result = await api(`/api/repeat-alerts/${current.answer.alert_id}/withdraw`, { method: "POST" });
    if (result.ok) {
      status.textContent = t("repeat_withdrawn");
      current.done();
      current = null;
      return;
    }
    status.textContent = t("request_failed", { status: result.status });
  } catch (_err) {
    status.textContent = t("network_error");
  }
  withdraw.disabled = false;
  proceed.disabled = false;
});
