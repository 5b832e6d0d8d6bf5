// teleread — worklist page. GET /api/worklist, refetched when /api/worklist/events (Server-Sent
// Events) reports a change; polled every 30 s while the stream is up, every 5 s while it is down.
// Rows are built with createElement/textContent only: patient data is untrusted.
// Specialists claim and release rows here (409 "claimed" shows who holds it). Column sorting is
// client-side, over the rows loaded so far; the last filters used live in this browser's
// localStorage, keyed by username (named filter sets are on the server: saved_filters.js). Keys: j/k or arrows move the selection, Enter claims
// a free row or opens the selected one.

import { api, el, formatDateTime, formatShortDateTime, formatTime, label, personName, plural, redirectToLogin, t } from "./common.js";
import { countdownText } from "./countdown.js";

const REFRESH_MS = 5000; // poll while the live stream is down
const LIVE_REFRESH_MS = 30000; // fallback poll while it is up
const CHANGE_DEBOUNCE_MS = 150;
const MUTE_KEY = "teleread.worklist.alerts-muted";
const PAGE_SIZE = 50;
const PRIORITIES = new Set(["stat", "urgent", "routine"]);
const STATUSES = new Set(["awaiting_images", "awaiting_request", "ready", "awaiting_review"]);
const FILTERS = ["status", "priority", "modality", "queue", "facility", "body_part", "assigned", "order"];
const CHECKBOXES = new Set(["assigned", "order"]);
const PRIORITY_RANK = { stat: 0, urgent: 1, routine: 2 };

/** A patient's name as people write it; a dash when the study has none. */
const patientName = (name) => personName(name) || "—";

const table = document.getElementById("worklist");
const tbody = table.tBodies[0];
const countsBox = document.getElementById("worklist-counts");
const emptyBox = document.getElementById("worklist-empty");
const errorBox = document.getElementById("worklist-error");
const updatedBox = document.getElementById("worklist-updated");
const loadMoreButton = document.getElementById("load-more");
const filterForm = document.getElementById("worklist-filters");
const queueCountsBox = document.getElementById("worklist-queue-counts");
const me = {
  id: Number(filterForm.dataset.userId) || null,
  username: filterForm.dataset.username || "",
  role: filterForm.dataset.role || "",
};
const canClaim = me.role === "specialist";
const canReassign = me.role === "manager";
// The centre's subspecialty queues, claims and alerts are the readers' and managers' tools.
const showQueue = me.role === "specialist" || me.role === "manager";
const SAVED_KEY = `teleread.worklist.filters.${me.username}`;

const state = {
  filters: Object.fromEntries(FILTERS.map((name) => [name, ""])),
  sort: { key: null, dir: 1 }, // client-side sort of the loaded rows
  selectedId: null, // consultation id of the keyboard selection
  pages: 1, // pages shown; a refresh reloads this many
  next: null, // cursor of the page after the last one shown
  generation: 0, // bumped when filters change: stale answers are dropped
  controller: null, // AbortController of the request in flight
  busy: false,
  timer: null,
  live: false, // the event stream is open
  changeTimer: null,
  updatedAt: null,
};

// ---- filters <-> URL --------------------------------------------------------------

/** Make sure a dynamic select (queue, facility) offers `value`, labelled `text`. */
function ensureOption(select, value, text) {
  if (!value) return;
  let option = [...select.options].find((o) => o.value === value);
  if (!option) {
    option = el("option", { value, text: text || value });
    select.append(option);
  } else if (text && option.textContent !== text) {
    option.textContent = text;
  }
}

function setControl(name, value) {
  const control = filterForm.elements[name];
  if (!control) return;
  if (CHECKBOXES.has(name)) {
    control.checked = value === control.value;
    state.filters[name] = control.checked ? control.value : "";
    return;
  }
  if (name === "queue" || name === "facility") ensureOption(control, value);
  if ([...control.options].some((option) => option.value === value)) {
    control.value = value;
    state.filters[name] = value;
  }
}

function savedFilters() {
  try {
    return JSON.parse(localStorage.getItem(SAVED_KEY) || "null");
  } catch (_err) {
    return null;
  }
}

function saveFilters() {
  try {
    localStorage.setItem(SAVED_KEY, JSON.stringify(state.filters));
  } catch (_err) {
    // storage disabled: filters stay in the URL only
  }
}

