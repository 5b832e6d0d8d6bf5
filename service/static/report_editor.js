// teleread — the report editor beside the viewer. Reads the consultation and its report, offers
// the templates fitting the study first, autosaves the draft (debounced PUT, Ctrl+S now), signs
// with the password re-entered, and opens a signed report for correction.

import { $, api, el, errorText, formatDateTime, formatTime, label, locale, personName, t } from "./common.js";
import { COUNTDOWN_TICK_MS, countdownText } from "./countdown.js";
import { renderReview, reviewMode, setupReview } from "./report_review.js";

const root = document.getElementById("report-editor");
const consultationId = root.dataset.consultationId;
const userId = Number(root.dataset.userId);
const base = `/api/consultations/${consultationId}`;
const TEXT_FIELDS = ["findings", "impression", "recommendation"];
const AUTOSAVE_MS = 1200;
const form = $("report-form");
const fieldNode = (name) => $(`report-${name}`);

let consultation = null;
let report = null;
let templates = [];
let templateId = null;
let saveTimer = null;
let saving = Promise.resolve();
let dirty = false;
let dueTimer = null;

function showError(text) {
  $("report-error").textContent = text;
}

function editable() {
  if (!report || report.state === null) return consultation && consultation.claimed_by_id === userId;
  if (report.state === "signed") return false;
  return Boolean(report.draft) && (report.versions.length === 0
    ? consultation.claimed_by_id === userId
    : report.draft.author_id === userId);
}

function setEditable(on) {
  for (const node of form.querySelectorAll("textarea, input, select")) node.disabled = !on;
  for (const node of document.querySelectorAll("#report-macros button")) node.disabled = !on;
  $("report-save").disabled = !on;
  $("report-sign").disabled = !on;
  root.dataset.state = on ? "editing" : report && report.state === "signed" ? "signed" : "locked";
}

function fillFrom(draft) {
  for (const name of TEXT_FIELDS) fieldNode(name).value = draft[name] || "";
  $("report-critical").checked = Boolean(draft.critical);
  $("report-refer").checked = Boolean(draft.refer);
  $("report-technical").checked = Boolean(draft.technical_flagged);
  for (const radio of form.querySelectorAll('input[name="quality"]')) {
    radio.checked = radio.value === draft.quality;
  }
  $("report-quality-reason").value = draft.quality_reason || "";
  templateId = draft.template_id || null;
}

function payload() {
  const body = {};
  for (const name of TEXT_FIELDS) body[name] = fieldNode(name).value;
  body.critical = $("report-critical").checked;
  body.refer = $("report-refer").checked;
  body.technical_flagged = $("report-technical").checked;
  const quality = form.querySelector('input[name="quality"]:checked');
  const reason = $("report-quality-reason").value.trim();
  if (quality && !(quality.value === "poor" && !reason)) {
    body.quality = quality.value;
    body.quality_reason = reason;
  }
  if (templateId) body.template_id = templateId;
  return body;
}

function versionBadges(v) {
  const badges = [];
  if (v.preliminary) badges.push(el("span", { className: "badge badge-preliminary", text: t("preliminary") }));
  if (v.preliminary && v.superseded) badges.push(el("span", { className: "badge", text: t("superseded") }));
  if (v.reviewer_name) {
    const key = v.text_by === "reviewer" ? "edited_by" : "reviewed_by";
    badges.push(el("span", { className: "report-reviewer", text: t(key, { reviewer: v.reviewer_name }) }));
  }
  return badges.flatMap((badge) => [" ", badge]);
}

