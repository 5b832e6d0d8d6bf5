// teleread viewer page: loads the consultation's viewer manifest, shows series thumbnails,
// drives one viewport (or two, current beside a prior) from the toolbar, keyboard, wheel and
// scrollbar, plays cine, opens the tag browser and keeps the reader's claim alive.
// Greyscale frames are fetched once as 16-bit modality values and windowed in the browser.

import { api, el, redirectToLogin, t } from "../common.js";
import { FrameStore } from "./frames.js";
import { Heartbeat } from "./heartbeat.js";
import { TagBrowser } from "./tags.js";
import { Viewport } from "./viewport.js";
import { PRESET_ORDER, PRESETS } from "./windowing.js";
import { dicomDate } from "./overlay.js";
import { comparablePrior, studyTitle } from "./hanging.js";
import { matchingSlice } from "./sync.js";
import { keyImageBody, PRINTED } from "./key_images.js";

const root = document.getElementById("viewer");
const consultationId = Number(root.dataset.consultationId);
const CACHE_BYTES = 512 * 1024 * 1024;

const store = new FrameStore(CACHE_BYTES);
const state = { tool: "wl", active: null, cine: null, manifest: null, priors: new Map(), sync: true, following: false };
const tags = new TagBrowser(document.getElementById("tag-panel"));

function message(text) {
  document.getElementById("viewer-message").textContent = text;
}

const hooks = {
  tool: () => state.tool,
  activate: (viewport) => activate(viewport),
  onChange: (viewport) => {
    if (viewport === state.active) showTags();
  },
  onSeek: (viewport) => {
    follow(viewport, "scroll");
    prioritise();
  },
  onWindow: (viewport) => follow(viewport, "window"),
  onMeasure: (m) => {
    const label = document.getElementById("measure-label");
    label.textContent = m.text;
    label.dataset.type = m.type;
    label.dataset.value = String(m.type === "roi" ? m.stats.mean : m.value);
  },
  onError: (err) => message(t("frame_failed", { status: err.status ?? "?" })),
};

const viewports = [0, 1].map((i) => new Viewport(document.getElementById(`viewport-${i}`), store, hooks));

function activate(viewport) {
  state.active = viewport;
  for (const v of viewports) v.root.dataset.active = String(v === viewport);
  renderThumbnails();
}

/** A viewport's frames from the one in view outward (the next slice before the previous one). */
function outward(frames, index) {
  const order = index >= 0 && index < frames.length ? [frames[index]] : [];
  for (let d = 1; d < frames.length; d += 1) {
    if (index + d < frames.length) order.push(frames[index + d]);
    if (index - d >= 0) order.push(frames[index - d]);
  }
  return order;
}

/**
 * Load order for the whole page, re-decided on every move: each visible viewport's frames
 * outward from its position, the active viewport's first at each distance. Coalesced to once per
 * task, so a burst of wheel steps costs one re-ordering.
 */
function prioritise() {
  if (state.prioritising) return;
  state.prioritising = true;
  queueMicrotask(() => {
    state.prioritising = false;
    const shown = viewports.filter((v) => !v.root.hidden && v.frames.length);
    shown.sort((a, b) => (b === state.active) - (a === state.active));
    const lists = shown.map((v) => outward(v.frames, v.index));
    const order = [];
    for (let i = 0; lists.some((list) => i < list.length); i += 1) {
      for (const list of lists) if (i < list.length) order.push(list[i]);
    }
    store.prioritise(order);
    progress();
  });
}

/** Whether the prior is open beside the current study. */
function comparing() {
  return !viewports[1].root.hidden && Boolean(viewports[1].frames.length);
}

/** A viewport's slices as sync.js compares them (multi-frame instances: their instance's geometry). */
function geometry(v) {
  return v.frames.map(({ instance }) => ({
    position: instance.position,
    orientation: instance.orientation,
    location: instance.slice_location,
    frameOfReference: instance.frame_of_reference,
  }));
}

/**
 * With Sync on and a prior open, the other viewport follows a scroll (to the slice at the same
 * level, sync.js) or a window change of `leader`. The follower's own moves are not followed back.
 */
function follow(leader, what) {
  if (!state.sync || state.following || !comparing()) return;
  const other = viewports.find((v) => v !== leader);
  if (!other.frames.length || !leader.frames.length) return;
  state.following = true;
  try {
    if (what === "scroll") {
      const match = matchingSlice(geometry(leader), geometry(other), leader.index);
      const button = document.getElementById("sync-button");
      button.dataset.by = match.by;
      button.title = t(match.by === "index" ? "sync_by_index" : "sync_by_position");
      if (match.index !== other.index) other.show(match.index);
    } else if (leader.window && (!other.frame || other.frame.kind === "values")) {
      other.setWindow(leader.window, true);
    }
  } finally {
    state.following = false;
  }
}