/** The URL wins; else this user's saved filters; else the defaults in the form. */
function readFilters() {
  for (const name of FILTERS) {
    const control = filterForm.elements[name];
    if (control && CHECKBOXES.has(name)) state.filters[name] = control.checked ? control.value : "";
  }
  const params = new URLSearchParams(location.search);
  const fromUrl = FILTERS.some((name) => params.has(name));
  const saved = fromUrl ? null : savedFilters();
  for (const name of FILTERS) {
    if (fromUrl) setControl(name, params.get(name) || "");
    else if (saved && typeof saved[name] === "string") setControl(name, saved[name]);
  }
}

function writeFiltersToUrl() {
  const url = new URL(location.href);
  for (const name of FILTERS) {
    if (state.filters[name]) url.searchParams.set(name, state.filters[name]);
    else url.searchParams.delete(name);
  }
  url.searchParams.delete("lang");
  history.replaceState(null, "", url.pathname + url.search + url.hash);
  saveFilters();
}

function filtersActive() {
  return FILTERS.some((name) => name !== "order" && state.filters[name]);
}

// ---- rendering ----------------------------------------------------------------------

/** A time cell; ``first`` (the time left of a due time) leads, so it stays in view when a
 * narrow column cuts the line. */
function timeCell(className, iso, emptyText, first) {
  const line = el("div", { className: "cell-line" });
  if (first) line.append(first);
  const shown = formatShortDateTime(iso);
  if (shown) line.append(el("time", { dateTime: iso, title: formatDateTime(iso), text: shown }));
  else if (!first) line.append(el("span", { className: "muted", text: emptyText }));
  return el("td", { className }, line);
}

function buildRow(item, nowMs) {
  const priority = PRIORITIES.has(item.priority) ? item.priority : "unknown";
  const status = STATUSES.has(item.status) ? item.status : "unknown";
  const row = el("tr", {
    className: "worklist-row",
    dataset: {
      studyUid: item.study_instance_uid || "",
      consultationId: String(item.id),
      priority: item.priority || "",
      status: item.status || "",
      patient: patientName(item.patient_name),
      facility: item.facility || "",
      modality: item.modality || "",
      bodyPart: item.body_part || "",
      queue: item.queue || "",
      receivedAt: item.received_at || "",
      dueAt: item.due_at || "",
    },
  });
  row.tabIndex = -1;

  row.append(
    el(
      "td",
      { className: "col-priority" },
      el("span", {
        className: `badge badge-${priority}`,
        text: label("priority", item.priority),
      }),
      item.escalation
        ? el("span", {
            className: "badge badge-escalated",
            text: t("escalated"),
            title: t(item.escalation === "overdue" ? "escalated_overdue" : "escalated_unclaimed"),
          })
        : null,
    ),
  );

  // One line per row (a dense list): name · ID · Open; the question has its own column, cut
  // with an ellipsis and whole in its tooltip.
  const name = patientName(item.patient_name);
  const ids = [item.patient_id, item.accession_number].filter(Boolean).join(" · ");
  const patient = el("div", { className: "cell-line" });
  patient.append(el("span", { className: "patient-name", text: name }));
  if (item.patient_id) patient.append(el("span", { className: "patient-id", text: item.patient_id }));
  row.append(
    el("td", { className: "col-patient", title: ids ? `${name}\n${ids}` : name }, patient),
  );
  const question = el("div", { className: "cell-line" });
  if (item.received_at) {
    question.append(el("a", { className: "open-viewer", href: `/viewer/${item.id}`, text: t("open") }));
  }
  // The count of earlier studies sits by Open (the viewer's Compare offers them), where the
  // question, cut first, gives way to it; the patient's name keeps its room.
  const priors = Number(item.prior_count) || 0;
  row.dataset.priorCount = String(priors);
  if (priors > 0) {
    question.append(
      el("span", {
        className: "prior-count",
        text: plural("prior_count", priors),
        title: plural("prior_count_title", priors),
      }),
    );
  }
  if (item.clinical_question) {
    question.append(
      el("span", {
        className: "clinical-question",
        title: item.clinical_question,
        text: item.clinical_question,
      }),
    );
  }
  row.append(el("td", { className: "col-question" }, question));

  row.append(el("td", { className: "col-facility", text: item.facility || "" }));
  row.append(el("td", { className: "col-modality", text: item.modality || "" }));
  row.append(
    el("td", { className: "col-body-part", text: label("body_part", item.body_part) }),
  );
  if (showQueue) row.append(el("td", { className: "col-queue", text: item.queue || "" }));
  row.append(
    el(
      "td",
      { className: "col-status" },
      el("span", { className: `status status-${status}`, text: label("status", item.status) }),
    ),
  );

  row.append(timeCell("col-received", item.received_at, t("not_received")));

  let left = null;
  const info = countdownText(item.due_at ? Date.parse(item.due_at) : NaN, nowMs, t);
  if (info) {
    left = el("span", { className: "time-left", text: info.text });
    if (info.cls) row.classList.add(info.cls);
  }
  const dueCell = timeCell("col-due", item.due_at, "—", left);
  // Whole, when a narrow window cuts the line.
  dueCell.title = [left && left.textContent, formatDateTime(item.due_at)].filter(Boolean).join(" · ");
  row.append(dueCell);
  const claimCell = el("td", { className: "col-claim" });
  row.append(claimCell);
  renderClaim(row, item);
  return row;
}

