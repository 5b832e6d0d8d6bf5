// teleread viewer — one viewport: a series on a canvas with window/level, zoom, pan,
// rotation/flip, invert and measurements. Windowing runs here, on cached modality values.

import { angle, distance, ellipseStats } from "./measure.js";
import { edgeLabels, imageDirections } from "./orientation.js";
import { measurementText, showGeometry, showImage, showStudy } from "./overlay.js";
import { horizontalSpacing, scaleBar } from "./scalebar.js";
import { blockStep } from "./blocks.js";
import { applyWindow, defaultWindow, dragWindow } from "./windowing.js";

/** Every displayable frame of a series, in manifest order (multi-frame instances expand). */
export function seriesFrames(series) {
  const frames = [];
  series.instances.forEach((instance, instanceIndex) => {
    const count = Math.max(1, instance.frames || 1);
    for (let n = 1; n <= count; n += 1) {
      const values = count === 1 ? instance.values : instance.values.replace(/\/frames\/1\/values$/, `/frames/${n}/values`);
      const rendered = count === 1 ? instance.rendered : instance.rendered.replace(/\/frames\/1\/rendered$/, `/frames/${n}/rendered`);
      const overlay = instance.overlay && (count === 1 ? instance.overlay : instance.overlay.replace(/\/frames\/1\/overlay$/, `/frames/${n}/overlay`));
      frames.push({ instance, instanceIndex, n, count, values, rendered, overlay });
    }
  });
  return frames;
}

/** The scale bar takes at most this share of the viewport's width, and at most BAR_MAX_PX. */
const BAR_SHARE = 0.3;
const BAR_MAX_PX = 200;

export class Viewport {
  constructor(root, store, hooks) {
    this.root = root;
    this.store = store;
    this.hooks = hooks; // {tool(), onMeasure(text, m), onChange(viewport), onSeek(viewport), onWindow(viewport), onError(err)}
    this.canvas = root.querySelector("canvas");
    this.ctx = this.canvas.getContext("2d");
    this.offscreen = document.createElement("canvas");
    this.stackBar = root.querySelector(".stack-bar");
    this.manifest = null;
    this.frames = [];
    this.index = 0;
    this.frame = null;
    this.measurements = new Map();
    this.draft = null;
    this.resetView();
    this.window = null;
    this.windowed = "";
    this.sampling = 1; // image pixels per offscreen pixel (windowImage: the block means' step)
    this.overlaysShown = true;
    new ResizeObserver(() => this.resize()).observe(root.querySelector(".canvas-box"));
    this.stackBar.addEventListener("input", () => this.show(Number(this.stackBar.value) - 1));
    this.bindPointer();
  }

  resetView() {
    this.zoom = "fit";
    this.panX = 0;
    this.panY = 0;
    this.rotation = 0;
    this.flipH = false;
    this.flipV = false;
    this.invert = false;
  }

  /** Show or hide the DICOM overlays (60xx) burnt into the picture (shown by default). */
  setOverlays(shown) {
    this.overlaysShown = shown;
    this.render();
  }

  /** The overlay mask to burn into the frame in view: null when none or hidden; undefined while
   * it loads (it is asked for, and the frame repainted when it comes). */
  overlayMask() {
    const ref = this.frameRef;
    if (!this.overlaysShown || !ref.instance.overlays || !ref.overlay || this.frame.kind !== "values") return null;
    const mask = this.store.cachedOverlay(ref);
    if (mask === undefined) this.store.loadOverlay(ref, () => this.frameRef === ref && this.render());
    return mask;
  }

  setStudy(manifest, seriesIndex = 0) {
    this.manifest = manifest;
    this.root.dataset.consultationId = manifest.consultation_id;
    this.root.dataset.studyUid = manifest.study.uid;
    showStudy(this.root, manifest);
    this.setSeries(seriesIndex);
  }

  setSeries(seriesIndex) {
    this.frame = null;
    this.frameRef = null;
    this.draft = null;
    this.seriesIndex = seriesIndex;
    this.series = this.manifest.series[seriesIndex];
    this.frames = seriesFrames(this.series);
    this.root.dataset.seriesUid = this.series.uid;
    this.stackBar.max = String(this.frames.length);
    this.stackBar.disabled = this.frames.length < 2;
    this.window = null;
    this.show(0);
  }