function toggleSync(force) {
  state.sync = force === undefined ? !state.sync : force;
  document.getElementById("sync-button").setAttribute("aria-pressed", String(state.sync));
  const leader = state.active || viewports[0];
  follow(leader, "scroll");
  follow(leader, "window");
}

/** Per series in the list: "n/N loaded" while its frames come, "N images" once all are here. */
function seriesProgress() {
  const v = state.active;
  if (!v || !v.manifest) return;
  for (const button of document.querySelectorAll("#thumbnails .thumbnail")) {
    const series = v.manifest.series[Number(button.dataset.index)];
    const frames = series === v.series ? v.frames : null;
    const refs = frames || series.instances;
    const done = refs.filter((ref) => store.cache.has(ref.values)).length;
    const count = button.querySelector(".thumb-count");
    const loading = done > 0 && done < refs.length;
    const text = loading ? t("series_loaded", { done, total: refs.length }) : t("instances_count", { n: series.instances.length });
    if (count.textContent !== text) count.textContent = text;
    count.dataset.loading = String(loading);
    count.dataset.done = String(done);
    count.dataset.total = String(refs.length);
  }
}

/** "Loaded n/N" for the active viewport's series, and each series' own count in the list. */
function progress() {
  seriesProgress();
  const v = state.active;
  if (!v || !v.frames.length) return;
  const done = v.frames.filter((ref) => store.cache.has(ref.values)).length;
  const status = document.getElementById("prefetch-status");
  status.textContent = t("loaded", { done, total: v.frames.length });
  status.dataset.done = String(done);
  status.dataset.total = String(v.frames.length);
}

store.subscribe((ref, frame, error) => {
  for (const v of viewports) v.frameArrived(ref, frame, error);
  progress();
});

function renderThumbnails() {
  const nav = document.getElementById("thumbnails");
  const viewport = state.active;
  if (!viewport || !viewport.manifest) return;
  nav.replaceChildren(
    ...viewport.manifest.series.map((series, index) => {
      const button = el(
        "button",
        {
          type: "button",
          className: "thumbnail",
          dataset: { seriesUid: series.uid, index: String(index) },
          "aria-pressed": String(index === viewport.seriesIndex),
        },
        el("img", { src: series.thumbnail, alt: "", loading: "lazy" }),
        el("span", { className: "thumb-title", text: t("series_label", { number: series.number ?? "", description: series.description || "" }) }),
        el("span", { className: "thumb-count", text: t("instances_count", { n: series.instances.length }) }),
      );
      button.addEventListener("click", () => {
        viewport.setSeries(index);
        renderThumbnails();
      });
      return button;
    }),
  );
  seriesProgress();
}

function showTags() {
  const v = state.active;
  if (!v || !v.manifest || !v.current) return;
  const instance = v.current.instance;
  tags.show(`/dicom-web/studies/${v.manifest.study.uid}/series/${v.series.uid}/instances/${instance.uid}/metadata`);
}

function toggleTags(force) {
  const panel = document.getElementById("tag-panel");
  panel.hidden = force === undefined ? !panel.hidden : !force;
  document.getElementById("tags-button").setAttribute("aria-pressed", String(!panel.hidden));
  if (!panel.hidden) showTags();
  for (const v of viewports) v.resize();
}

function selectTool(tool) {
  state.tool = tool;
  for (const button of document.querySelectorAll("[data-tool]")) {
    button.setAttribute("aria-pressed", String(button.dataset.tool === tool));
  }
}

function applyPreset(name) {
  const v = state.active;
  if (!v) return;
  v.setWindow(name ? PRESETS[name] : null);
  document.getElementById("preset-select").value = name || "";
}

function toggleCine(force) {
  const playing = force === undefined ? !state.cine : force;
  clearInterval(state.cine);
  state.cine = null;
  if (playing) {
    const fps = Math.min(60, Math.max(1, Number(document.getElementById("cine-fps").value) || 10));
    state.cine = setInterval(() => state.active && state.active.step(1, true), 1000 / fps);
  }
  document.getElementById("cine-button").setAttribute("aria-pressed", String(Boolean(state.cine)));
}

/** Show or hide the DICOM overlays (60xx) in every viewport. */
function toggleOverlays() {
  const button = document.getElementById("overlays-button");
  const shown = button.getAttribute("aria-pressed") !== "true";
  button.setAttribute("aria-pressed", String(shown));
  for (const v of viewports) v.setOverlays(shown);
}

