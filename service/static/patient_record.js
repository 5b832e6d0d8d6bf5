// teleread — the consortium record page (issue 21 item 4). The page is rendered by the server;
// this posts the stated reason to the API and reloads (the whole record then shows), and on the
// print view (already audited as a print when it was served) opens the print dialogue.

import { $, api, errorText, t } from "./common.js";

const CODES = { reason_required: "reason_missing", reason_category: "reason_missing" };

function setupReason(identity) {
  const form = $("record-reason-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const category = $("record-reason-category").value;
    const text = $("record-reason-text").value.trim();
    if (!category || !text) {
      $("record-reason-status").textContent = t("reason_missing");
      return;
    }
    const answer = await api(`/api/patients/${identity}/reasons`, {
      method: "POST",
      json: { category, text },
    });
    if (answer.ok) location.reload();
    else $("record-reason-status").textContent = errorText(answer, "reason_failed", CODES);
  });
}

const root = $("patient-record");
if (root) {
  setupReason(root.dataset.identity);
  if (root.dataset.printing === "1") window.print();
}
