// teleread viewer — fetching frames once and keeping them in a bounded cache.
// Greyscale frames come from the `values` route as raw little-endian int16/float32 modality
// values; colour frames (the manifest's photometric interpretation says which) are asked for in
// their own form, the server's lossless PNG render, without a failing `values` request first.
// Every request goes through one queue, ordered by the page (slices around the reader first).

import { blockMeans } from "./blocks.js";
import { valueRange } from "./windowing.js";

/** Least-recently-used cache bounded by bytes (Map iteration order is insertion order). */
export class FrameCache {
  constructor(maxBytes) {
    this.maxBytes = maxBytes;
    this.bytes = 0;
    this.entries = new Map();
  }

  get(key) {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  has(key) {
    return this.entries.has(key);
  }

  set(key, value, size) {
    if (this.entries.has(key)) {
      this.bytes -= this.entries.get(key).size;
      this.entries.delete(key);
    }
    this.entries.set(key, { value, size });
    this.bytes += size;
    for (const [oldKey, entry] of this.entries) {
      if (this.bytes <= this.maxBytes || oldKey === key) break;
      this.entries.delete(oldKey);
      this.bytes -= entry.size;
    }
  }
}

export class FrameError extends Error {
  constructor(status, code) {
    super(`frame request failed: ${status} ${code || ""}`);
    this.status = status;
    this.code = code;
  }
}

/** Whether typed arrays here are little-endian (every browser we know of): then a `values` body
 * is used as the array itself, where reading it value by value through a DataView cost about a
 * millisecond a 512x512 frame on the main thread. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Decode a `values` response body with its X-Teleread-* headers into a frame object. */
export function decodeValues(buffer, headers) {
  const dtype = headers.get("X-Teleread-Dtype");
  const rows = Number(headers.get("X-Teleread-Rows"));
  const columns = Number(headers.get("X-Teleread-Columns"));
  const photometric = headers.get("X-Teleread-Photometric") || "MONOCHROME2";
  const n = rows * columns;
  const size = dtype === "float32" ? 4 : 2;
  if (!(n > 0) || buffer.byteLength < n * size) throw new FrameError(0, "short_values");
  if (dtype !== "int16" && dtype !== "float32") throw new FrameError(0, `unknown dtype ${dtype}`);
  const Typed = dtype === "int16" ? Int16Array : Float32Array;
  let values;
  if (LITTLE_ENDIAN) {
    values = new Typed(buffer, 0, n); // the body as it came: no copy, no per-value call
  } else {
    const view = new DataView(buffer);
    values = new Typed(n);
    for (let i = 0; i < n; i += 1) values[i] = size === 2 ? view.getInt16(i * 2, true) : view.getFloat32(i * 4, true);
  }
  const range = valueRange(values);
  return { kind: "values", dtype, rows, columns, photometric, values, ...range };
}

/** Colour frame: the server's lossless PNG render, decoded off the main thread. */
async function loadRendered(url, signal) {
  const response = await fetch(url, {
    credentials: "same-origin",
    headers: { Accept: "image/png" },
    signal,
  });
  if (!response.ok) throw new FrameError(response.status, null);
  const image = await createImageBitmap(await response.blob());
  return { kind: "rendered", image, rows: image.height, columns: image.width };
}

/** Colour Photometric Interpretations (0028,0004), as viewer/frames.py is_colour: no modality
 * values to window (PS3.3 C.7.6.3.1.2); PALETTE COLOR counts (its tables make it RGB). */
const COLOUR = new Set(["RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "PALETTE COLOR"]);

export function isColour(photometric) {
  return COLOUR.has(String(photometric || "").trim().toUpperCase());
}

/** One frame: values (greyscale) or the rendered PNG (colour). Throws FrameError. */
export async function loadFrame(frameRef, signal) {
  if (isColour(frameRef.instance && frameRef.instance.photometric)) {
    return loadRendered(frameRef.rendered, signal);
  }
  const response = await fetch(frameRef.values, {
    credentials: "same-origin",
    headers: { Accept: "application/octet-stream" },
    signal,
  });
  if (response.ok) return decodeValues(await response.arrayBuffer(), response.headers);
  let code = null;
  try {
    code = (await response.json()).error;
  } catch (_err) {
    code = null;
  }
  if (response.status === 409 && code === "colour_image") {
    return loadRendered(frameRef.rendered, signal); // a manifest older than the object
  }
  throw new FrameError(response.status, code);
}

/**
 * A frame's DICOM overlay planes (60xx) as one mask, 1 where the server's
 * `rendered?overlays=true` burns white in: the `overlay` route's lossless PNG, read back.
 */
async function loadOverlay(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "image/png" } });
  if (!response.ok) throw new FrameError(response.status, null);
  const image = await createImageBitmap(await response.blob());
  const canvas = document.createElement("canvas");
  canvas.width = image.width;
  canvas.height = image.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0);
  const rgba = ctx.getImageData(0, 0, image.width, image.height).data;
  const mask = new Uint8Array(image.width * image.height);
  for (let i = 0; i < mask.length; i += 1) mask[i] = rgba[i * 4] > 127 ? 1 : 0;
  return mask;
}

