// teleread — login page. POST /api/login, then go to the form's data-next path.

import { api, safeNextPath, t } from "./common.js";

const form = document.getElementById("login-form");
const errorBox = document.getElementById("login-error");
const submit = form.querySelector('button[type="submit"]');
const submitText = submit.textContent;

function showError(text) {
  errorBox.textContent = text;
}

function setBusy(busy) {
  submit.disabled = busy;
  submit.textContent = busy ? t("logging_in") : submitText;
  form.setAttribute("aria-busy", busy ? "true" : "false");
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const username = form.elements.username.value.trim();
  const password = form.elements.password.value;
  if (!username || !password) {
    showError(t("missing_fields"));
    (username ? form.elements.password : form.elements.username).focus();
    return;
  }
  showError("");
  setBusy(true);
  try {
    const result = await api("/api/login", { method: "POST", json: { username, password } });
    if (result.ok) {
      location.assign(safeNextPath(form.dataset.next));
      return;
    }
    const code = result.data && result.data.error;
    if (result.status === 401 || code === "invalid_credentials") {
      showError(t("invalid_credentials"));
      form.elements.password.value = "";
      form.elements.password.focus();
    } else if (result.status === 429 || code === "too_many_attempts") {
      const seconds = (result.data && result.data.retry_after) || 60;
      showError(t("too_many_attempts", { seconds }));
    } else {
      showError(t("login_failed", { status: result.status }));
    }
  } catch (_err) {
    showError(t("network_error"));
  }
  setBusy(false);
});
