// teleread viewer — a Web Worker that fetches frames' modality values off the page's main
// thread. Chromium takes in a response body on the thread that asked for it: on the main thread
// a 150-slice CT (79 MB of values) cost about 1.5 s of task time there, in between the page's
// own painting (docs/viewer.md, round 4). Here the body is read, its index parsed, frames packed
// as delta8 rebuilt (batches.js, unpackBatch; round 5) and each frame's value range found; the
// buffer then moves to the page (transferred, not copied).
//
// Message in: { id, url, batch } (batch: the batch route's body, else one frame of the
// per-frame `values` route). Message out: { id, buffer, frames } with frames the batch index
// (or one entry for a single frame) plus min/max of each frame's values, or
// { id, status, code } when the request failed.

import { readBatch, unpackBatch, valuesView } from "./batches.js";
import { valueRange } from "./windowing.js";

function single(buffer, headers) {
  return [
    {
      dtype: headers.get("X-Teleread-Dtype"),
      rows: Number(headers.get("X-Teleread-Rows")),
      columns: Number(headers.get("X-Teleread-Columns")),
      photometric: headers.get("X-Teleread-Photometric") || "MONOCHROME2",
      offset: 0,
      length: buffer.byteLength,
    },
  ];
}

async function load({ id, url, batch }) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/octet-stream" } });
  if (!response.ok) {
    let code = null;
    try {
      code = (await response.json()).error;
    } catch (_err) {
      code = null;
    }
    return [{ id, status: response.status, code }, []];
  }
  const body = await response.arrayBuffer();
  const { buffer, frames } = batch
    ? unpackBatch(body, readBatch(body))
    : { buffer: body, frames: single(body, response.headers) };
  for (const entry of frames) {
    const values = "offset" in entry && entry.min === undefined ? valuesView(buffer, entry) : null;
    if (values) Object.assign(entry, valueRange(values));
  }
  return [{ id, buffer, frames }, [buffer]];
}

self.onmessage = async (event) => {
  try {
    const [message, transfer] = await load(event.data);
    self.postMessage(message, transfer);
  } catch (err) {
    self.postMessage({ id: event.data.id, status: 0, code: String((err && err.message) || err) });
  }
};
