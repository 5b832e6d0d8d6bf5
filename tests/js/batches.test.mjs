// viewer/static/batches.js and FrameStore's batching (frames.js): the batch body read as views
// of one buffer, and which frames go together in one request, in what order.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { batchUrl, frameKey, readBatch, seriesOf, undelta8, unpackBatch, valuesView } from "../../viewer/static/batches.js";
import { FrameStore } from "../../viewer/static/frames.js";

const SERIES = "/api/viewer/studies/1.2/series/3.4";
const url = (uid, n = 1, series = SERIES) => `${series}/instances/${uid}/frames/${n}/values`;

/** A body as service/viewing/value_batches.py packs it. */
function body(entries, datas) {
  let header = new TextEncoder().encode(JSON.stringify({ frames: entries }));
  const padded = Math.ceil((4 + header.length) / 8) * 8 - 4;
  const bytes = new Uint8Array(4 + padded + datas.reduce((n, d) => n + Math.ceil(d.byteLength / 8) * 8, 0));
  new DataView(bytes.buffer).setUint32(0, padded, true);
  bytes.fill(32, 4, 4 + padded);
  bytes.set(header, 4);
  let at = 4 + padded;
  for (const d of datas) {
    bytes.set(new Uint8Array(d.buffer), at);
    at += Math.ceil(d.byteLength / 8) * 8;
  }
  return bytes.buffer;
}

describe("batches.js", () => {
  test("URLs: the series, the batch, each frame's key", () => {
    assert.equal(seriesOf(url("5.6")), SERIES);
    assert.equal(seriesOf("/elsewhere"), null);
    assert.equal(batchUrl([url("5.6"), url("5.7", 3)]), `${SERIES}/values?frames=5.6:1,5.7:3&packing=delta8`);
    assert.equal(frameKey(url("5.7", 3)), "5.7:3");
  });

  test("each frame is a view of the one buffer at its offset, errors have none", () => {
    const a = Int16Array.from([1, -2, 3]);
    const b = Float32Array.from([0.5, -1.5]);
    const entries = [
      { instance: "5.6", frame: 1, dtype: "int16", rows: 1, columns: 3, photometric: "MONOCHROME2", offset: 0, length: 6 },
      { instance: "5.7", frame: 1, status: 409, error: "colour_image" },
      { instance: "5.8", frame: 1, dtype: "float32", rows: 1, columns: 2, photometric: "MONOCHROME1", offset: 8, length: 8 },
    ];
    const buffer = body(entries, [a, b]);
    const read = readBatch(buffer);
    assert.deepEqual(Array.from(valuesView(buffer, read[0])), [1, -2, 3]);
    assert.equal(valuesView(buffer, read[0]).buffer, buffer); // no copy
    assert.equal(read[1].error, "colour_image");
    assert.deepEqual(Array.from(valuesView(buffer, read[2])), [0.5, -1.5]);
    assert.equal(valuesView(buffer, { ...read[2], rows: 9 }), null); // too short for its size
  });

  // As value_batches.py's delta8 packs them: 5 (+5), 132 (+127), 4 (-128: escaped), 32767
  // (escaped), -32768 (+1 modulo 2**16), -32641 (+127).
  const VALUES = [5, 132, 4, 32767, -32768, -32641];
  const PACKED = Uint8Array.from([5, 127, 0x80, 4, 0, 0x80, 0xff, 0x7f, 1, 127]);

  test("delta8: byte differences, escapes and wrapping rebuild the values and their range", () => {
    const out = new Int16Array(6);
    assert.deepEqual(undelta8(PACKED, out, 6), { min: -32768, max: 32767 });
    assert.deepEqual(Array.from(out), VALUES);
    assert.throws(() => undelta8(PACKED, new Int16Array(5), 5), /wrong length/);
  });

  test("a packed batch becomes one buffer of views: packed frames rebuilt, the others copied", () => {
    const b = Float32Array.from([0.5, -1.5]);
    const entries = [
      { instance: "5.6", frame: 1, dtype: "int16", rows: 2, columns: 3, photometric: "MONOCHROME2", offset: 0, length: 10, packing: "delta8" },
      { instance: "5.7", frame: 1, status: 409, error: "colour_image" },
      { instance: "5.8", frame: 1, dtype: "float32", rows: 1, columns: 2, photometric: "MONOCHROME1", offset: 16, length: 8 },
    ];
    const body_ = body(entries, [PACKED, b]);
    const { buffer, frames } = unpackBatch(body_, readBatch(body_));
    assert.notEqual(buffer, body_);
    assert.deepEqual(Array.from(valuesView(buffer, frames[0])), VALUES);
    assert.equal(frames[0].length, 12);
    assert.equal(frames[0].packing, undefined);
    assert.deepEqual([frames[0].min, frames[0].max], [-32768, 32767]);
    assert.equal(frames[1].error, "colour_image");
    assert.deepEqual(Array.from(valuesView(buffer, frames[2])), [0.5, -1.5]);
    assert.ok(frames.every((f) => !("offset" in f) || f.offset % 8 === 0));
    const plain = body([entries[2]].map((e) => ({ ...e, offset: 0 })), [b]);
    assert.equal(unpackBatch(plain, readBatch(plain)).buffer, plain); // nothing packed: no copy
  });
});

/** A store whose workers are a recorder: which requests, in which order, with which frames. */
function recordingStore() {
  const store = new FrameStore(1 << 30, 6, false);
  const asked = [];
  store.workers = { broken: false, request: (u, batch) => (asked.push({ u, batch }), new Promise(() => {})) };
  store.arrived = true;
  return { store, asked };
}

const ref = (uid, series = SERIES) => ({ instance: { uid, rows: 512, columns: 512, photometric: "MONOCHROME2" }, values: url(uid, 1, series) });

describe("FrameStore batching", () => {
  test("the slice in view alone, then growing batches of its series, within the frames in flight", () => {
    const { store, asked } = recordingStore();
    const refs = Array.from({ length: 60 }, (_, i) => ref(`9.${i}`));
    store.prioritise(refs);
    assert.deepEqual(asked.map((a) => a.batch), [false, true, true]); // three lanes
    assert.equal(asked[0].u, refs[0].values);
    assert.equal(asked[1].u, batchUrl(refs.slice(1, 5).map((r) => r.values)));
    assert.equal(asked[2].u, batchUrl(refs.slice(5, 13).map((r) => r.values)));
    assert.equal(store.inFlight, 13);
  });

  test("a batch holds one series, in the order wanted, skipping the other viewport's frames", () => {
    const { store, asked } = recordingStore();
    const prior = "/api/viewer/studies/1.2/series/7.7";
    const order = [];
    for (let i = 0; i < 10; i += 1) order.push(ref(`9.${i}`), ref(`8.${i}`, prior));
    store.prioritise(order);
    assert.equal(asked[0].u, order[0].values);
    assert.equal(asked[1].u, `${prior}/values?frames=8.0:1,8.1:1,8.2:1,8.3:1&packing=delta8`);
    assert.equal(asked[2].u, `${SERIES}/values?frames=9.1:1,9.2:1,9.3:1,9.4:1,9.5:1,9.6:1,9.7:1,9.8:1&packing=delta8`);
  });

  test("large frames go alone", () => {
    const { store, asked } = recordingStore();
    const big = (uid) => ({ ...ref(uid), instance: { uid, rows: 3000, columns: 3000, photometric: "MONOCHROME1" } });
    store.step = 3;
    store.head = url("1.0");
    store.prioritise([big("1.0"), big("1.1")]);
    assert.deepEqual(asked.map((a) => a.batch), [false, false]);
  });
});