/** Open the caption field for marking the image in view as a key image (the current study only). */
function openKeyImage() {
  const form = document.getElementById("key-image-form");
  if (!form) return;
  if (state.active !== viewports[0] || !viewports[0].shown) {
    message(t("key_image_current_only"));
    return;
  }
  form.hidden = false;
  const input = document.getElementById("key-image-caption");
  input.value = "";
  input.focus();
}

/** Store the image in view, as seen, with the caption typed; the editor beside us is told. */
async function markKeyImage(event) {
  event.preventDefault();
  const form = document.getElementById("key-image-form");
  const body = keyImageBody(viewports[0], document.getElementById("key-image-caption").value);
  form.hidden = true;
  viewports[0].canvas.focus({ preventScroll: true });
  if (!body) return;
  const answer = await api(`/api/consultations/${consultationId}/report/key-images`, { method: "POST", json: body });
  if (!answer.ok) {
    const code = answer.data && answer.data.error;
    message(code === "too_many_key_images" ? t("key_image_too_many") : code === "not_claim_holder" ? t("key_image_not_claim_holder") : t("key_image_failed", { status: answer.status }));
    return;
  }
  const count = answer.data.items.length;
  root.dataset.keyImages = String(count);
  message(count > PRINTED ? t("key_image_marked_over", { n: count, printed: PRINTED }) : t("key_image_marked", { n: count }));
  if (window.parent !== window) window.parent.postMessage({ type: "teleread:key-images" }, window.location.origin);
}

function action(name) {
  if (name === "key-image") openKeyImage();
  else if (name === "cine") toggleCine();
  else if (name === "overlays") toggleOverlays();
  else if (name === "tags") toggleTags();
  else if (name === "sync") toggleSync();
  else if (state.active) state.active.action(name);
}

const KEY_ACTIONS = { m: "key-image", g: "overlays", f: "fit", o: "actual", i: "invert", r: "rotate", h: "flip-h", v: "flip-v", Backspace: "reset", Delete: "clear", t: "tags", y: "sync", "+": "zoom-in", "=": "zoom-in", "-": "zoom-out" };
const KEY_TOOLS = { w: "wl", p: "pan", z: "zoom", l: "length", a: "angle", e: "roi" };
const KEY_STEPS = { ArrowDown: 1, ArrowUp: -1, PageDown: 10, PageUp: -10, j: 1, k: -1 };

function onKey(event) {
  if (event.target.closest("input, select, textarea") || event.ctrlKey || event.metaKey || event.altKey) return;
  const v = state.active;
  const key = event.key;
  if (v && key in KEY_STEPS) v.step(KEY_STEPS[key]);
  else if (v && key === "Home") v.show(0);
  else if (v && key === "End") v.show(v.frames.length - 1);
  else if (v && (key === "ArrowLeft" || key === "ArrowRight")) switchSeries(v, key === "ArrowRight" ? 1 : -1);
  else if (/^[1-8]$/.test(key)) applyPreset(PRESET_ORDER[Number(key) - 1]);
  else if (key === "0") applyPreset("");
  else if (key === " ") toggleCine();
  else if (key === "Escape") cancel(v);
  else if (key in KEY_ACTIONS) action(KEY_ACTIONS[key]);
  else if (key.toLowerCase() in KEY_TOOLS) selectTool(KEY_TOOLS[key.toLowerCase()]);
  else return;
  event.preventDefault();
}

/** Escape: drop a measurement in progress and close the tag panel. */
function cancel(v) {
  if (v) {
    v.draft = null;
    v.render();
  }
  toggleTags(false);
}

function switchSeries(v, delta) {
  const next = v.seriesIndex + delta;
  if (next < 0 || next >= v.manifest.series.length) return;
  v.setSeries(next);
  renderThumbnails();
}

function bindControls() {
  for (const button of document.querySelectorAll("[data-tool]")) {
    button.addEventListener("click", () => selectTool(button.dataset.tool));
  }
  for (const button of document.querySelectorAll("[data-action]")) {
    button.addEventListener("click", () => action(button.dataset.action));
  }
  document.getElementById("preset-select").addEventListener("change", (e) => applyPreset(e.target.value));
  document.getElementById("cine-fps").addEventListener("change", () => state.cine && toggleCine(true));
  document.getElementById("tags-close").addEventListener("click", () => toggleTags(false));
  const keyForm = document.getElementById("key-image-form");
  if (keyForm) {
    keyForm.addEventListener("submit", markKeyImage);
    document.getElementById("key-image-cancel").addEventListener("click", () => {
      keyForm.hidden = true;
    });
  }
  document.getElementById("prior-select").addEventListener("change", (e) => showPrior(e.target.value));
  document.addEventListener("keydown", onKey);
  for (const v of viewports) {
    v.canvas.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        activate(v);
        if (event.ctrlKey) v.action(event.deltaY < 0 ? "zoom-in" : "zoom-out");
        else v.step(Math.sign(event.deltaY));
      },
      { passive: false },
    );
  }
}

