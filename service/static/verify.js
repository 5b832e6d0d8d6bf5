// teleread — the public verification page: checks a report file against POST /api/verify
// (the file is the request body; nothing is kept).

import { csrfToken, t } from "./common.js";

// The signing time is rendered by the server in the signing facility's zone, zone named.
const form = document.getElementById("verify-file-form");
const result = document.getElementById("verify-file-result");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = document.getElementById("verify-file").files[0];
  if (!file) return;
  result.textContent = t("checking");
  try {
    const response = await fetch("/api/verify", {
      method: "POST",
      body: file,
      credentials: "same-origin",
      headers: { "Content-Type": "application/octet-stream", "X-CSRF-Token": csrfToken() },
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      result.textContent = t("file_failed", { status: response.status, detail: data.detail || data.error || "" });
    } else {
      result.textContent = data.valid
        ? t("file_valid")
        : t("file_invalid", { reasons: (data.reasons || []).join("; ") });
    }
  } catch (_err) {
    result.textContent = t("network_error");
  }
});
