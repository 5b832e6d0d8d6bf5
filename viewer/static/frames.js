// teleread viewer — fetching frames once and keeping them in a bounded cache.
// Greyscale frames come from the `values` route as raw little-endian int16/float32 modality
// values; colour frames (409 colour_image) fall back to the server's rendered PNG.

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

/** Decode a `values` response body with its X-Teleread-* headers into a frame object. */
export function decodeValues(buffer, headers) {
  const dtype = headers.get("X-Teleread-Dtype");
  const rows = Number(headers.get("X-Teleread-Rows"));
  const columns = Number(headers.get("X-Teleread-Columns"));
  const photometric = headers.get("X-Teleread-Photometric") || "MONOCHROME2";
  const n = rows * columns;
  const size = dtype === "float32" ? 4 : 2;
  if (!(n > 0) || buffer.byteLength < n * size) throw new FrameError(0, "short_values");
  const view = new DataView(buffer);
  let values;
  if (dtype === "int16") {
    values = new Int16Array(n);
    for (let i = 0; i < n; i += 1) values[i] = view.getInt16(i * 2, true);
  } else if (dtype === "float32") {
    values = new Float32Array(n);
    for (let i = 0; i < n; i += 1) values[i] = view.getFloat32(i * 4, true);
  } else {
    throw new FrameError(0, `unknown dtype ${dtype}`);
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

/** One frame: values (greyscale) or the rendered PNG (colour). Throws FrameError. */
export async function loadFrame(frameRef, signal) {
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
    return loadRendered(frameRef.rendered, signal);
  }
  throw new FrameError(response.status, code);
}

function frameSize(frame) {
  return frame.kind === "values" ? frame.values.byteLength : frame.rows * frame.columns * 4;
}

/**
 * Fetches each frame at most once (concurrent requests for one URL share a promise) and
 * prefetches a list in the background with a few parallel requests.
 */
export class FrameStore {
  constructor(maxBytes, parallel = 4) {
    this.cache = new FrameCache(maxBytes);
    this.pending = new Map();
    this.parallel = parallel;
    this.queue = [];
    this.running = 0;
  }

  cached(frameRef) {
    return this.cache.get(frameRef.values);
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
          return frame;
        },
        (err) => {
          this.pending.delete(key);
          throw err;
        },
      );
      this.pending.set(key, promise);
    }
    return this.pending.get(key);
  }

  /** Replace the background queue (e.g. on a series change); onProgress(done) after each. */
  prefetch(frameRefs, onProgress) {
    this.queue = frameRefs.filter((ref) => !this.cache.has(ref.values));
    this.onProgress = onProgress;
    while (this.running < this.parallel && this.queue.length) this.pump();
  }

  pump() {
    const ref = this.queue.shift();
    if (!ref) return;
    this.running += 1;
    this.get(ref)
      .catch(() => null)
      .finally(() => {
        this.running -= 1;
        if (this.onProgress) this.onProgress();
        if (this.queue.length) this.pump();
      });
  }
}