/** The reader cell: "Yours" + Release, "Held by X", or a Claim button (specialists). */
function renderClaim(row, item, message) {
  const cell = row.querySelector(".col-claim");
  const heldByMe = item.claimed_by_id != null && item.claimed_by_id === me.id;
  const claimState = item.claimed_by_id == null ? "free" : heldByMe ? "mine" : "held";
  row.dataset.claim = claimState;
  const hasImages = Boolean(item.received_at) && item.status !== "awaiting_images";
  row.dataset.claimable = String(canClaim && claimState === "free" && hasImages);
  row.classList.toggle("claimed-mine", claimState === "mine");
  row.classList.toggle("claimed-other", claimState === "held");
  const parts = [];
  if (claimState === "mine") {
    parts.push(el("span", { className: "claim-badge claim-mine", text: t("yours") }));
    if (canClaim) parts.push(claimButton(row, item, "release"));
  } else if (claimState === "held") {
    parts.push(
      el("span", {
        className: "claim-badge claim-held",
        text: t("held_by", { name: item.claimed_by || "?" }),
      }),
    );
  } else if (row.dataset.claimable === "true") {
    parts.push(claimButton(row, item, "claim"));
  }
  if (canReassign) {
    // Opened by /static/reassign.js (a dialog listing who can take it).
    parts.push(
      " ",
      el("button", {
        type: "button",
        className: "button button-small reassign-action",
        text: t("reassign"),
      }),
    );
  }
  if (canClaim) {
    parts.push(" ", el("a", { className: "button button-small report-link", href: `/consultations/${item.id}/report`, text: t("report_link") }));
  }
  if (message) parts.push(el("div", { className: "claim-error", role: "alert", text: message }));
  cell.replaceChildren(...parts);
}

function claimButton(row, item, action) {
  const button = el("button", {
    type: "button",
    className: `button button-small claim-action claim-${action}`,
    text: t(action),
  });
  button.addEventListener("click", () => claimAction(row, item, action, button));
  return button;
}

async function claimAction(row, item, action, button) {
  if (button) button.disabled = true;
  let result;
  try {
    result = await api(`/api/consultations/${item.id}/${action}`, { method: "POST" });
  } catch (_err) {
    renderClaim(row, item, t("network_error"));
    return;
  }
  if (result.status === 401) {
    redirectToLogin();
    return;
  }
  const data = result.data || {};
  if (result.ok) {
    Object.assign(item, {
      claimed_by: data.claimed_by,
      claimed_by_id: data.claimed_by_id,
      claim_expires_at: data.claim_expires_at,
    });
    renderClaim(row, item);
  } else if (result.status === 409 && data.error === "claimed") {
    Object.assign(item, { claimed_by: data.claimed_by, claimed_by_id: data.claimed_by_id });
    renderClaim(row, item);
  } else {
    const message =
      action === "claim"
        ? t("claim_failed", { detail: data.detail || `HTTP ${result.status}` })
        : t("release_failed");
    renderClaim(row, item, message);
  }
  changed();
}

