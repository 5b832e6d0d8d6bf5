// teleread viewer — fetching frames once and keeping them in a bounded cache.
// Greyscale frames come from the `values` route as raw little-endian int16/float32 modality
// values; colour frames (the manifest's photometric interpretation says which) are asked for in
// their own form, the server's lossless PNG render, without a failing `values` request first.
// Every request goes through one queue, ordered by the page (slices around the reader first).
// After the first frame, greyscale frames come several at a time from the batch route, fetched
// by Web Workers (frame_worker.js) so that the page's main thread only paints.

import { batchUrl, frameKey, seriesOf, valuesView } from "./batches.js";
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

/**
 * A few Web Workers running frame_worker.js, asked in turn. `request(url, batch)` resolves to
 * { buffer, frames } (the body, transferred to this thread, and its index with each frame's
 * value range) or rejects with a FrameError. A worker that fails to start fails its requests
 * and the pool's `broken` is set, so the store goes back to fetching on the main thread.
 */
export class FrameWorkers {
  constructor(count = WORKERS) {
    this.workers = [];
    this.waiting = new Map();
    this.next = 0;
    this.ids = 0;
    this.broken = false;
    for (let i = 0; i < count; i += 1) {
      const worker = new Worker(new URL("./frame_worker.js", import.meta.url), { type: "module" });
      worker.onmessage = (event) => this.answer(event.data);
      worker.onerror = () => this.fail(worker);
      this.workers.push(worker);
    }
  }

  request(url, batch) {
    const worker = this.workers[this.next % this.workers.length];
    this.next += 1;
    const id = (this.ids += 1);
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, worker });
      worker.postMessage({ id, url, batch });
    });
  }

  answer(message) {
    const waiting = this.waiting.get(message.id);
    if (!waiting) return;
    this.waiting.delete(message.id);
    if (message.buffer) waiting.resolve(message);
    else waiting.reject(new FrameError(message.status, message.code));
  }

  fail(worker) {
    this.broken = true;
    for (const [id, waiting] of this.waiting) {
      if (waiting.worker !== worker) continue;
      this.waiting.delete(id);
      waiting.reject(new FrameError(0, "worker_failed"));
    }
  }
}

/** Workers fetching frames; requests (batches) in flight at once; frames in flight at most. */
const WORKERS = 2;
const LANES = 3;
const IN_FLIGHT = 32;
/** Frames per batch after each re-ordering: the slice in view alone, then more and more. */
const RAMP = [1, 4, 8, 16];
/** A batch holds at most this many bytes of values (a 3000x3000 CR goes alone). */
const BATCH_BYTES = 8 * 1024 * 1024;

function frameBytes(ref) {
  const instance = ref.instance || {};
  return (instance.rows || 512) * (instance.columns || 512) * 2;
}

/** The frame `ref` of a worker's answer, as loadFrame would have made it. */
function frameOf(result, ref, single) {
  const key = frameKey(ref.values);
  const entry = single ? result.frames[0] : result.frames.find((e) => `${e.instance}:${e.frame}` === key);
  if (!entry) throw new FrameError(0, "missing_frame");
  if (entry.error === "colour_image") return loadRendered(ref.rendered);
  if (entry.error) throw new FrameError(entry.status, entry.error);
  const values = valuesView(result.buffer, entry);
  if (!values) throw new FrameError(0, "short_values");
  const range = entry.min === undefined ? valueRange(values) : { min: entry.min, max: entry.max };
  const { dtype, rows, columns } = entry;
  return { kind: "values", dtype, rows, columns, photometric: entry.photometric || "MONOCHROME2", values, ...range };
}

function frameSize(frame) {
  return frame.kind === "values" ? frame.values.byteLength : frame.rows * frame.columns * 4;
}

/**
 * Fetches each frame at most once (concurrent requests for one URL share a promise), through
 * one queue. The page decides the order and re-decides it whenever the reader moves
 * (`prioritise`): the slice in view first, then outward from it. Firing a request per slice
 * scrolled past instead made every slice wait behind all the others (2 of 120 slices painted in
 * 2.6 s of scrolling). Listeners hear of each frame that arrives or fails.
 * Until the first frame has arrived only that one is asked for, by the page itself through the
 * per-frame `values` route: the first image does not share the server's cores and the page's
 * main thread with other frames' decoding, gzip and unpacking (bench/viewer_speed.py, first
 * image). The workers start once it has come (startWorkers).
 * Then frames go through Web Workers (frame_worker.js) in batches of one series (the batch route,
 * batches.js), LANES requests at once: after each re-ordering the slice at the head alone, then
 * batches of 4, 8 and 16 of the next wanted frames of its series, never more than IN_FLIGHT
 * frames asked for and unanswered, so a reader who jumps waits behind at most that many. Each
 * frame is a view of its batch's buffer (no copy): the buffer goes when the last of its frames
 * leaves the cache, so the cache's bound counts frames, not batches. Without workers (or if
 * they fail to start), frames are fetched one by one on this thread, six at a time (Chromium's
 * limit per host over HTTP/1.1), as before.
 */
