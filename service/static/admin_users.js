// teleread — user administration. GET /api/admin/users (+ /api/admin/facilities for the
// facility choices); POST /api/admin/users; PATCH /api/admin/users/{id} for role, facility and
// the DICOM person name the reports' SR carries (empty: the server's dicom_name_derived);
// POST .../disable, .../enable, .../password. The server enforces every rule (last admin,
// self-lockout, validation); this page only explains its answers.

import { apiAnswer, el, errorText, formatDateTime, label, plural, redirectToLogin, strings, t } from "./common.js";

const USERNAME = /^[A-Za-z0-9._-]+$/;

const table = document.getElementById("users");
const form = document.getElementById("user-form");
const tbody = table.tBodies[0];
const formError = document.getElementById("user-form-error");
const formStatus = document.getElementById("user-form-status");
const listError = document.getElementById("users-error");
const listStatus = document.getElementById("users-status");
const emptyBox = document.getElementById("users-empty");
const countBox = document.getElementById("users-count");
const submit = document.getElementById("user-submit");
const facilitySelect = document.getElementById("user-facility");

const selfId = Number(table.dataset.selfId);
const minPassword = Number(table.dataset.minPassword) || 8;
const roles = Object.keys(strings.roles || {});
let facilities = [];

// ---- messages -------------------------------------------------------------------------

/** The page's messages for the API's error codes. */
const ERRORS = {
  username_taken: "username_taken",
  last_admin: "last_admin",
  self_lockout: "self_lockout",
  not_found: "not_found",
  forbidden: "forbidden",
  invalid_request: "invalid",
};

function say(errorNode, statusNode, error, status) {
  errorNode.textContent = error || "";
  statusNode.textContent = status || "";
}

/** A translated sentence for an error answer {ok, status, data}. */
function failure(result) {
  if (result.status === 401) redirectToLogin();
  return errorText(result, "failed", ERRORS);
}

// ---- table ----------------------------------------------------------------------------

function facilityOptions(selectedId) {
  return facilities.map((f) =>
    el("option", {
      value: String(f.id),
      text: `${f.name} (${f.aet})`,
      selected: f.id === selectedId,
    }),
  );
}

function roleSelect(user) {
  const select = el(
    "select",
    { className: "user-role-select", disabled: user.id === selfId },
    ...roles.map((code) =>
      el("option", { value: code, text: label("roles", code), selected: code === user.role }),
    ),
  );
  select.setAttribute("aria-label", user.username);
  select.addEventListener("change", () => patch(user, { role: select.value }, select));
  return select;
}

// The professional grade (worklists/review.py): whether a reader's reports go to a reviewer.
function gradeSelect(user) {
  const select = el(
    "select",
    { className: "user-grade-select" },
    ...Object.keys(strings.grades || {}).map((code) =>
      el("option", { value: code, text: label("grades", code), selected: code === user.grade }),
    ),
  );
  select.setAttribute("aria-label", `${t("grade")}: ${user.username}`);
  select.addEventListener("change", () => patch(user, { grade: select.value }, select));
  return select;
}

function facilitySelectFor(user) {
  const select = el(
    "select",
    { className: "user-facility-select" },
    ...facilityOptions(user.facility_id),
  );
  select.setAttribute("aria-label", user.username);
  select.addEventListener("change", () =>
    patch(user, { facility_id: Number(select.value) }, select),
  );
  return select;
}

/** The account's DICOM person name, saved when the field is left; when it is empty the hint
 * shows the name the SR derives from the display name (the server checks the syntax). */
function dicomNameCell(user) {
  const input = el("input", {
    type: "text",
    className: "dicom-name-input",
    value: user.dicom_name || "",
    placeholder: user.dicom_name_derived || "",
    autocomplete: "off",
    spellcheck: false,
    maxLength: 200,
  });
  input.setAttribute("aria-label", `${t("dicom_name")}: ${user.username}`);
  input.addEventListener("change", () => patch(user, { dicom_name: input.value.trim() }, input));
  const cell = el("td", { className: "col-dicom-name" }, input);
  if (!user.dicom_name && user.dicom_name_derived) {
    cell.append(
      el("p", {
        className: "hint dicom-name-derived",
        text: t("dicom_name_derived", { name: user.dicom_name_derived }),
      }),
    );
  }
  return cell;
}

function resetForm(user) {
  const input = el("input", {
    type: "password",
    className: "reset-password-input",
    autocomplete: "new-password",
    minLength: minPassword,
    placeholder: t("new_password"),
  });
  input.setAttribute("aria-label", t("new_password"));
  const save = el("button", {
    type: "submit",
    className: "button button-small button-primary",
    text: t("save"),
  });
  const cancel = el("button", { type: "button", className: "button button-small", text: t("cancel") });
  const box = el("form", { className: "reset-form", hidden: true, noValidate: true }, input, save, cancel);
  cancel.addEventListener("click", () => {
    input.value = "";
    box.hidden = true;
  });
  box.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (input.value.length < minPassword) {
      say(listError, listStatus, t("short_password", { n: minPassword }), "");
      input.focus();
      return;
    }
    save.disabled = true;
    const result = await apiAnswer(`/api/admin/users/${user.id}/password`, {
      method: "POST",
      json: { password: input.value },
    });
    save.disabled = false;
    if (result.ok) {
      input.value = "";
      box.hidden = true;
      say(listError, listStatus, "", `${user.username}: ${t("password_reset_done")}`);
      await load();
    } else {
      say(listError, listStatus, failure(result), "");
    }
  });
  return box;
}