/** The texts signed for review and what became of each, with who wrote and who decided. */
function renderReviewHistory() {
  const list = $("report-review-history");
  const history = (report && report.review && report.review.history) || [];
  $("report-review-history-box").hidden = history.length === 0;
  list.replaceChildren(
    ...[...history].reverse().map((h) =>
      el(
        "li",
        { dataset: { reviewState: h.state } },
        t("review_line", { writer: h.writer_name, time: formatDateTime(h.written_at) }),
        " ",
        el("span", { className: "badge", text: t(`review_${h.state}`) }),
        h.reviewer_name ? ` ${t("review_by", { reviewer: h.reviewer_name })}` : "",
        el(
          "details",
          {},
          el("summary", { text: t("review_text") }),
          el("p", { className: "report-review-text", text: [h.findings, h.impression].filter(Boolean).join("\n\n") }),
        ),
        h.comment ? el("p", { className: "report-review-comment", text: h.comment }) : null,
      ),
    ),
  );
}

function renderVersions() {
  renderReviewHistory();
  const list = $("report-versions");
  list.replaceChildren();
  if (!report || report.versions.length === 0) {
    list.append(el("li", { className: "muted", text: t("no_versions") }));
    return;
  }
  for (const v of [...report.versions].reverse()) {
    const line = t("version_line", {
      version: v.version,
      time: formatDateTime(v.signed_at),
      signer: v.signer_name,
    });
    list.append(
      el(
        "li",
        { dataset: { version: String(v.version) } },
        line,
        " ",
        v.supersedes_version ? el("span", { className: "badge badge-corrected", text: t("corrected") }) : null,
        " ",
        el("a", { href: v.pdf, target: "_blank", rel: "noopener", text: t("open_pdf") }),
        " ",
        el("code", { className: "report-code", text: v.verification_code }),
        ...versionBadges(v),
      ),
    );
  }
}

function render() {
  const mode = reviewMode(consultation, report, userId);
  const inReview = ["review", "claim", "written"].includes(mode);
  if (mode === "review") fillFrom(report.review.awaiting);
  else if (report && report.draft) fillFrom(report.draft);
  else if (report && report.versions.length) fillFrom(report.versions[report.versions.length - 1]);
  const mayWrite = editable() && !inReview;
  const signed = report && report.state === "signed" && !inReview;
  const needsClaim = mode === "claim" || (!inReview && !mayWrite && !signed && (!report || report.versions.length === 0));
  $("report-claim-box").hidden = !needsClaim;
  $("report-claim-text").textContent = needsClaim ? t(mode === "claim" ? "claim_to_review" : "not_claimed") : "";
  $("report-correct").hidden = !signed;
  // A signed report offers only "Correct report": disabled Save/Sign would crowd the foot.
  $("report-save").hidden = Boolean(signed) || inReview;
  $("report-sign").hidden = Boolean(signed) || inReview;
  const note = $("report-signed-note");
  note.hidden = !signed;
  if (signed) note.textContent = t("signed_note", { version: report.versions.length });
  // The reviewer edits the text signed for review in the form (sent with "Edit & co-sign").
  setEditable(mayWrite || mode === "review");
  if (mode === "review") root.dataset.state = "reviewing";
  renderReview(mode, report);
  renderVersions();
  renderTemplates();
}

function renderTemplates() {
  const select = $("report-template");
  select.replaceChildren(el("option", { value: "", text: templates.length ? t("choose_template") : t("no_templates") }));
  for (const tpl of templates) {
    const scope = [tpl.modality, label("body_part", tpl.body_part)].filter(Boolean).join(" ");
    select.append(el("option", { value: String(tpl.id), text: scope ? `${tpl.name} (${scope})` : tpl.name }));
  }
  if (templateId) select.value = String(templateId);
  renderMacros();
}

function renderMacros() {
  const box = $("report-macros");
  box.replaceChildren();
  const tpl = templates.find((x) => x.id === templateId);
  for (const macro of (tpl && tpl.macros) || []) {
    const button = el("button", {
      type: "button",
      className: "button button-small report-macro",
      text: macro.label,
      title: `${t(macro.field)}: ${macro.text}`,
    });
    button.disabled = !editable();
    button.addEventListener("click", () => insertText(fieldNode(macro.field), macro.text));
    box.append(button);
  }
}

