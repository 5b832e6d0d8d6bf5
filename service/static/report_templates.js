// teleread — report templates for managers and admins: list, create, edit, delete, and the
// macros (label, field, text) the report editor shows as buttons. Data: /api/report-templates.

import { $, api, el, errorText, label, t } from "./common.js";

const FIELDS = ["findings", "impression", "recommendation"];
let templates = [];
let editing = null;

function macroRow(macro) {
  const index = document.querySelectorAll(".macro-row").length;
  const select = el("select", { className: "macro-field", id: `macro-field-${index}` });
  for (const field of FIELDS) select.append(el("option", { value: field, text: t(field) }));
  select.value = macro.field || "findings";
  const remove = el("button", { type: "button", className: "button button-small button-quiet", text: t("remove") });
  const row = el(
    "div",
    { className: "macro-row" },
    el("label", { htmlFor: `macro-label-${index}`, text: t("macro_label") }),
    el("input", { className: "macro-label", id: `macro-label-${index}`, value: macro.label || "", maxLength: 80 }),
    el("label", { htmlFor: `macro-field-${index}`, text: t("macro_field") }),
    select,
    el("label", { htmlFor: `macro-text-${index}`, text: t("macro_text") }),
    el("input", { className: "macro-text", id: `macro-text-${index}`, value: macro.text || "", maxLength: 4000 }),
    remove,
  );
  remove.addEventListener("click", () => row.remove());
  $("template-macros").append(row);
}

function fillForm(tpl) {
  editing = tpl ? tpl.id : null;
  $("template-form-title").textContent = tpl ? t("edit_template", { name: tpl.name }) : t("new_template");
  $("template-name").value = tpl ? tpl.name : "";
  $("template-modality").value = tpl ? tpl.modality : "";
  $("template-body-part").value = tpl ? tpl.body_part : "";
  for (const field of FIELDS) $(`template-${field}`).value = tpl ? tpl[field] : "";
  $("template-macros").replaceChildren();
  for (const macro of (tpl && tpl.macros) || []) macroRow(macro);
  $("template-status").textContent = "";
}

function formBody() {
  const macros = [...document.querySelectorAll(".macro-row")]
    .map((row) => ({
      label: row.querySelector(".macro-label").value.trim(),
      field: row.querySelector(".macro-field").value,
      text: row.querySelector(".macro-text").value,
    }))
    .filter((m) => m.label || m.text);
  const body = {
    name: $("template-name").value.trim(),
    modality: $("template-modality").value.trim(),
    body_part: $("template-body-part").value.trim(),
    macros,
  };
  for (const field of FIELDS) body[field] = $(`template-${field}`).value;
  return body;
}

function render() {
  const rows = templates.map((tpl) => {
    const edit = el("button", { type: "button", className: "button button-small", text: t("edit") });
    const remove = el("button", { type: "button", className: "button button-small button-quiet", text: t("delete") });
    edit.addEventListener("click", () => fillForm(tpl));
    remove.addEventListener("click", () => removeTemplate(tpl));
    return el(
      "tr",
      { dataset: { templateId: String(tpl.id) } },
      el("td", { text: tpl.name }),
      el("td", { text: tpl.modality || t("any") }),
      el("td", { text: label("body_part", tpl.body_part) || t("any") }),
      el("td", { text: tpl.macros.map((m) => m.label).join(", ") }),
      el("td", {}, edit, " ", remove),
    );
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 5, className: "muted", text: t("empty") })));
  $("templates-rows").replaceChildren(...rows);
}

async function load() {
  const response = await api("/api/report-templates");
  if (!response.ok) {
    $("templates-error").textContent = t("load_failed", { status: response.status });
    return;
  }
  templates = response.data.items;
  render();
}

async function removeTemplate(tpl) {
  if (!window.confirm(t("confirm_delete", { name: tpl.name }))) return;
  const response = await api(`/api/report-templates/${tpl.id}`, { method: "DELETE" });
  if (!response.ok) {
    $("templates-error").textContent = errorText(response, "save_failed");
    return;
  }
  if (editing === tpl.id) fillForm(null);
  $("templates-error").textContent = "";
  await load();
}

$("template-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const url = editing ? `/api/report-templates/${editing}` : "/api/report-templates";
  const response = await api(url, { method: editing ? "PUT" : "POST", json: formBody() });
  if (!response.ok) {
    $("template-status").textContent = errorText(response, "save_failed");
    return;
  }
  fillForm(response.data);
  $("template-status").textContent = t("saved");
  await load();
});
$("template-add-macro").addEventListener("click", () => macroRow({}));
$("template-reset").addEventListener("click", () => fillForm(null));

load().catch(() => {
  $("templates-error").textContent = t("network_error");
});
