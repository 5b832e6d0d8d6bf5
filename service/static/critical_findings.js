// teleread — on the landing page of the clinic's clinicians and requesters (their worklist),
// who acknowledge critical findings: the signed reports with a critical finding nobody has
// acknowledged yet, first and in red, each naming the patient and study with a link to the
// report. The list comes from GET /api/portal/reports (scoped in SQL, audited), refreshed every
// 30 s and when the page comes back into view; acknowledging happens on the report's page or in
// the portal.

import { api, el, formatDateTime, label, personName, t } from "./common.js";

const REFRESH_MS = 30000;
const box = document.getElementById("critical-findings");
const list = document.getElementById("critical-list");
let timer = null;


function item(report) {
  const study = [report.modality, label("body_part", report.body_part)].filter(Boolean).join(" ");
  const signed = t("critical_signed", {
    time: formatDateTime(report.signed_at),
    signer: report.signer_name || "",
  });
  return el(
    "li",
    { className: "critical-finding", dataset: { consultationId: String(report.consultation_id) } },
    el("span", { className: "critical-patient", text: personName(report.patient_name) || "—" }),
    el("span", { className: "critical-patient-id", text: report.patient_id || "" }),
    el("span", { className: "critical-study", text: study }),
    el("span", { className: "critical-signed", text: signed }),
    el("a", {
      className: "critical-link",
      href: `/consultations/${report.consultation_id}`,
      text: t("critical_open"),
    }),
  );
}

async function refresh() {
  clearTimeout(timer);
  try {
    const result = await api("/api/portal/reports");
    if (result.ok && result.data) {
      const open = (result.data.items || []).filter(
        (report) => report.critical && !report.critical_acknowledged_at,
      );
      list.replaceChildren(...open.map(item));
      box.hidden = open.length === 0;
      box.dataset.loaded = "yes";
    }
  } catch (_err) {
    // the next refresh tries again; the worklist below shows its own connection state
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refresh();
});
refresh();