function insertText(area, text) {
  const start = area.selectionStart ?? area.value.length;
  const end = area.selectionEnd ?? area.value.length;
  const before = area.value.slice(0, start);
  const glue = before && !/\s$/.test(before) ? " " : "";
  area.value = before + glue + text + area.value.slice(end);
  area.focus();
  area.selectionStart = area.selectionEnd = start + glue.length + text.length;
  scheduleSave();
}

function applyTemplate(tpl) {
  const clashing = TEXT_FIELDS.filter((name) => fieldNode(name).value.trim() && tpl[name]);
  const replace =
    clashing.length > 0 && window.confirm(t("overwrite", { fields: clashing.map((n) => t(n)).join(", ") }));
  for (const name of TEXT_FIELDS) {
    const area = fieldNode(name);
    if (tpl[name] && (!area.value.trim() || replace)) area.value = tpl[name];
  }
  templateId = tpl.id;
  renderMacros();
  scheduleSave();
}

function scheduleSave() {
  if (reviewMode(consultation, report, userId) === "review") return; // sent with the co-signature
  dirty = true;
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => saveNow(), AUTOSAVE_MS);
}

/** Save the draft now (one PUT at a time, in order); resolves to true when saved. */
function saveNow() {
  clearTimeout(saveTimer);
  saving = saving.then(async () => {
    if (!editable()) return false;
    const quality = form.querySelector('input[name="quality"]:checked');
    const poorWithoutReason = quality && quality.value === "poor" && !$("report-quality-reason").value.trim();
    $("report-saved").textContent = t("saving");
    dirty = false;
    try {
      const response = await api(`${base}/report/draft`, { method: "PUT", json: payload() });
      if (!response.ok) {
        dirty = true;
        $("report-saved").textContent = "";
        showError(errorText(response, "save_failed"));
        return false;
      }
      report = response.data;
      $("report-saved").textContent = t("saved_at", { time: formatTime(new Date()) });
      showError(poorWithoutReason ? t("quality_reason_needed") : "");
      renderVersions();
      return true;
    } catch (_err) {
      dirty = true;
      $("report-saved").textContent = "";
      showError(t("network_error"));
      return false;
    }
  });
  return saving;
}

/** The due time in the requesting facility's zone, with the zone named ("GMT+8"). */
function formatDue(iso, zone) {
  const options = { dateStyle: "short", timeStyle: "short" };
  try {
    return new Intl.DateTimeFormat(locale, { ...options, timeZone: zone || undefined })
      .format(new Date(iso)) + ` (${zoneName(zone, new Date(iso))})`;
  } catch (_err) {
    return formatDateTime(iso);
  }
}

function zoneName(zone, date) {
  const parts = new Intl.DateTimeFormat("en-US", { timeZone: zone || undefined, timeZoneName: "shortOffset" })
    .formatToParts(date);
  const part = parts.find((p) => p.type === "timeZoneName");
  return zone ? `${zone}, ${part ? part.value : ""}` : part ? part.value : "";
}

function tickDue() {
  const node = $("report-due-left");
  const dueMs = consultation && consultation.due_at ? Date.parse(consultation.due_at) : NaN;
  const info = report && report.state === "signed" ? null : countdownText(dueMs, Date.now(), t);
  if (!info) {
    node.textContent = "";
    return;
  }
  node.textContent = info.text;
  node.className = `report-due-left ${info.cls}`.trim();
}

function renderContext(c) {
  const priority = $("report-priority");
  priority.replaceChildren(
    el("span", { className: `badge badge-${c.priority || "routine"}`, text: label("priority", c.priority || "routine") }),
  );
  priority.dataset.priority = c.priority || "routine";
  $("report-due").textContent = c.due_at ? formatDue(c.due_at, c.facility_timezone) : "";
  $("report-facility").textContent = c.facility || "";
  $("report-question").textContent = c.clinical_question || t("not_given");
  $("report-history").textContent = c.clinical_history || t("not_given");
  tickDue();
  clearInterval(dueTimer);
  dueTimer = setInterval(tickDue, COUNTDOWN_TICK_MS);
}