  get current() {
    return this.frames[this.index];
  }

  step(delta, wrap = false) {
    const count = this.frames.length;
    if (!count) return;
    let next = this.index + delta;
    next = wrap ? ((next % count) + count) % count : Math.min(count - 1, Math.max(0, next));
    if (next !== this.index) this.show(next);
  }

  /**
   * Move to frame `index`. A frame already loaded is painted at once; otherwise the viewport
   * shows its loading state (a black image, "Loading Im n/N", no slice or location label) until
   * the frame arrives (`frameArrived`), and the page re-orders loading around the new position.
   * The overlay never labels another slice's pixels.
   */
  show(index) {
    if (!this.frames.length) return;
    this.index = Math.min(this.frames.length - 1, Math.max(0, index));
    this.stackBar.value = String(this.index + 1);
    this.root.dataset.slice = String(this.index + 1);
    const ref = this.current;
    const cached = this.store.cached(ref);
    if (cached) this.display(ref, cached);
    else this.render();
    this.hooks.onSeek(this);
  }

  /** The store loaded (or failed to load) a frame: paint it if it is the one in view. */
  frameArrived(ref, frame, error) {
    const current = this.current;
    if (!current || current.values !== ref.values || this.shown) return;
    if (error) {
      this.failed = ref.values;
      this.render();
      this.hooks.onError(error);
    } else {
      this.display(current, frame);
    }
  }

  /** Whether the canvas holds the pixels of the frame in view (not a loading state). */
  get shown() {
    return Boolean(this.frame && this.frameRef === this.current);
  }

  display(ref, frame) {
    if (!this.window && frame.kind === "values") this.window = defaultWindow(ref.instance.windows, frame);
    this.frame = frame;
    this.frameRef = ref;
    this.render();
    performance.mark("teleread:image-shown"); // bench/viewer_speed.py: the first is "first image"
    this.hooks.onChange(this);
  }

  /** Set the window (null: the image's default); `quiet`: a follower's, not told to the page. */
  setWindow(win, quiet = false) {
    this.window = win ? { center: Math.round(win.center), width: Math.max(1, Math.round(win.width)) } : null;
    if (!this.window && this.frame && this.frame.kind === "values") {
      this.window = defaultWindow(this.current.instance.windows, this.frame);
    }
    this.render();
    if (!quiet) this.hooks.onWindow(this);
  }

  action(name) {
    if (name === "fit") Object.assign(this, { zoom: "fit", panX: 0, panY: 0 });
    else if (name === "actual") Object.assign(this, { zoom: window.devicePixelRatio || 1, panX: 0, panY: 0 });
    else if (name === "invert") this.invert = !this.invert;
    else if (name === "rotate") this.rotation = (this.rotation + 1) % 4;
    else if (name === "flip-h") this.flipH = !this.flipH;
    else if (name === "flip-v") this.flipV = !this.flipV;
    else if (name === "reset") {
      this.resetView();
      this.setWindow(null);
    } else if (name === "zoom-in" || name === "zoom-out") {
      this.zoom = Math.min(64, Math.max(0.02, this.scale() * (name === "zoom-in" ? 1.25 : 0.8)));
    } else if (name === "clear") this.measurements.delete(this.current && this.current.values);
    this.render();
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const box = this.canvas.parentElement;
    this.canvas.width = Math.max(1, Math.round(box.clientWidth * dpr));
    this.canvas.height = Math.max(1, Math.round(box.clientHeight * dpr));
    this.render();
  }

  scale() {
    const f = this.frame;
    if (!f) return 1;
    if (this.zoom !== "fit") return this.zoom;
    const [w, h] = this.rotation % 2 ? [f.rows, f.columns] : [f.columns, f.rows];
    return Math.min(this.canvas.width / w, this.canvas.height / h);
  }