function buildRow(user) {
  const row = el("tr", {
    className: "user-row",
    dataset: {
      userId: String(user.id),
      username: user.username,
      role: user.role,
      disabled: String(Boolean(user.disabled)),
    },
  });
  if (user.disabled) row.classList.add("is-disabled");

  const name = el("td", { className: "col-username" }, el("span", { text: user.username }));
  if (user.id === selfId) name.append(" ", el("span", { className: "muted", text: t("you") }));
  row.append(name);
  row.append(el("td", { className: "col-display-name", text: user.display_name || "" }));
  row.append(dicomNameCell(user));
  row.append(el("td", { className: "col-role" }, roleSelect(user), " ", gradeSelect(user)));
  row.append(el("td", { className: "col-facility" }, facilitySelectFor(user)));
  row.append(
    el(
      "td",
      { className: "col-state" },
      el("span", {
        className: `user-status ${user.disabled ? "status-disabled" : "status-active"}`,
        text: t(user.disabled ? "disabled" : "active"),
      }),
    ),
  );
  row.append(el("td", { className: "col-sessions", text: String(user.active_sessions ?? "") }));
  const created = formatDateTime(user.created_at);
  row.append(
    el(
      "td",
      { className: "col-created" },
      created ? el("time", { dateTime: user.created_at, title: user.created_at, text: created }) : "",
    ),
  );

  const toggle = el("button", {
    type: "button",
    className: "button button-small user-toggle",
    text: t(user.disabled ? "enable" : "disable"),
    disabled: user.id === selfId && !user.disabled,
  });
  toggle.addEventListener("click", () => setDisabled(user, !user.disabled, toggle));
  const reset = resetForm(user);
  const resetButton = el("button", {
    type: "button",
    className: "button button-small user-reset",
    text: t("reset_password"),
  });
  resetButton.addEventListener("click", () => {
    reset.hidden = !reset.hidden;
    if (!reset.hidden) reset.querySelector("input").focus();
  });
  row.append(
    el(
      "td",
      { className: "col-actions" },
      el("div", { className: "row-actions" }, toggle, resetButton),
      reset,
    ),
  );
  return row;
}

function render(users) {
  tbody.replaceChildren(...users.map(buildRow));
  emptyBox.hidden = users.length > 0;
  emptyBox.textContent = users.length ? "" : t("empty");
  countBox.textContent = plural("accounts", users.length);
}

function fillFacilityChoices() {
  const chosen = Number(facilitySelect.value) || null;
  facilitySelect.replaceChildren(...facilityOptions(chosen));
}

async function load() {
  table.setAttribute("aria-busy", "true");
  const [facilityResult, userResult] = await Promise.all([
    apiAnswer("/api/admin/facilities"),
    apiAnswer("/api/admin/users"),
  ]);
  table.setAttribute("aria-busy", "false");
  for (const result of [facilityResult, userResult]) {
    if (!result.ok || !result.data) {
      listError.textContent =
        result.status === 0 ? t("network_error") : t("load_failed", { status: result.status });
      if (result.status === 401) redirectToLogin();
      return;
    }
  }
  listError.textContent = "";
  facilities = facilityResult.data.items || [];
  fillFacilityChoices();
  render(userResult.data.items || []);
}

// ---- changes --------------------------------------------------------------------------

async function patch(user, body, control) {
  control.disabled = true;
  say(listError, listStatus, "", t("saving"));
  const result = await apiAnswer(`/api/admin/users/${user.id}`, { method: "PATCH", json: body });
  control.disabled = false;
  if (result.ok) {
    say(listError, listStatus, "", `${user.username}: ${t("saved")}`);
  } else {
    say(listError, listStatus, failure(result), "");
  }
  await load(); // the table shows the server's state either way
}

async function setDisabled(user, disabled, button) {
  button.disabled = true;
  const action = disabled ? "disable" : "enable";
  const result = await apiAnswer(`/api/admin/users/${user.id}/${action}`, { method: "POST" });
  if (result.ok) {
    const text = t(disabled ? "disabled_done" : "enabled_done");
    say(listError, listStatus, "", `${user.username}: ${text}`);
  } else {
    say(listError, listStatus, failure(result), "");
  }
  await load();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = {
    username: form.elements.username.value.trim(),
    display_name: form.elements.display_name.value.trim(),
    dicom_name: form.elements.dicom_name.value.trim(),
    role: form.elements.role.value,
    facility_id: Number(form.elements.facility_id.value),
    password: form.elements.password.value,
  };
  if (!body.username || !body.role || !body.facility_id || !body.password) {
    say(formError, formStatus, t("missing_fields"), "");
    return;
  }
  if (!USERNAME.test(body.username)) {
    say(formError, formStatus, t("bad_username"), "");
    form.elements.username.focus();
    return;
  }
  if (body.password.length < minPassword) {
    say(formError, formStatus, t("short_password", { n: minPassword }), "");
    form.elements.password.focus();
    return;
  }
  submit.disabled = true;
  say(formError, formStatus, "", t("saving"));
  const result = await apiAnswer("/api/admin/users", { method: "POST", json: body });
  submit.disabled = false;
  if (result.ok) {
    say(formError, formStatus, "", t("created", { username: body.username }));
    form.elements.username.value = "";
    form.elements.display_name.value = "";
    form.elements.dicom_name.value = "";
    form.elements.password.value = "";
    await load();
  } else {
    say(formError, formStatus, failure(result), "");
  }
});

countBox.textContent = t("loading");
load();