/** A DICOM date (YYYYMMDD) in the page's language; "" when absent or malformed. */
function formatStudyDate(value) {
  const match = /^(\d{4})(\d{2})(\d{2})$/.exec(value || "");
  if (!match) return "";
  const date = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])));
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeZone: "UTC" }).format(date);
}

async function loadPriors() {
  const list = $("report-priors");
  const response = await api(`${base}/report/priors`);
  list.replaceChildren();
  if (!response.ok) {
    list.append(el("li", { className: "form-error", text: t("priors_failed", { status: response.status }) }));
    return;
  }
  const items = response.data.items;
  $("report-priors-count").textContent = `(${items.length})`;
  if (!items.length) list.append(el("li", { className: "muted", text: t("no_priors") }));
  for (const p of items) {
    const study = p.study_description || [p.modality, label("body_part", p.body_part)].filter(Boolean).join(" ");
    const when = formatStudyDate(p.study_date) || (p.performed_at ? formatDateTime(p.performed_at) : "");
    const what = [when, study].filter(Boolean).join(" · ");
    list.append(
      el(
        "li",
        {
          className: "report-prior",
          dataset: { consultationId: String(p.consultation_id), facilityId: String(p.facility_id || ""), recognition: p.recognition || "none" },
        },
        el("a", { href: p.pdf, target: "_blank", rel: "noopener", text: what || `#${p.consultation_id}` }),
        " ",
        el("span", { className: "report-prior-facility", text: p.facility_name || "" }),
        " ",
        recognitionBadge(p.recognition),
        " ",
        el("span", { className: "muted", text: t("prior_signed", { time: formatDateTime(p.signed_at), signer: p.signer_name }) }),
        el("span", { className: "report-prior-impression", text: p.impression }),
        p.findings
          ? el(
              "details",
              { className: "report-prior-findings" },
              el("summary", { text: t("prior_findings") }),
              el("p", { text: p.findings }),
            )
          : null,
      ),
    );
  }
}

/** Whether the prior's facility is on the recognition list for its exam item (issue 21). */
function recognitionBadge(status) {
  if (status === "listed") {
    return el("span", { className: "recognition recognition-listed", text: t("recognition_listed"), title: t("recognition_listed_title") });
  }
  if (status === "suspended") {
    return el("span", { className: "recognition recognition-suspended", text: t("recognition_suspended"), title: t("recognition_suspended_title") });
  }
  return el("span", { className: "recognition recognition-none", text: t("recognition_none"), title: t("recognition_none_title") });
}

/** Fit the layout to the window below wherever it starts (the header may wrap). */
function fitToWindow() {
  const top = root.getBoundingClientRect().top + window.scrollY;
  root.style.setProperty("--report-top", `${Math.ceil(top)}px`);
}

async function load() {
  const [c, r] = await Promise.all([api(base), api(`${base}/report`)]);
  if (!c.ok || !r.ok) {
    showError(t("load_failed", { status: c.ok ? r.status : c.status }));
    return;
  }
  consultation = c.data;
  report = r.data;
  renderContext(c.data);
  loadPriors().catch(() => showError(t("network_error")));
  $("report-patient").textContent = [personName(c.data.patient_name), c.data.patient_id, c.data.modality, label("body_part", c.data.body_part)]
    .filter(Boolean)
    .join(" · ");
  const query = new URLSearchParams({ modality: c.data.modality || "", body_part: c.data.body_part || "" });
  const list = await api(`/api/report-templates?${query}`);
  templates = list.ok ? list.data.items : [];
  render();
}

async function claim() {
  const response = await api(`${base}/claim`, { method: "POST" });
  if (!response.ok) {
    showError(errorText(response, "claim_failed"));
    return;
  }
  showError("");
  await load();
}

