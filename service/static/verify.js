// teleread — the public verification page: shows the signing time in the reader's locale and
// checks a report file against POST /api/verify (the file is the request body; nothing is kept).
"use strict";

(() => {
  const { t, formatDateTime, csrfToken } = window.teleread;
  for (const node of document.querySelectorAll("time.verify-time")) {
    node.textContent = formatDateTime(node.dateTime) || node.textContent;
  }
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
})();