export class FrameStore {
  constructor(maxBytes, parallel = 6, useWorkers = true) {
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
    this.inFlight = 0; // frames asked for and not answered yet
    this.step = 0; // position in RAMP since the last re-ordering
    this.head = null;
    this.workers = null;
    this.useWorkers = useWorkers && LITTLE_ENDIAN && typeof Worker !== "undefined";
  }

  /** Start the workers once the first frame has come: their scripts are not fetched (from the
   * same server) and their threads not started while the page waits for its manifest and first
   * image. Messages posted before a worker runs wait for it. */
  startWorkers() {
    if (!this.useWorkers || this.workers) return;
    this.useWorkers = false;
    try {
      this.workers = new FrameWorkers();
    } catch (_err) {
      this.workers = null; // no module workers here: every frame on the main thread
    }
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
    if (!this.pending.has(key)) this.track(frameRef, loadFrame(frameRef));
    return this.pending.get(key);
  }

  /** Keep `promise` as the frame's load: cache what it gives, tell the listeners either way. */
  track(frameRef, promise) {
    const key = frameRef.values;
    const tracked = promise.then(
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
    this.pending.set(key, tracked);
    return tracked;
  }

  /** Replace the queue with `frameRefs`, most wanted first; frames held or in flight are skipped.
   * A new slice at the head (the reader moved to a frame not on its way) starts the batches
   * small again: that slice alone, then its neighbours. */
  prioritise(frameRefs) {
    this.queue = frameRefs.filter((ref) => !this.cache.has(ref.values) && !this.pending.has(ref.values));
    const head = this.queue.length ? this.queue[0].values : null;
    if (head !== this.head) this.step = 0;
    this.head = head;
    this.fill();
  }

  /** Whether frames go through the workers (after the first frame, which the page asks for
   * itself: the workers may still be starting). */
  get batching() {
    return Boolean(this.arrived && this.workers && !this.workers.broken);
  }

  /** Start queued requests up to the limits (one until a first frame has arrived). */
  fill() {
    const limit = !this.arrived ? 1 : this.batching ? LANES : this.parallel;
    while (this.running < limit && this.queue.length && (!this.batching || this.inFlight < IN_FLIGHT)) {
      if (!this.pump()) break;
    }
  }

  /** The next wanted frame not held or in flight, and (batching) more of its series after it. */
  take() {
    let ref;
    do ref = this.queue.shift();
    while (ref && (this.cache.has(ref.values) || this.pending.has(ref.values)));
    if (!ref) return [];
    const series = seriesOf(ref.values);
    if (!this.batching || !series || isColour(ref.instance && ref.instance.photometric)) return [ref];
    const size = Math.min(RAMP[Math.min(this.step, RAMP.length - 1)], IN_FLIGHT - this.inFlight);
    this.step += 1;
    const group = [ref];
    let bytes = frameBytes(ref);
    for (let i = 0; i < this.queue.length && group.length < size; i += 1) {
      const other = this.queue[i];
      if (seriesOf(other.values) !== series || isColour(other.instance && other.instance.photometric)) continue;
      if (this.cache.has(other.values) || this.pending.has(other.values)) continue;
      if (bytes + frameBytes(other) > BATCH_BYTES) break;
      bytes += frameBytes(other);
      group.push(other);
      this.queue.splice(i, 1);
      i -= 1;
    }
    return group;
  }

  /** Start one request (a frame on this thread, or a batch through a worker); false if none. */
  pump() {
    const group = this.take();
    if (!group.length) return false;
    this.running += 1;
    this.inFlight += group.length;
    let loads;
    if (!this.batching) {
      loads = [this.get(group[0])];
    } else {
      const single = group.length === 1;
      const answer = single
        ? this.workers.request(group[0].values, false)
        : this.workers.request(batchUrl(group.map((ref) => ref.values)), true);
      loads = group.map((ref) =>
        this.track(
          ref,
          answer.then(
            (result) => frameOf(result, ref, single),
            (err) => {
              if (err.status === 409 && err.code === "colour_image") return loadRendered(ref.rendered);
              throw err;
            },
          ),
        ),
      );
    }
    Promise.allSettled(loads).then(() => {
      this.running -= 1;
      this.inFlight -= group.length;
      this.arrived = true; // an answer, loaded or failed: the rest may go in parallel
      this.startWorkers();
      this.fill();
    });
    return true;
  }
}