function openSignDialog() {
  if (!$("report-quality-reason").value.trim() && form.querySelector('input[value="poor"]:checked')) {
    showError(t("quality_reason_needed"));
    return;
  }
  $("sign-error").textContent = "";
  $("sign-password").value = "";
  // Stat and urgent reports that need review may reach the clinic at once as preliminary.
  $("sign-preliminary-box").hidden = !["stat", "urgent"].includes(consultation && consultation.priority);
  $("sign-preliminary").checked = false;
  $("sign-dialog").showModal();
  $("sign-password").focus();
}

async function sign(event) {
  event.preventDefault();
  const password = $("sign-password").value;
  if (!password) return;
  $("sign-confirm").disabled = true;
  try {
    if (!(await saveNow())) {
      $("sign-error").textContent = $("report-error").textContent;
      return;
    }
    const json = { password };
    if (!$("sign-preliminary-box").hidden && $("sign-preliminary").checked) json.preliminary = true;
    const response = await api(`${base}/report/sign`, { method: "POST", json });
    if (!response.ok) {
      $("sign-error").textContent = errorText(response, "sign_failed", {
        public_url_required: "sign_public_url_required",
      });
      return;
    }
    $("sign-dialog").close();
    const signed = response.data;
    $("report-signed-result").hidden = false;
    const held = signed.awaiting_review && !signed.preliminary;
    const done = held ? "signed_for_review" : signed.preliminary ? "signed_preliminary" : "signed_done";
    $("report-code-line").textContent = t(done, { code: signed.verification_code });
    $("report-code").textContent = held ? "" : signed.verification_code;
    $("report-pdf-link").hidden = held;
    if (!held) $("report-pdf-link").href = signed.pdf;
    // In view as soon as it is shown, and again once the page re-rendered around it.
    $("report-signed-result").scrollIntoView({ block: "nearest" });
    await reloadAll();
    tickDue();
    $("report-signed-result").scrollIntoView({ block: "nearest" });
  } finally {
    $("sign-password").value = "";
    $("sign-confirm").disabled = false;
  }
}

/** Re-read the consultation (its status and claim) and the report, and show them. */
async function reloadAll() {
  const [c, again] = await Promise.all([api(base), api(`${base}/report`)]);
  if (c.ok) consultation = c.data;
  if (again.ok) report = again.data;
  render();
}

async function reviewed(message) {
  if (message) {
    $("report-signed-result").hidden = false;
    $("report-code-line").textContent = message;
    $("report-code").textContent = "";
    $("report-pdf-link").hidden = true;
  }
  await reloadAll();
}

async function correct() {
  const response = await api(`${base}/report/correction`, { method: "POST" });
  if (!response.ok) {
    showError(errorText(response, "correction_failed"));
    return;
  }
  showError("");
  report = response.data;
  $("report-signed-result").hidden = true;
  render();
}

form.addEventListener("input", (event) => {
  if (event.target.id !== "report-template") scheduleSave();
});
form.addEventListener("change", (event) => {
  if (event.target.type === "checkbox" || event.target.type === "radio") scheduleSave();
});
form.addEventListener("submit", (event) => {
  event.preventDefault();
  saveNow();
});
$("report-template").addEventListener("change", (event) => {
  const tpl = templates.find((x) => String(x.id) === event.target.value);
  if (tpl) applyTemplate(tpl);
});
$("report-claim").addEventListener("click", claim);
$("report-sign").addEventListener("click", openSignDialog);
$("report-correct").addEventListener("click", correct);
$("sign-form").addEventListener("submit", sign);
$("sign-cancel").addEventListener("click", () => $("sign-dialog").close());
setupReview({ base, payload, reload: reviewed, showError });
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
    event.preventDefault();
    saveNow();
  }
});
window.addEventListener("beforeunload", (event) => {
  if (dirty) event.preventDefault();
});

fitToWindow();
window.addEventListener("resize", fitToWindow);
load().catch(() => showError(t("network_error")));
