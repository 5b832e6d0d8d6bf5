// teleread — the page header's controls on every page: the logout button and the language links.

import { api, showStatus, t } from "./common.js";

// Logout button: POST /api/logout, then the login page whatever the answer.
const logoutButton = document.getElementById("logout-button");
if (logoutButton) {
  logoutButton.addEventListener("click", async () => {
    logoutButton.disabled = true;
    showStatus(t("logging_out"));
    try {
      await api("/api/logout", { method: "POST" });
      location.assign("/login");
    } catch (_err) {
      logoutButton.disabled = false;
      showStatus(t("network_error"));
    }
  });
}

// Language links keep the rest of the query string (e.g. worklist filters).
for (const link of document.querySelectorAll("a[data-lang]")) {
  link.addEventListener("click", (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    const url = new URL(location.href);
    url.searchParams.set("lang", link.dataset.lang);
    location.assign(url.pathname + url.search + url.hash);
  });
}
