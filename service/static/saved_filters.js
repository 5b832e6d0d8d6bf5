// teleread — saved worklist filters: each user's named filter sets, kept on the server
// (GET/POST /api/worklist/filters, DELETE /api/worklist/filters/{id}). Choosing one applies it
// through worklist.js (the "worklist:apply-filters" event on the filter form).

import { api, el, redirectToLogin, t } from "./common.js";

const filterForm = document.getElementById("worklist-filters");
const select = document.getElementById("saved-filter-select");
const nameInput = document.getElementById("saved-filter-name");
const saveButton = document.getElementById("saved-filter-save");
const deleteButton = document.getElementById("saved-filter-delete");
const message = document.getElementById("saved-filter-message");

// The worklist's filter keys that take lists (the API's query lists); the rest are single.
const LISTS = ["status", "priority", "modality", "queue", "facility", "body_part"];
const SINGLES = ["assigned", "order"];
let saved = [];

function say(text, isError = false) {
  message.textContent = text;
  message.classList.toggle("form-error", isError);
}

/** The page's current filters in the API's shape (lists; facility ids as numbers). */
function currentFilters() {
  const filters = {};
  for (const name of LISTS) {
    const control = filterForm.elements[name];
    if (!control || !control.value) continue;
    const values = control.value.split(",").filter(Boolean);
    filters[name] = name === "facility" ? values.map(Number) : values;
  }
  for (const name of SINGLES) {
    const control = filterForm.elements[name];
    if (control && control.checked) filters[name] = control.value;
  }
  return filters;
}

function render(selectedId) {
  const options = saved.map((item) => el("option", { value: String(item.id), text: item.name }));
  select.replaceChildren(select.options[0], ...options);
  select.value = selectedId ? String(selectedId) : "";
  deleteButton.disabled = !select.value;
}

async function load(selectedId) {
  let result;
  try {
    result = await api("/api/worklist/filters");
  } catch (_err) {
    say(t("filters_load_failed"), true);
    return;
  }
  if (result.status === 401) return redirectToLogin();
  if (!result.ok || !result.data) return say(t("filters_load_failed"), true);
  saved = result.data.items || [];
  render(selectedId);
}

function chosen() {
  return saved.find((item) => String(item.id) === select.value) || null;
}

select.addEventListener("change", () => {
  deleteButton.disabled = !select.value;
  const item = chosen();
  if (!item) return;
  say("");
  filterForm.dispatchEvent(new CustomEvent("worklist:apply-filters", { detail: item.filters }));
});

async function save() {
  const name = nameInput.value.trim();
  if (!name) {
    say(t("filter_name_needed"), true);
    nameInput.focus();
    return;
  }
  saveButton.disabled = true;
  try {
    const result = await api("/api/worklist/filters", {
      method: "POST",
      json: { name, filters: currentFilters() },
    });
    if (result.status === 401) return redirectToLogin();
    if (result.ok) {
      nameInput.value = "";
      say(t("filter_saved", { name }));
      await load(result.data.id);
    } else if (result.status === 409 && result.data && result.data.error === "duplicate_name") {
      say(t("filter_duplicate"), true);
    } else {
      const detail = (result.data && result.data.detail) || `HTTP ${result.status}`;
      say(t("filter_save_failed", { detail }), true);
    }
  } catch (_err) {
    say(t("network_error"), true);
  } finally {
    saveButton.disabled = false;
  }
}

saveButton.addEventListener("click", save);
nameInput.addEventListener("keydown", (event) => {
  if (event.key !== "Enter") return;
  event.preventDefault();
  save();
});

deleteButton.addEventListener("click", async () => {
  const item = chosen();
  if (!item) return;
  deleteButton.disabled = true;
  try {
    const result = await api(`/api/worklist/filters/${item.id}`, { method: "DELETE" });
    if (result.status === 401) return redirectToLogin();
    if (result.ok || result.status === 404) {
      say(t("filter_deleted", { name: item.name }));
      await load(null);
    } else {
      say(t("filter_delete_failed"), true);
      deleteButton.disabled = false;
    }
  } catch (_err) {
    say(t("network_error"), true);
    deleteButton.disabled = false;
  }
});

load(null);