async function loadManifest(id) {
  const result = await api(`/api/consultations/${id}/viewer`);
  if (result.status === 401) redirectToLogin();
  if (!result.ok) throw Object.assign(new Error("manifest"), { status: result.status });
  return result.data;
}

/** The series of the prior closest to what the current viewport shows (same description, else modality). */
function hangingSeries(prior, current) {
  const s = current.series;
  const same = (x) => (x.description || "") === (s.description || "") && x.modality === s.modality;
  const index = prior.series.findIndex(same);
  if (index >= 0) return index;
  return Math.max(0, prior.series.findIndex((x) => x.modality === s.modality));
}

async function showPrior(priorId) {
  const [current, right] = viewports;
  const syncButton = document.getElementById("sync-button");
  if (!priorId) {
    right.root.hidden = true;
    syncButton.hidden = true;
    root.dataset.layout = "1";
    activate(current);
    current.resize();
    return;
  }
  message(t("loading"));
  let prior = state.priors.get(priorId);
  try {
    prior = prior || (await loadManifest(priorId));
  } catch (err) {
    message(t("load_failed", { status: err.status ?? "?" }));
    return;
  }
  state.priors.set(priorId, prior);
  message("");
  warnOnDemographics(priorId);
  right.root.hidden = false;
  root.dataset.layout = "2";
  current.resize();
  right.resize();
  if (!prior.series.length) return;
  state.following = true; // the prior's first slice must not move the current study
  try {
    right.setStudy(prior, hangingSeries(prior, current));
  } finally {
    state.following = false;
  }
  syncButton.hidden = false;
  follow(current, "scroll");
  follow(current, "window");
  activate(right);
}

/**
 * Hang the most recent comparable prior beside the current study, the current one active. Not
 * in the report editor's frame (embedded), whose narrow image area the reader fills on purpose.
 */
async function hangPrior(manifest) {
  if (root.dataset.embedded === "true") return;
  const series = manifest.series[0];
  const prior = comparablePrior(manifest.priors || [], { modality: series.modality || manifest.study.modality, body_part: series.body_part });
  if (!prior) return;
  const select = document.getElementById("prior-select");
  select.value = String(prior.consultation_id);
  await showPrior(select.value);
  activate(viewports[0]);
  root.dataset.hung = String(prior.consultation_id);
}

/** What of name, birth date and sex a prior's record gives differently from the current study's. */
function differing(prior) {
  return (prior.disagrees || []).map((field) => t(`differs_${field}`)).join(t("list_separator"));
}

/** The prior pane's warning when the chosen prior's demographics disagree with the current study's. */
function warnOnDemographics(priorId) {
  const offered = (state.manifest?.priors || []).find((p) => String(p.consultation_id) === String(priorId));
  const warning = document.getElementById("prior-warning");
  const fields = offered ? differing(offered) : "";
  warning.textContent = fields ? t("prior_differs", { fields }) : "";
  warning.dataset.disagrees = offered ? (offered.disagrees || []).join(" ") : "";
  warning.hidden = !fields;
}

function fillPriors(priors) {
  const select = document.getElementById("prior-select");
  if (!priors.length) {
    select.append(el("option", { value: "", disabled: true, text: t("no_priors") }));
    return;
  }
  for (const p of priors) {
    const label = t("prior_label", { date: dicomDate(p.date), study: studyTitle(p.modality, p.description), facility: p.facility_name || "" });
    const fields = differing(p);
    select.append(
      el("option", {
        value: String(p.consultation_id),
        text: fields ? `${label} ${t("prior_differs_short", { fields })}` : label,
        dataset: { disagrees: (p.disagrees || []).join(" ") },
      }),
    );
  }
}

async function start() {
  bindControls();
  let manifest;
  try {
    manifest = await loadManifest(consultationId);
  } catch (err) {
    root.dataset.state = "error";
    message(err.status === 404 ? t("not_found") : err.status ? t("load_failed", { status: err.status }) : t("network_error"));
    return;
  }
  state.manifest = manifest;
  fillPriors(manifest.priors || []);
  if (!manifest.series.length) {
    root.dataset.state = "empty";
    message(t("no_images"));
    return;
  }
  root.dataset.state = "ready";
  activate(viewports[0]);
  viewports[0].setStudy(manifest, 0);
  renderThumbnails();
  viewports[0].canvas.focus({ preventScroll: true });
  hangPrior(manifest);
  new Heartbeat(consultationId, Number(root.dataset.userId), message).start();
}

start();
