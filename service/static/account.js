// teleread — own account. POST /api/me/password with the current and the new password; the
// server logs out every other session of the account and keeps this one.

import { api, errorText, t } from "./common.js";

const form = document.getElementById("password-form");
const errorBox = document.getElementById("password-error");
const statusBox = document.getElementById("password-status");
const submit = document.getElementById("password-submit");
const minPassword = Number(form.dataset.minPassword) || 8;

function say(error, status) {
  errorBox.textContent = error || "";
  statusBox.textContent = status || "";
}

function problem(current, next, confirm) {
  if (!current || !next || !confirm) return t("missing_fields");
  if (next.length < minPassword) return t("short_password", { n: minPassword });
  if (next !== confirm) return t("mismatch");
  return "";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const current = form.elements.current_password.value;
  const next = form.elements.new_password.value;
  const confirm = form.elements.confirm_password.value;
  const wrong = problem(current, next, confirm);
  if (wrong) {
    say(wrong, "");
    return;
  }
  submit.disabled = true;
  say("", t("saving"));
  try {
    const result = await api("/api/me/password", {
      method: "POST",
      json: { current_password: current, new_password: next },
    });
    if (result.ok) {
      form.reset();
      say("", t("changed"));
    } else {
      say(
        errorText(result, "failed", {
          wrong_password: "wrong_password",
          too_many_attempts: "too_many_attempts",
        }),
        "",
      );
      if (result.status === 403) form.elements.current_password.focus();
    }
  } catch (_err) {
    say(t("network_error"), "");
  }
  submit.disabled = false;
});
