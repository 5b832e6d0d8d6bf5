// teleread — worklist page. GET /api/worklist, refetched when /api/worklist/events (Server-Sent
// Events) reports a change; polled every 30 s while the stream is up, every 5 s while it is down.
// Rows are built with createElement/textContent only: patient data is untrusted.
"use strict";

(() => {
  const tr = window.teleread;
  const { t, plural, label, api, el } = tr;

  const REFRESH_MS = 5000; // poll while the live stream is down
  const LIVE_REFRESH_MS = 30000; // fallback poll while it is up
  const CHANGE_DEBOUNCE_MS = 150;
  const MUTE_KEY = "teleread.worklist.alerts-muted";
  const PAGE_SIZE = 50;
  const SOON_MINUTES = 30;
  const PRIORITIES = new Set(["stat", "urgent", "routine"]);
  const STATUSES = new Set(["awaiting_images", "awaiting_request", "ready"]);
  const FILTERS = ["status", "priority", "modality"];

  // DICOM PN: "ZHOU^LEI" reads "ZHOU LEI"; component groups ("ZHANG^SAN=张^三") stay visible.
  const personName = (name) =>
    (name || "").split("=").map((g) => g.replace(/\^+/g, " ").trim()).filter(Boolean).join(" = ") || "—";

  const table = document.getElementById("worklist");
  if (!table) return;
  const tbody = table.tBodies[0];
  const countsBox = document.getElementById("worklist-counts");
  const emptyBox = document.getElementById("worklist-empty");
  const errorBox = document.getElementById("worklist-error");
  const updatedBox = document.getElementById("worklist-updated");
  const loadMoreButton = document.getElementById("load-more");
  const filterForm = document.getElementById("worklist-filters");

  const state = {
    filters: { status: "", priority: "", modality: "" },
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

  function readFiltersFromUrl() {
    const params = new URLSearchParams(location.search);
    for (const name of FILTERS) {
      const select = filterForm.elements[name];
      const value = params.get(name) || "";
      if ([...select.options].some((option) => option.value === value)) {
        select.value = value;
        state.filters[name] = value;
      }
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
  }

  function filtersActive() {
    return FILTERS.some((name) => state.filters[name]);
  }

  // ---- rendering ----------------------------------------------------------------------

  function timeLeft(dueMs, nowMs) {
    const diffMinutes = (dueMs - nowMs) / 60000;
    if (diffMinutes >= 0) {
      const whole = Math.floor(diffMinutes);
      if (whole < 1) return { text: t("left_lt_1"), cls: "due-soon" };
      const text =
        whole < 60
          ? t("left_min", { n: whole })
          : t("left_hm", { h: Math.floor(whole / 60), m: whole % 60 });
      return { text, cls: diffMinutes < SOON_MINUTES ? "due-soon" : "" };
    }
    const late = Math.max(1, Math.floor(-diffMinutes));
    const text =
      late < 60
        ? t("overdue_min", { n: late })
        : t("overdue_hm", { h: Math.floor(late / 60), m: late % 60 });
    return { text, cls: "overdue" };
  }

  function timeCell(className, iso, emptyText, extra) {
    const td = el("td", { className });
    const shown = tr.formatDateTime(iso);
    if (shown) td.append(el("time", { dateTime: iso, title: iso, text: shown }));
    else td.append(el("span", { className: "muted", text: emptyText }));
    if (extra) td.append(extra);
    return td;
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
      },
    });

    row.append(
      el(
        "td",
        { className: "col-priority" },
        el("span", {
          className: `badge badge-${priority}`,
          text: label("priority", item.priority),
        }),
      ),
    );

    const patient = el("td", { className: "col-patient" });
    patient.append(el("div", { className: "patient-name", text: personName(item.patient_name) }));
    const ids = [item.patient_id, item.accession_number].filter(Boolean).join(" · ");
    if (ids) patient.append(el("div", { className: "patient-id", text: ids }));
    if (item.clinical_question) {
      patient.append(
        el("div", {
          className: "clinical-question",
          title: item.clinical_question,
          text: item.clinical_question,
        }),
      );
    }
    row.append(patient);

    row.append(el("td", { className: "col-facility", text: item.facility || "" }));
    row.append(el("td", { className: "col-modality", text: item.modality || "" }));
    row.append(
      el("td", { className: "col-body-part", text: label("body_part", item.body_part) }),
    );
    row.append(
      el(
        "td",
        { className: "col-status" },
        el("span", { className: `status status-${status}`, text: label("status", item.status) }),
      ),
    );

    row.append(timeCell("col-received", item.received_at, t("not_received")));

    let left = null;
    const dueMs = item.due_at ? Date.parse(item.due_at) : NaN;
    if (!Number.isNaN(dueMs)) {
      const info = timeLeft(dueMs, nowMs);
      left = el("div", { className: "time-left", text: info.text });
      if (info.cls) row.classList.add(info.cls);
    }
    row.append(timeCell("col-due", item.due_at, "—", left));
    return row;
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
        tr.redirectToLogin();
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
        cursor = data.next;
        if (!cursor) break;
      }
      if (!current()) return;
      tbody.replaceChildren(...rows);
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
      state.pages += 1;
      renderCounts(data.counts);
      renderNext(data.next);
      renderEmpty();
    })();
  }

  function renderUpdated() {
    const parts = [];
    if (state.updatedAt) parts.push(t("updated", { time: tr.formatTime(state.updatedAt) }));
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
    state.filters[name] = event.target.value;
    state.generation += 1;
    state.pages = 1;
    writeFiltersToUrl();
    await run(reload, { preempt: true });
    schedule();
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
    if (muted()) return;
    try {
      beep();
    } catch (_err) {
      // no sound on this device: the notification and the row still show
    }
    if (canNotify && Notification.permission === "granted") {
      const note = new Notification(t("stat_title"), {
        body: t("stat_body"),
        tag: `teleread-stat-${change.consultation_id}`,
      });
      note.addEventListener("click", () => window.focus());
    }
  }

  alertsEnable.addEventListener("click", async () => {
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

  alertsMute.addEventListener("click", () => {
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

  readFiltersFromUrl();
  countsBox.textContent = t("loading");
  renderAlerts();
  renderUpdated();
  listen();
  tick();
})();
