// teleread — patient identities across facilities (administrators). GET
// /api/admin/patients/candidates lists the likely matches (name, birth date and sex agree, no
// shared identity number), GET /api/admin/patients/changes the link history; each decision
// (link, reject, unlink, reverse) is a POST with a reason, refused with 409 when the state
// moved on meanwhile. National identity numbers are shown in full: administrators only.

import { apiAnswer, el, errorText, formatDateTime, label, personName, redirectToLogin, t } from "./common.js";

const candidates = document.getElementById("patient-candidates");
const history = document.getElementById("patient-link-history");
const errorBox = document.getElementById("patients-error");
const statusBox = document.getElementById("patients-status");
const candidatesEmpty = document.getElementById("candidates-empty");
const historyEmpty = document.getElementById("history-empty");

const ERRORS = {
  candidate_decided: "decided",
  already_linked: "already_linked",
  already_reversed: "already_reversed",
  not_linked: "not_linked",
};

function when(iso) {
  const text = formatDateTime(iso);
  return text ? el("time", { dateTime: iso, text }) : "";
}

function birthDate(value) {
  return value && value.length === 8 ? `${value.slice(0, 4)}-${value.slice(4, 6)}-${value.slice(6)}` : "";
}

function identityCell(identity, withUnlink) {
  const cell = el("td", { className: "col-identity" });
  if (!identity) return cell;
  cell.append(
    el("div", { className: "identity-facility", text: identity.facility_name }),
    el("div", {}, el("code", { className: "identity-patient-id", text: identity.patient_id })),
    el("div", { className: "identity-name", text: personName(identity.name) }),
    el("div", {
      className: "identity-demographics",
      text: [
        identity.birth_date ? t("born", { date: birthDate(identity.birth_date) }) : "",
        label("sex", identity.sex),
      ]
        .filter(Boolean)
        .join(", "),
    }),
  );
  for (const found of identity.identifiers || []) {
    // A disputed number contradicts the record's birth date or sex: it links nothing.
    const disputed = found.disputed ? el("span", { className: "identity-disputed", text: ` (${t("disputed")})` }) : "";
    cell.append(
      el(
        "div",
        { className: "identity-number" },
        `${label("systems", found.system)}: `,
        el("code", { text: found.value }),
        disputed,
      ),
    );
  }
  if (withUnlink && identity.person_identities > 1) {
    const button = el("button", {
      type: "button",
      className: "button button-small identity-unlink",
      text: t("unlink", { patient: identity.patient_id }),
    });
    button.addEventListener("click", () => unlink(identity, button));
    cell.append(el("div", {}, button));
  }
  return cell;
}

function reasonInput(id, labelText) {
  const input = el("input", { type: "text", className: "decision-reason", maxLength: 1000, id });
  const wrap = el("div", { className: "field" }, el("label", { htmlFor: id, text: labelText }), input);
  return { input, wrap };
}

function candidateRow(candidate) {
  const reason = reasonInput(`candidate-reason-${candidate.id}`, t("reason_for", { id: candidate.id }));
  const link = el("button", { type: "button", className: "button button-small candidate-link", text: t("link") });
  const reject = el("button", { type: "button", className: "button button-small candidate-reject", text: t("reject") });
  link.addEventListener("click", () =>
    decide(`/api/admin/patients/candidates/${candidate.id}/link`, reason.input, "linked"),
  );
  reject.addEventListener("click", () =>
    decide(`/api/admin/patients/candidates/${candidate.id}/reject`, reason.input, "rejected"),
  );
  const why = (candidate.reasons || []).map((code) => label("match_reasons", code)).join(", ");
  return el(
    "tr",
    { className: "candidate-row", dataset: { candidateId: String(candidate.id) } },
    el("td", {}, when(candidate.found_at)),
    el("td", { className: "col-why", text: why }),
    identityCell(candidate.identity, false),
    identityCell(candidate.other, false),
    el("td", { className: "col-actions" }, reason.wrap, link, " ", reject),
  );
}

function changeRow(change) {
  const actions = el("td", { className: "col-actions" });
  let state = t("in_force");
  if (change.reversed_by) state = t("reversed_by", { id: change.reversed_by });
  if (change.reverses) state = t("reverses", { id: change.reverses });
  actions.append(el("div", { className: "change-state", text: state }));
  if (!change.reversed_by && change.method !== "reversal") {
    const reason = reasonInput(`change-reason-${change.id}`, t("reason_change", { id: change.id }));
    const button = el("button", { type: "button", className: "button button-small change-reverse", text: t("reverse") });
    button.addEventListener("click", () =>
      decide(`/api/admin/patients/changes/${change.id}/reverse`, reason.input, "reversed"),
    );
    actions.append(reason.wrap, button);
  }
  return el(
    "tr",
    { className: "change-row", dataset: { changeId: String(change.id) } },
    el("td", {}, when(change.at)),
    el("td", { text: `${label("actions", change.action)} (${label("methods", change.method)})` }),
    identityCell(change.identity, true),
    identityCell(change.other, true),
    el("td", { text: change.actor_name || "" }),
    el("td", { text: change.reason || "" }),
    actions,
  );
}

async function fill(table, url, build, emptyBox, emptyKey) {
  table.setAttribute("aria-busy", "true");
  const result = await apiAnswer(url);
  table.setAttribute("aria-busy", "false");
  if (!result.ok || !result.data) {
    if (result.status === 401) redirectToLogin();
    errorBox.textContent = errorText(result, "load_failed");
    return;
  }
  const items = result.data.items || [];
  table.tBodies[0].replaceChildren(...items.map(build));
  emptyBox.hidden = items.length > 0;
  emptyBox.textContent = items.length ? "" : t(emptyKey);
}

async function load() {
  await fill(candidates, "/api/admin/patients/candidates", candidateRow, candidatesEmpty, "empty");
  await fill(history, "/api/admin/patients/changes", changeRow, historyEmpty, "history_empty");
}

async function post(url, reason, doneKey) {
  const result = await apiAnswer(url, { method: "POST", json: { reason } });
  if (!result.ok) {
    if (result.status === 401) redirectToLogin();
    errorBox.textContent = errorText(result, "failed", ERRORS);
  } else {
    errorBox.textContent = "";
    statusBox.textContent = t(doneKey);
  }
  await load();
}

async function decide(url, input, doneKey) {
  const reason = input.value.trim();
  if (!reason) {
    errorBox.textContent = t("need_reason");
    input.focus();
    return;
  }
  await post(url, reason, doneKey);
}

async function unlink(identity, button) {
  const reason = (window.prompt(t("unlink_reason", { patient: identity.patient_id, facility: identity.facility_name })) || "").trim();
  if (!reason) return;
  button.disabled = true;
  await post(`/api/admin/patients/identities/${identity.id}/unlink`, reason, "unlinked");
}

load();
