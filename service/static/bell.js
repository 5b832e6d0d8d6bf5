// teleread — the notifications bell in the page header (every page of a logged-in user).
// GET /api/notifications/unread gives the badge's count: the bell polls it every 30 s (and when
// the tab comes back into view), since the live worklist stream carries no notifications.
// Opening the dropdown fetches GET /api/notifications: one's own notices, unread first, already
// in the page's language and naming the patient and study (an audited read, hence not polled
// while the dropdown is closed). "Mark read" posts /api/notifications/{id}/read.

import { api, el, formatDateTime, personName, t } from "./common.js";


const POLL_MS = 30000;
const button = document.getElementById("bell-button");
const count = document.getElementById("bell-count");
const panel = document.getElementById("bell-panel");
const list = document.getElementById("bell-list");
const empty = document.getElementById("bell-empty");
const errorBox = document.getElementById("bell-error");
let timer = null;

function renderCount(unread) {
  count.hidden = !unread;
  count.textContent = unread ? String(unread) : "";
  button.title = unread ? t("bell_unread", { n: unread }) : "";
  button.dataset.unread = String(unread);
}

function renderItem(item) {
  const unread = item.read_at == null;
  const li = el("li", {
    className: `bell-item${unread ? " bell-unread" : ""}`,
    dataset: { notificationId: String(item.id) },
  });
  if (item.kind === "critical_finding") li.classList.add("bell-critical");
  li.append(el("div", { className: "bell-title", text: item.title || "" }));
  if (item.body) li.append(el("div", { className: "bell-body", text: item.body }));
  if (!item.message && (item.patient_name || item.patient_id)) {
    // A notice stored before messages had codes: name the patient beside its stored text.
    const who = [personName(item.patient_name), item.patient_id, item.study].filter(Boolean);
    li.append(el("div", { className: "bell-patient", text: who.join(" · ") }));
  }
  const meta = el("div", { className: "bell-meta" });
  const when = formatDateTime(item.created_at);
  if (when) meta.append(el("time", { dateTime: item.created_at, text: when }));
  const link = item.link || (item.consultation_id != null ? `/consultations/${item.consultation_id}` : null);
  if (link) meta.append(" ", el("a", { className: "bell-link", href: link, text: t("bell_open") }));
  if (unread) {
    const mark = el("button", {
      type: "button",
      className: "button button-small bell-mark-read",
      text: t("bell_mark_read"),
    });
    mark.addEventListener("click", () => markRead(item.id, mark));
    meta.append(" ", mark);
  }
  li.append(meta);
  return li;
}

/** The badge alone (polled); the list too while the dropdown is open. */
async function refresh() {
  if (!panel.hidden) return refreshList();
  let result;
  try {
    result = await api("/api/notifications/unread");
  } catch (_err) {
    return;
  }
  if (result.ok && result.data) renderCount(Number(result.data.unread) || 0);
}

async function refreshList() {
  let result;
  try {
    result = await api("/api/notifications");
  } catch (_err) {
    errorBox.textContent = t("bell_failed");
    return;
  }
  if (result.status === 401) return; // the page's own script sends the user to log in
  if (!result.ok || !result.data) {
    errorBox.textContent = t("bell_failed");
    return;
  }
  errorBox.textContent = "";
  const items = result.data.items || [];
  renderCount(Number(result.data.unread) || 0);
  list.replaceChildren(...items.map(renderItem));
  empty.hidden = items.length > 0;
}

async function markRead(id, control) {
  control.disabled = true;
  try {
    const result = await api(`/api/notifications/${id}/read`, { method: "POST" });
    if (!result.ok && result.status !== 404) errorBox.textContent = t("bell_failed");
  } catch (_err) {
    errorBox.textContent = t("network_error");
  }
  await refresh();
}

function setOpen(open) {
  panel.hidden = !open;
  button.setAttribute("aria-expanded", String(open));
  if (open) refresh();
}

button.addEventListener("click", () => setOpen(panel.hidden));
document.addEventListener("click", (event) => {
  if (!panel.hidden && !event.target.closest("#bell")) setOpen(false);
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !panel.hidden) {
    setOpen(false);
    button.focus();
  }
});

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    if (!document.hidden) await refresh();
    schedule();
  }, POLL_MS);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refresh();
});

refresh();
schedule();