  /**
   * Image -> canvas (device pixels): centre, pan, flip (screen space), rotate, scale. At a whole
   * zoom the translation snaps to whole device pixels, so 1:1 shows each image pixel unresampled
   * (exactly the windowed values) instead of blurred across two.
   */
  matrix() {
    const f = this.frame;
    if (!f) return new DOMMatrix();
    const s = this.scale();
    const m = new DOMMatrix()
      .translate(this.canvas.width / 2 + this.panX, this.canvas.height / 2 + this.panY)
      .scale(this.flipH ? -1 : 1, this.flipV ? -1 : 1)
      .rotate(this.rotation * 90)
      .scale(s, s)
      .translate(-f.columns / 2, -f.rows / 2);
    if (Number.isInteger(s)) {
      m.e = Math.round(m.e);
      m.f = Math.round(m.f);
    }
    return m;
  }

  toImage(event) {
    const dpr = window.devicePixelRatio || 1;
    const rect = this.canvas.getBoundingClientRect();
    const point = new DOMPoint((event.clientX - rect.left) * dpr, (event.clientY - rect.top) * dpr);
    const p = this.matrix().inverse().transformPoint(point);
    return { x: p.x, y: p.y };
  }

  /**
   * Window the frame into the offscreen canvas. Shown at under half its size, the frame is
   * reduced to the mean of each step x step block of its values (blocks.js; step the largest that
   * still leaves at least one pixel per device pixel), once per frame and step (FrameStore
   * `reduced`), and only the reduced image is windowed on each repaint: a 3000x3000 CR fitted to
   * the screen windows 1000x1000 values (bench/viewer_speed.py). The values are averaged before
   * the window, never the windowed pixels nor one value per block, so fine lines do not alias.
   * At half size and above, and whenever overlays are shown (their mask is per image pixel),
   * every value is windowed, so what the reader inspects up close is the server's render bit
   * for bit.
   */
  windowImage() {
    const f = this.frame;
    const mask = this.overlayMask();
    this.root.dataset.overlays = mask ? "shown" : mask === undefined ? "loading" : "none";
    const step = f.kind === "values" && !mask ? blockStep(this.scale()) : 1;
    const key = `${this.frameRef.values}|${this.window && this.window.center}|${this.window && this.window.width}|${this.invert}|${Boolean(mask)}|${step}`;
    if (key === this.windowed) return;
    const image = step > 1 ? this.store.reduced(this.frameRef, f, step) : f;
    // Resizing a canvas, even to its own size, reallocates and clears it, and a new ImageData
    // is another 4 bytes a pixel to allocate and collect (36 MB for a 3000x3000 CR): both are
    // kept while the size stays (putImageData replaces every pixel anyway).
    if (this.offscreen.width !== image.columns || this.offscreen.height !== image.rows) {
      this.offscreen.width = image.columns;
      this.offscreen.height = image.rows;
    }
    const octx = this.offscreen.getContext("2d");
    if (f.kind === "values") {
      const data = this.imageData(octx, image.columns, image.rows);
      applyWindow(image, this.window.center, this.window.width, this.invert, data.data);
      if (mask) burnIn(mask, data.data);
      octx.putImageData(data, 0, 0);
    } else {
      octx.clearRect(0, 0, f.columns, f.rows);
      octx.filter = this.invert ? "invert(1)" : "none";
      octx.drawImage(f.image, 0, 0);
      octx.filter = "none";
    }
    this.windowed = key;
    this.sampling = step;
  }

  /** A reusable ImageData of this size (windowing writes every pixel of it). */
  imageData(octx, width, height) {
    const kept = this.pixels;
    if (kept && kept.width === width && kept.height === height) return kept;
    this.pixels = octx.createImageData(width, height);
    return this.pixels;
  }

  render() {
    const ctx = this.ctx;
    ctx.resetTransform();
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    if (!this.shown) {
      const failed = this.current && this.failed === this.current.values;
      this.root.dataset.state = failed ? "error" : this.frames.length ? "loading" : "";
      this.updateOverlay();
      return;
    }
    this.root.dataset.state = "shown";
    this.windowImage();
    ctx.setTransform(this.matrix());
    ctx.imageSmoothingEnabled = this.scale() < 4;
    // A reduced image's reduced pixel k covers image pixels [k * step, (k + 1) * step): drawing
    // its first columns / step pixels over the frame keeps every block in place (the last,
    // partial block is cut at the frame's edge).
    const f = this.frame;
    const s = this.sampling;
    ctx.drawImage(this.offscreen, 0, 0, f.columns / s, f.rows / s, 0, 0, f.columns, f.rows);
    ctx.resetTransform();
    const list = (this.measurements.get(this.frameRef.values) || []).concat(this.draft ? [this.draft] : []);
    for (const m of list) this.drawMeasurement(m);
    this.updateOverlay();
  }