function renderCounts(counts) {
  if (!counts) {
    countsBox.textContent = "";
    return;
  }
  const parts = [plural("consultations", Number(counts.total) || 0)];
  const byPriority = counts.priority || {};
  if (byPriority.stat) parts.push(t("stat_count", { n: byPriority.stat }));
  if (byPriority.urgent) parts.push(t("urgent_count", { n: byPriority.urgent }));
  countsBox.textContent = parts.join(" · ");
  const byQueue = Object.entries(counts.queue || {}).sort((a, b) => b[1] - a[1]);
  const queueSelect = filterForm.elements.queue;
  if (queueSelect) for (const [queue] of byQueue) ensureOption(queueSelect, queue);
  queueCountsBox.textContent = showQueue && byQueue.length
    ? t("queue_counts", {
        list: byQueue.map(([queue, n]) => t("queue_count", { queue, n })).join(" · "),
      })
    : "";
}

function learnFacilities(items) {
  const select = filterForm.elements.facility;
  if (!select) return; // clinic roles see their own facility only
  for (const item of items) ensureOption(select, String(item.facility_id), item.facility);
}

function renderEmpty() {
  const empty = tbody.rows.length === 0;
  emptyBox.hidden = !empty;
  emptyBox.textContent = empty ? t(filtersActive() ? "empty_filtered" : "empty") : "";
}

function renderNext(next) {
  state.next = next || null;
  loadMoreButton.hidden = !state.next;
}

function showError(text) {
  if (errorBox.textContent !== text) errorBox.textContent = text;
}

// ---- loading ------------------------------------------------------------------------

class SessionExpired extends Error {}

async function fetchPage(cursor, signal) {
  const params = new URLSearchParams();
  for (const name of FILTERS) if (state.filters[name]) params.set(name, state.filters[name]);
  params.set("limit", String(PAGE_SIZE));
  if (cursor) params.set("cursor", cursor);
  const result = await api(`/api/worklist?${params}`, { signal });
  if (result.status === 401) throw new SessionExpired();
  if (!result.ok || !result.data) throw new Error(`HTTP ${result.status}`);
  return result.data;
}

/** Run one load task; a newer task (filter change, load more) aborts an older one. */
async function run(task, { preempt }) {
  if (state.busy && !preempt) return;
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  const generation = state.generation;
  state.controller = controller;
  state.busy = true;
  table.setAttribute("aria-busy", "true");
  try {
    await task(controller.signal, () => generation === state.generation);
    showError("");
    state.updatedAt = new Date();
    renderUpdated();
  } catch (err) {
    if (err instanceof SessionExpired) {
      redirectToLogin();
      return;
    }
    if (err.name !== "AbortError") showError(t("refresh_failed"));
  } finally {
    if (state.controller === controller) {
      state.controller = null;
      state.busy = false;
      table.setAttribute("aria-busy", "false");
    }
  }
}

/** Reload the first `state.pages` pages and replace the table body. */
function reload(signal, current) {
  return (async () => {
    const rows = [];
    let cursor = null;
    let data = null;
    const nowMs = Date.now();
    for (let page = 0; page < state.pages; page += 1) {
      data = await fetchPage(cursor, signal);
      for (const item of data.items || []) rows.push(buildRow(item, nowMs));
      learnFacilities(data.items || []);
      cursor = data.next;
      if (!cursor) break;
    }
    if (!current()) return;
    tbody.replaceChildren(...rows);
    applySort();
    restoreSelection();
    renderCounts(data && data.counts);
    renderNext(cursor);
    renderEmpty();
  })();
}

function loadMore(signal, current) {
  return (async () => {
    const cursor = state.next;
    if (!cursor) return;
    const data = await fetchPage(cursor, signal);
    if (!current()) return;
    const nowMs = Date.now();
    tbody.append(...(data.items || []).map((item) => buildRow(item, nowMs)));
    learnFacilities(data.items || []);
    applySort();
    state.pages += 1;
    renderCounts(data.counts);
    renderNext(data.next);
    renderEmpty();
  })();
}

function renderUpdated() {
  const parts = [];
  if (state.updatedAt) parts.push(t("updated", { time: formatTime(state.updatedAt) }));
  parts.push(t(state.live ? "live_on" : "live_off"));
  updatedBox.textContent = parts.join(" · ");
  updatedBox.dataset.live = state.live ? "on" : "off";
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(tick, state.live ? LIVE_REFRESH_MS : REFRESH_MS);
}

