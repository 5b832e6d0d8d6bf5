// teleread — the clinic portal: the facility's signed reports, newest first. The list comes from
// GET /api/portal/reports (scoped in SQL, audited); it refreshes every 10 s and whenever the live
// feed reports a change. Print records the print in the audit trail before opening the PDF.

import { api, el, formatDateTime, formatTime, label, personName, redirectToLogin, t } from "./common.js";
import { figuresButton, withFigures } from "./portal_figures.js";

const table = document.getElementById("portal-table");
const rows = document.getElementById("portal-rows");
const role = table.dataset.role;
const REFRESH_MS = 10000;
const ACKNOWLEDGERS = ["clinician", "radiographer", "requester"];
const CRITICAL_ACKNOWLEDGERS = ["clinician", "requester"];
let timer = null;
let loading = false;

function showError(text) {
  document.getElementById("portal-error").textContent = text;
}

function badge(kind, text) {
  return el("span", { className: `badge badge-${kind}`, text });
}

function statusCell(item) {
  const cell = el("td", { className: "portal-status" });
  const criticalOpen = item.critical && !item.critical_acknowledged_at;
  if (criticalOpen) cell.append(badge("critical", t("critical")), " ");
  if (item.preliminary) cell.append(badge("preliminary", t("preliminary")), " ");
  else if (item.corrected) cell.append(badge("corrected", t("corrected")), " ");
  if (item.acknowledged_version === item.version) cell.append(badge("acknowledged", t("acknowledged")));
  else cell.append(badge("signed", t("signed")));
  return cell;
}

async function post(url) {
  const response = await api(url, { method: "POST" });
  if (!response.ok) {
    const data = response.data || {};
    showError(t("action_failed", { status: response.status, detail: data.detail || data.error || "" }));
    return null;
  }
  showError("");
  return response.data;
}

function actionButton(className, text, handler) {
  const button = el("button", { type: "button", className: `button button-small ${className}`, text });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await handler();
    } catch (_err) {
      showError(t("network_error"));
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

function actionsCell(item) {
  const base = `/api/consultations/${item.consultation_id}/report`;
  const cell = el("td", { className: "portal-actions" });
  cell.append(
    el("a", { className: "button button-small portal-pdf", href: item.pdf, target: "_blank", rel: "noopener", text: t("open_pdf") }),
    " ",
  );
  cell.append(
    actionButton("portal-print", t("print"), async () => {
      // Open the tab during the click (popup blockers), then point it at the PDF once recorded.
      const tab = window.open("", "_blank");
      const recorded = await post(`${base}/versions/${item.version}/print`);
      if (recorded && tab) tab.location.href = recorded.pdf;
      else if (tab) tab.close();
    }),
    " ",
  );
  if (ACKNOWLEDGERS.includes(role) && item.acknowledged_version !== item.version) {
    cell.append(
      actionButton("portal-ack", t("acknowledge"), async () => {
        if (await post(`${base}/acknowledgement`)) await refresh();
      }),
      " ",
    );
  }
  if (CRITICAL_ACKNOWLEDGERS.includes(role) && item.critical && !item.critical_acknowledged_at) {
    cell.append(
      actionButton("portal-ack-critical", t("acknowledge_critical"), async () => {
        if (await post(`${base}/critical-acknowledgement`)) await refresh();
      }),
      " ",
    );
  }
  cell.append(figuresButton(item, showError), " ");
  cell.append(el("a", { className: "button button-small portal-images", href: item.viewer, text: t("images") }));
  return cell;
}

function row(item) {
  const tr = el("tr", {
    className: "portal-row",
    dataset: {
      consultationId: String(item.consultation_id),
      version: String(item.version),
      critical: item.critical && !item.critical_acknowledged_at ? "open" : "no",
      acknowledged: item.acknowledged_version === item.version ? "yes" : "no",
    },
  });
  if (item.critical && !item.critical_acknowledged_at) tr.classList.add("portal-row-critical");
  tr.append(
    el("td", {}, el("a", { href: `/consultations/${item.consultation_id}`, text: personName(item.patient_name) || item.patient_id }), el("div", { className: "muted", text: item.patient_id })),
    el("td", { text: [item.modality, label("body_part", item.body_part)].filter(Boolean).join(" / ") }),
    el("td", {}, el("time", { dateTime: item.signed_at, text: formatDateTime(item.signed_at) }), item.version > 1 ? el("div", { className: "muted", text: t("version", { version: item.version }) }) : null),
    el("td", { text: item.signer_name }),
    statusCell(item),
    actionsCell(item),
  );
  return tr;
}

async function refresh() {
  if (loading) return;
  loading = true;
  clearTimeout(timer);
  try {
    const response = await api("/api/portal/reports");
    if (response.status === 401) {
      redirectToLogin();
      return;
    }
    if (!response.ok) {
      showError(t("load_failed", { status: response.status }));
      return;
    }
    const items = response.data.items;
    rows.replaceChildren(...items.flatMap((item) => withFigures(item, row(item))));
    const empty = document.getElementById("portal-empty");
    empty.hidden = items.length > 0;
    empty.textContent = items.length ? "" : t("empty");
    table.dataset.loaded = "yes";
    document.getElementById("portal-updated").textContent = t("updated", { time: formatTime(new Date()) });
  } catch (_err) {
    showError(t("network_error"));
  } finally {
    loading = false;
    timer = setTimeout(refresh, REFRESH_MS);
  }
}

function listen() {
  if (!("EventSource" in window)) return;
  const source = new EventSource("/api/worklist/events");
  source.addEventListener("change", () => refresh());
  window.addEventListener("pagehide", () => source.close());
}

refresh();
listen();