  drawMeasurement(m) {
    const ctx = this.ctx;
    const dpr = window.devicePixelRatio || 1;
    const matrix = this.matrix();
    const pts = m.points.map((p) => matrix.transformPoint(new DOMPoint(p.x, p.y)));
    ctx.strokeStyle = m === this.draft ? "#ffd54f" : "#4fc3f7";
    ctx.fillStyle = ctx.strokeStyle;
    ctx.lineWidth = 1.5 * dpr;
    ctx.beginPath();
    if (m.type === "roi" && pts.length === 2) {
      const [a, b] = pts;
      ctx.ellipse((a.x + b.x) / 2, (a.y + b.y) / 2, Math.abs(b.x - a.x) / 2, Math.abs(b.y - a.y) / 2, 0, 0, 2 * Math.PI);
    } else {
      pts.forEach((p, i) => (i ? ctx.lineTo(p.x, p.y) : ctx.moveTo(p.x, p.y)));
    }
    ctx.stroke();
    if (m.text) {
      ctx.font = `${12 * dpr}px sans-serif`;
      const last = pts[pts.length - 1];
      const width = ctx.measureText(m.text).width;
      const x = Math.max(4 * dpr, Math.min(last.x + 6 * dpr, this.canvas.width - width - 4 * dpr));
      const y = Math.max(14 * dpr, Math.min(last.y - 6 * dpr, this.canvas.height - 4 * dpr));
      ctx.lineWidth = 3 * dpr;
      ctx.strokeStyle = "#000";
      ctx.strokeText(m.text, x, y);
      ctx.fillText(m.text, x, y);
    }
  }

  updateOverlay() {
    const ref = this.current;
    const instance = ref && ref.instance;
    const colour = Boolean(this.shown && this.frame.kind === "rendered");
    const source = instance && instance.spacing_source;
    showImage(this.root, {
      loading: Boolean(ref) && !this.shown,
      series: this.series,
      instance,
      position: ref ? ref.instanceIndex + 1 : 0,
      total: this.series ? this.series.instances.length : 0,
      frame: ref ? ref.n : 0,
      frames: ref ? ref.count : 0,
      window: colour ? null : this.window,
      colour,
      zoomPercent: this.shown ? Math.round((this.scale() / (window.devicePixelRatio || 1)) * 100) : 0,
      spacingNote: source === "ImagerPixelSpacing" ? "Imager Pixel Spacing" : "",
    });
    this.root.dataset.window = this.window ? `${this.window.center},${this.window.width}` : "";
    this.updateGeometry();
  }

  /** Orientation markers and scale bar for the image in view, as turned, flipped and zoomed. */
  updateGeometry() {
    if (!this.shown) {
      showGeometry(this.root, null, null);
      return;
    }
    const instance = this.current.instance;
    const directions = imageDirections(instance.orientation, instance.patient_orientation);
    const edges = edgeLabels(directions, this.rotation, this.flipH, this.flipV);
    const dpr = window.devicePixelRatio || 1;
    const cssScale = this.scale() / dpr;
    const spacing = instance.spacing_source ? instance.pixel_spacing : null;
    const room = Math.min(BAR_MAX_PX, (this.canvas.width / dpr) * BAR_SHARE);
    showGeometry(this.root, edges, scaleBar(horizontalSpacing(spacing, this.rotation, cssScale), room));
  }