async function tick() {
  if (!document.hidden) await run(reload, { preempt: false });
  schedule();
}

// ---- events -------------------------------------------------------------------------

filterForm.addEventListener("submit", (event) => event.preventDefault());
filterForm.addEventListener("change", async (event) => {
  const name = event.target.name;
  if (!FILTERS.includes(name)) return;
  state.filters[name] = CHECKBOXES.has(name)
    ? event.target.checked
      ? event.target.value
      : ""
    : event.target.value;
  await refilter();
});

/** The filters changed: back to the first page, remember them, reload. */
async function refilter() {
  state.generation += 1;
  state.pages = 1;
  writeFiltersToUrl();
  await run(reload, { preempt: true });
  schedule();
}

// A saved filter set (saved_filters.js) replaces every filter at once; names it lacks clear.
filterForm.addEventListener("worklist:apply-filters", (event) => {
  const filters = event.detail || {};
  for (const name of FILTERS) {
    const value = filters[name];
    setControl(name, "");
    setControl(name, Array.isArray(value) ? value.join(",") : value == null ? "" : String(value));
  }
  refilter();
});

loadMoreButton.addEventListener("click", async () => {
  loadMoreButton.disabled = true;
  await run(loadMore, { preempt: true });
  loadMoreButton.disabled = false;
  schedule();
});

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) {
    clearTimeout(state.timer);
    tick();
  }
});

// ---- sorting (client-side, over the loaded rows) -------------------------------------

function sortValue(row, key) {
  const d = row.dataset;
  switch (key) {
    case "priority":
      return PRIORITY_RANK[d.priority] ?? 9;
    case "patient":
      return d.patient.toLowerCase();
    case "body_part":
      return d.bodyPart;
    case "received":
      return d.receivedAt || "~";
    case "due":
      return d.dueAt;
    default:
      return (d[key] || "").toLowerCase();
  }
}

function applySort() {
  const { key, dir } = state.sort;
  for (const th of table.tHead.querySelectorAll("th[aria-sort]")) {
    const button = th.querySelector("[data-sort]");
    const active = button && button.dataset.sort === key;
    th.setAttribute("aria-sort", active ? (dir > 0 ? "ascending" : "descending") : "none");
  }
  if (!key) return;
  const rows = [...tbody.rows];
  rows.sort((a, b) => {
    const x = sortValue(a, key);
    const y = sortValue(b, key);
    return (x < y ? -1 : x > y ? 1 : 0) * dir;
  }); // stable: ties keep the server's due order
  tbody.append(...rows);
}

table.tHead.addEventListener("click", (event) => {
  const button = event.target.closest("[data-sort]");
  if (!button) return;
  const key = button.dataset.sort;
  state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
  applySort();
});

// ---- keyboard selection --------------------------------------------------------------

function select(row, focus = true) {
  for (const other of tbody.querySelectorAll("tr.selected")) {
    other.classList.remove("selected");
    other.removeAttribute("aria-selected");
  }
  if (!row) {
    state.selectedId = null;
    return;
  }
  row.classList.add("selected");
  row.setAttribute("aria-selected", "true");
  state.selectedId = row.dataset.consultationId;
  if (focus) row.focus();
}

function restoreSelection() {
  if (!state.selectedId) return;
  const row = tbody.querySelector(`tr[data-consultation-id="${state.selectedId}"]`);
  const hadFocus = table.contains(document.activeElement);
  select(row, hadFocus);
}

function move(step) {
  const rows = [...tbody.rows];
  if (!rows.length) return;
  const current = rows.findIndex((r) => r.dataset.consultationId === state.selectedId);
  const next = current < 0 ? (step > 0 ? 0 : rows.length - 1) : current + step;
  select(rows[Math.max(0, Math.min(rows.length - 1, next))]);
}

function activate(row) {
  if (!row) return;
  const button = row.querySelector(".claim-claim");
  if (button && !button.disabled) button.click();
  else location.assign(`/consultations/${row.dataset.consultationId}`);
}

document.addEventListener("keydown", (event) => {
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  const target = event.target;
  const inTable = target === document.body || target === table || target.closest?.("tr.worklist-row");
  if (!inTable || target.closest?.("button, a, input, select, textarea")) return;
  if (event.key === "j" || event.key === "ArrowDown") move(1);
  else if (event.key === "k" || event.key === "ArrowUp") move(-1);
  else if (event.key === "Enter" && state.selectedId) {
    activate(tbody.querySelector(`tr[data-consultation-id="${state.selectedId}"]`));
  } else return;
  event.preventDefault();
});

