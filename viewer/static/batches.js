// teleread viewer — several frames of a series in one answer (pure functions, no DOM).
// The batch route (service/viewing/value_batches.py) answers up to 32 frames' modality values
// in one body: uint32 H, H bytes of JSON index (space-padded to a multiple of 8 with the four
// bytes before it), then each frame's little-endian values at `offset` bytes after the index,
// each offset a multiple of 8, so every frame is a typed-array view of the one buffer: no copy.

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
  return `${seriesOf(valuesUrls[0])}/values?frames=${frames.join(",")}`;
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