  /** Finish a measurement in image coordinates and report its text. */
  finish(m) {
    const instance = this.current.instance;
    const spacing = instance.spacing_source ? instance.pixel_spacing : null;
    if (m.type === "length") m.value = distance(m.points[0], m.points[1], spacing);
    else if (m.type === "angle") m.value = angle(m.points[0], m.points[1], m.points[2], spacing);
    else {
      if (this.frame.kind !== "values") return;
      m.stats = ellipseStats(this.frame, m.points[0], m.points[1], spacing);
      if (!m.stats) return;
    }
    m.text = measurementText(m, spacing ? instance.spacing_source : null);
    const key = this.frameRef.values;
    this.measurements.set(key, (this.measurements.get(key) || []).concat([m]));
    this.hooks.onMeasure(m, spacing ? instance.spacing_source : null);
  }

  bindPointer() {
    const canvas = this.canvas;
    canvas.addEventListener("contextmenu", (event) => event.preventDefault());
    canvas.addEventListener("pointerdown", (event) => this.pointerDown(event));
    canvas.addEventListener("pointermove", (event) => this.pointerMove(event));
    canvas.addEventListener("pointerup", (event) => this.pointerUp(event));
    canvas.addEventListener("pointercancel", () => {
      this.drag = null;
    });
  }

  pointerDown(event) {
    if (!this.shown) return;
    this.hooks.activate(this);
    focusCanvas(this.canvas);
    const tool = event.button === 1 ? "pan" : event.button === 2 ? "zoom" : this.hooks.tool();
    const point = this.toImage(event);
    this.canvas.setPointerCapture(event.pointerId);
    if (tool === "angle") {
      this.angleClick(point);
      return;
    }
    this.drag = {
      tool, x: event.clientX, y: event.clientY, window: this.window, zoom: this.scale(), panX: this.panX, panY: this.panY,
    };
    if (tool === "length" || tool === "roi") this.draft = { type: tool, points: [point, point] };
  }

  /** Angle: first click the end of one arm, then the vertex, then the end of the other arm. */
  angleClick(point) {
    if (!this.draft || this.draft.type !== "angle") {
      this.draft = { type: "angle", points: [point, point] };
    } else {
      this.draft.points[this.draft.points.length - 1] = point;
      if (this.draft.points.length === 3) {
        const m = this.draft;
        this.draft = null;
        this.finish(m);
      } else {
        this.draft.points.push(point);
      }
    }
    this.render();
  }

  pointerMove(event) {
    if (this.draft && this.draft.type === "angle" && !this.drag) {
      this.draft.points[this.draft.points.length - 1] = this.toImage(event);
      this.schedule();
      return;
    }
    const drag = this.drag;
    if (!drag) return;
    const dpr = window.devicePixelRatio || 1;
    const dx = event.clientX - drag.x;
    const dy = event.clientY - drag.y;
    if (drag.tool === "wl" && this.frame.kind === "values") {
      this.window = dragWindow(drag.window, dx, dy, this.frame);
      this.hooks.onWindow(this);
    } else if (drag.tool === "pan") {
      this.panX = drag.panX + dx * dpr;
      this.panY = drag.panY + dy * dpr;
    } else if (drag.tool === "zoom") {
      this.zoom = Math.min(64, Math.max(0.02, drag.zoom * Math.exp(-dy / 150)));
    } else if (this.draft) {
      this.draft.points[1] = this.toImage(event);
    }
    this.schedule();
  }

  pointerUp(event) {
    const drag = this.drag;
    this.drag = null;
    if (!drag || !this.draft || this.draft.type === "angle") {
      if (drag && drag.tool === "wl") this.hooks.onChange(this);
      return;
    }
    this.draft.points[1] = this.toImage(event);
    const m = this.draft;
    this.draft = null;
    if (Math.hypot(m.points[1].x - m.points[0].x, m.points[1].y - m.points[0].y) > 0.5) this.finish(m);
    this.render();
  }

  /** Coalesce renders to one per animation frame while dragging. */
  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.render();
    });
  }
}

/** Overlay pixels white, as the server's `overlays=true` render (viewer/render.py). */
function burnIn(mask, rgba) {
  for (let i = 0, j = 0; i < mask.length; i += 1, j += 4) {
    if (mask[i]) {
      rgba[j] = 255;
      rgba[j + 1] = 255;
      rgba[j + 2] = 255;
    }
  }
}

function focusCanvas(canvas) {
  if (document.activeElement !== canvas) canvas.focus({ preventScroll: true });
}