tbody.addEventListener("click", (event) => {
  const row = event.target.closest("tr.worklist-row");
  if (row && !event.target.closest("button, a")) select(row);
});

// ---- live updates and stat alerts ----------------------------------------------------

const alertsEnable = document.getElementById("alerts-enable");
const alertsMute = document.getElementById("alerts-mute");
const canNotify = "Notification" in window;
let audio = null;

function muted() {
  try {
    return localStorage.getItem(MUTE_KEY) === "1";
  } catch (_err) {
    return false;
  }
}

function renderAlerts() {
  if (!alertsMute) return; // clinic roles hear no stat alarms
  const isMuted = muted();
  alertsMute.setAttribute("aria-pressed", String(isMuted));
  alertsMute.textContent = t(isMuted ? "alerts_unmute" : "alerts_mute");
  alertsEnable.hidden = !canNotify || Notification.permission === "granted";
  if (canNotify && Notification.permission === "denied") alertsEnable.title = t("alerts_blocked");
}

function audioContext() {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!audio && Context) audio = new Context();
  return audio;
}

/** Two short beeps made with WebAudio (no audio file to fetch). */
function beep() {
  const ctx = audioContext();
  if (!ctx) return;
  if (ctx.state === "suspended") ctx.resume().catch(() => {});
  for (const start of [0, 0.25]) {
    const oscillator = ctx.createOscillator();
    const gain = ctx.createGain();
    oscillator.frequency.value = 880;
    gain.gain.setValueAtTime(0.2, ctx.currentTime + start);
    gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + start + 0.18);
    oscillator.connect(gain).connect(ctx.destination);
    oscillator.start(ctx.currentTime + start);
    oscillator.stop(ctx.currentTime + start + 0.2);
  }
}

function alertStat(change) {
  if (!alertsMute || muted()) return;
  try {
    beep();
  } catch (_err) {
    // no sound on this device: the notification and the row still show
  }
  if (canNotify && Notification.permission === "granted") {
    try {
      const note = new Notification(t("stat_title"), {
        body: t("stat_body"),
        tag: `teleread-stat-${change.consultation_id}`,
      });
      note.addEventListener("click", () => window.focus());
    } catch (_err) {
      // e.g. Chrome on Android only notifies from a service worker: the sound and row remain
    }
  }
}

alertsEnable?.addEventListener("click", async () => {
  audioContext(); // created on a user gesture, so later beeps may play
  if (audio && audio.state === "suspended") audio.resume().catch(() => {});
  if (canNotify && Notification.permission === "default") {
    try {
      await Notification.requestPermission();
    } catch (_err) {
      // old browsers: callback form only; alerts stay sound-only
    }
  }
  renderAlerts();
});

alertsMute?.addEventListener("click", () => {
  try {
    localStorage.setItem(MUTE_KEY, muted() ? "0" : "1");
  } catch (_err) {
    // storage disabled: the toggle cannot persist
  }
  renderAlerts();
});

function changed() {
  clearTimeout(state.changeTimer);
  state.changeTimer = setTimeout(async () => {
    await run(reload, { preempt: true });
    schedule();
  }, CHANGE_DEBOUNCE_MS);
}

// Another script changed an item (reassign.js): refetch now rather than at the next poll.
filterForm.addEventListener("worklist:changed", () => changed());

function setLive(live) {
  if (state.live === live) return;
  state.live = live;
  renderUpdated();
  schedule();
}

function listen() {
  if (!("EventSource" in window)) return;
  const source = new EventSource("/api/worklist/events");
  source.addEventListener("open", () => setLive(true));
  source.addEventListener("error", () => setLive(false)); // EventSource reconnects by itself
  source.addEventListener("change", (event) => {
    let change = null;
    try {
      change = JSON.parse(event.data);
    } catch (_err) {
      return;
    }
    if (change && change.kind === "new" && change.priority === "stat") alertStat(change);
    changed();
  });
  window.addEventListener("pagehide", () => source.close());
}

readFilters();
countsBox.textContent = t("loading");
renderAlerts();
renderUpdated();
listen();
tick();