function frameSize(frame) {
  return frame.kind === "values" ? frame.values.byteLength : frame.rows * frame.columns * 4;
}

/**
 * Fetches each frame at most once (concurrent requests for one URL share a promise), through
 * one queue with six parallel requests (what Chromium opens to one host over HTTP/1.1). The page
 * decides the order and re-decides it whenever the reader moves (`prioritise`): the slice in view first, then outward from it. Firing a
 * request per slice scrolled past instead made every slice wait behind all the others (2 of 120
 * slices painted in 2.6 s of scrolling). Listeners hear of each frame that arrives or fails.
 * Until the first frame has arrived only that one is asked for: the first image no longer shares
 * the server's cores and the page's main thread with five other frames' decoding, gzip and
 * unpacking (bench/viewer_speed.py, first image), at the cost of one round trip for the rest.
 */
export class FrameStore {
  constructor(maxBytes, parallel = 6) {
    this.cache = new FrameCache(maxBytes);
    this.pending = new Map();
    this.parallel = parallel;
    this.queue = [];
    this.running = 0;
    this.arrived = false; // any frame answered yet: until then, one request at a time
    this.listeners = new Set();
    this.overlays = new FrameCache(Math.max(1, Math.floor(maxBytes / 16)));
    this.overlaysPending = new Map();
    this.reductions = new WeakMap(); // frame -> { step, image }: its block means (reduced)
  }

  /**
   * The frame's block means at `step` (blocks.js), computed once per frame and step and kept
   * beside the frame: weakly, so they go when the frame leaves the cache (and the viewports), and
   * replaced when the step changes. Their bytes count in the cache's bound while the frame is in
   * it. A 3000x3000 CR pays the reduction on the first repaint at a new step; the window/level
   * repaints after it window the reduced image only.
   */
  reduced(frameRef, frame, step) {
    const kept = this.reductions.get(frame);
    if (kept && kept.step === step) return kept.image;
    const image = blockMeans(frame, step);
    this.reductions.set(frame, { step, image });
    const key = frameRef.values;
    if (this.cache.has(key)) this.cache.set(key, frame, frameSize(frame) + image.values.byteLength);
    return image;
  }

  /** The frame's overlay mask if loaded, else undefined (and null if it failed). */
  cachedOverlay(frameRef) {
    return this.overlays.get(frameRef.overlay);
  }

  /** Load a frame's overlay mask once; onLoaded() when it arrives (not when it fails). */
  loadOverlay(frameRef, onLoaded) {
    const key = frameRef.overlay;
    if (this.overlays.has(key) || this.overlaysPending.has(key)) return;
    const promise = loadOverlay(key)
      .then((mask) => {
        this.overlays.set(key, mask, mask.byteLength);
        onLoaded();
      })
      .catch(() => this.overlays.set(key, null, 1))
      .finally(() => this.overlaysPending.delete(key));
    this.overlaysPending.set(key, promise);
  }

  cached(frameRef) {
    return this.cache.get(frameRef.values);
  }

  /** listener(ref, frame, error) after each frame loaded (error null) or failed (frame null). */
  subscribe(listener) {
    this.listeners.add(listener);
  }

  notify(ref, frame, error) {
    for (const listener of this.listeners) listener(ref, frame, error);
  }

  async get(frameRef) {
    const key = frameRef.values;
    const hit = this.cache.get(key);
    if (hit) return hit;
    if (!this.pending.has(key)) {
      const promise = loadFrame(frameRef).then(
        (frame) => {
          this.pending.delete(key);
          this.cache.set(key, frame, frameSize(frame));
          performance.mark("teleread:frame-loaded"); // bench/viewer_speed.py reads these
          this.notify(frameRef, frame, null);
          return frame;
        },
        (err) => {
          this.pending.delete(key);
          this.notify(frameRef, null, err);
          throw err;
        },
      );
      this.pending.set(key, promise);
    }
    return this.pending.get(key);
  }

  /** Replace the queue with `frameRefs`, most wanted first; frames held or in flight are skipped. */
  prioritise(frameRefs) {
    this.queue = frameRefs.filter((ref) => !this.cache.has(ref.values) && !this.pending.has(ref.values));
    this.fill();
  }

  /** Start queued requests up to the parallel limit (one until a first frame has arrived). */
  fill() {
    const limit = this.arrived ? this.parallel : 1;
    while (this.running < limit && this.queue.length) this.pump();
  }

  pump() {
    const ref = this.queue.shift();
    if (!ref) return;
    this.running += 1;
    this.get(ref)
      .catch(() => null)
      .finally(() => {
        this.running -= 1;
        this.arrived = true; // an answer, loaded or failed: the rest may go in parallel
        this.fill();
      });
  }
}
