// teleread viewer — several frames of a series in one answer (pure functions, no DOM).
// The batch route (service/viewing/value_batches.py) answers up to 32 frames' modality values
// in one body: uint32 H, H bytes of JSON index (space-padded to a multiple of 8 with the four
// bytes before it), then each frame's little-endian values at `offset` bytes after the index,
// each offset a multiple of 8, so every frame is a typed-array view of the one buffer: no copy.
// The page asks for int16 frames packed as `delta8` (value_batches.py: each value's difference
// from the one before in one signed byte, or 0x80 and the value in two): about half the bytes
// for Chromium to take in and hand over (docs/viewer.md, round 5); `unpackBatch` rebuilds them.

/** The per-frame `values` URL's parts: the series' prefix, the instance UID, the frame number. */
const VALUES_URL = /^(.*\/series\/[^/]+)\/instances\/([^/]+)\/frames\/(\d+)\/values$/;

/** The series part of a frame's `values` URL (frames of one series share a batch), or null. */
export function seriesOf(valuesUrl) {
  const match = VALUES_URL.exec(valuesUrl);
  return match ? match[1] : null;
}

/** The batch URL of `valuesUrls` (all of one series, each frame's per-frame `values` URL). */
export function batchUrl(valuesUrls) {
  const frames = valuesUrls.map((url) => {
    const [, , uid, n] = VALUES_URL.exec(url);
    return `${uid}:${n}`;
  });
  return `${seriesOf(valuesUrls[0])}/values?frames=${frames.join(",")}&packing=delta8`;
}

/** The key a frame has in a batch's index, from its per-frame `values` URL or an index entry. */
export function frameKey(valuesUrl) {
  const [, , uid, n] = VALUES_URL.exec(valuesUrl);
  return `${uid}:${n}`;
}

/** The index of a batch body: one entry per frame asked for, `offset` made absolute. */
export function readBatch(buffer) {
  if (buffer.byteLength < 4) throw new Error("short batch");
  const length = new DataView(buffer).getUint32(0, true);
  const text = new TextDecoder().decode(new Uint8Array(buffer, 4, length));
  const start = 4 + length;
  return JSON.parse(text).frames.map((entry) =>
    "offset" in entry ? { ...entry, offset: start + entry.offset } : entry,
  );
}

/** The typed array of a frame's values in `buffer` (a view: no copy), or null if too short. */
export function valuesView(buffer, entry) {
  const n = entry.rows * entry.columns;
  const Typed = entry.dtype === "int16" ? Int16Array : entry.dtype === "float32" ? Float32Array : null;
  if (!Typed || !(n > 0) || entry.length < n * Typed.BYTES_PER_ELEMENT) return null;
  if (entry.offset + n * Typed.BYTES_PER_ELEMENT > buffer.byteLength) return null;
  return new Typed(buffer, entry.offset, n);
}

const ESCAPE = 0x80;

/** Rebuild `n` int16 values from their `delta8` packing (`bytes`) into `out` (an Int16Array);
 * returns their min and max, found on the way. Throws if the packing does not hold n values. */
export function undelta8(bytes, out, n) {
  let p = 0;
  let value = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i += 1) {
    const b = bytes[p];
    if (b === ESCAPE) {
      value = ((bytes[p + 1] | (bytes[p + 2] << 8)) << 16) >> 16;
      p += 3;
    } else {
      value = ((value + ((b << 24) >> 24)) << 16) >> 16;
      p += 1;
    }
    out[i] = value;
    if (value < min) min = value;
    if (value > max) max = value;
  }
  if (p !== bytes.length) throw new Error("delta8 frame of the wrong length");
  return min <= max ? { min, max } : { min: 0, max: 0 };
}

/** A batch whose frames are all views of one buffer, as the page takes them: `buffer` itself if
 * no frame is packed, else a new buffer with every frame's values at an aligned offset, packed
 * ones rebuilt (with their min and max) and the others copied. */
export function unpackBatch(buffer, frames) {
  if (!frames.some((entry) => entry.packing)) return { buffer, frames };
  const sizes = frames.map((entry) => {
    if (!("offset" in entry)) return 0;
    const size = entry.packing ? entry.rows * entry.columns * 2 : entry.length;
    return size + (-size & 7);
  });
  const out = new ArrayBuffer(sizes.reduce((a, b) => a + b, 0));
  let offset = 0;
  const unpacked = frames.map((entry, i) => {
    if (!("offset" in entry)) return entry;
    const source = new Uint8Array(buffer, entry.offset, entry.length);
    const placed = { ...entry, offset };
    if (entry.packing === "delta8") {
      const n = entry.rows * entry.columns;
      Object.assign(placed, undelta8(source, new Int16Array(out, offset, n), n), { length: n * 2 });
      delete placed.packing;
    } else if (entry.packing) {
      throw new Error(`unknown packing ${entry.packing}`);
    } else {
      new Uint8Array(out, offset, entry.length).set(source);
    }
    offset += sizes[i];
    return placed;
  });
  return { buffer: out, frames: unpacked };
}
