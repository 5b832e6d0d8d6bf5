// teleread viewer — synchronised scrolling with a prior: which slice of the other stack shows
// the same level of the patient. Pure, tested by node (tests/js/sync.test.mjs).
//
// Positions are only comparable inside one (0020,0052) *Frame of Reference UID* (PS3.3 C.7.4.1):
// two stacks sharing it are matched by where each slice lies along the stacks' normal (the
// projection of (0020,0032) *Image Position (Patient)* on the cross product of the row and column
// cosines of (0020,0037)), else by (0020,1041) *Slice Location*. Otherwise, as for a prior
// acquired on another day, the slices are matched by their place in the stack (index proportion).

/** The unit normal of an image plane from its six direction cosines, or null. */
export function planeNormal(orientation) {
  if (!Array.isArray(orientation) || orientation.length !== 6) return null;
  const [a, b, c, d, e, f] = orientation;
  const n = [b * f - c * e, c * d - a * f, a * e - b * d];
  const length = Math.hypot(...n);
  return length > 1e-6 ? n.map((v) => v / length) : null;
}

function dot(a, b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

/** Where each slice lies along `normal` (mm), or null if any slice lacks a position. */
function depths(slices, normal) {
  const out = slices.map((s) => (Array.isArray(s.position) && s.position.length === 3 ? dot(s.position, normal) : null));
  return out.every((v) => v !== null && Number.isFinite(v)) ? out : null;
}

function locations(slices) {
  const out = slices.map((s) => s.location);
  return out.every((v) => typeof v === "number" && Number.isFinite(v)) ? out : null;
}

function nearest(values, target) {
  let best = 0;
  for (let i = 1; i < values.length; i += 1) {
    if (Math.abs(values[i] - target) < Math.abs(values[best] - target)) best = i;
  }
  return best;
}

/** Same place in the stack: index i of n maps to the proportional index of m. */
export function byProportion(index, from, to) {
  if (to <= 1 || from <= 1) return 0;
  return Math.round((index * (to - 1)) / (from - 1));
}

/** Two stacks whose positions may be compared: one non-empty frame of reference, parallel planes. */
function sharedFrame(source, target) {
  const uids = new Set([...source, ...target].map((s) => s.frameOfReference || ""));
  if (uids.size !== 1 || uids.has("")) return null;
  const normal = planeNormal(source[0].orientation);
  const other = planeNormal(target[0].orientation);
  if (normal && other && Math.abs(dot(normal, other)) < 0.99) return null; // another plane
  return { normal };
}

/**
 * The index in `target` that shows the level of `source[index]`, and how it was found.
 *
 * Each slice is `{position, orientation, location, frameOfReference}` as the manifest gives.
 * @returns {{index: number, by: "position" | "location" | "index"}}
 */
export function matchingSlice(source, target, index) {
  if (!target.length || !source.length) return { index: 0, by: "index" };
  const shared = sharedFrame(source, target);
  if (shared) {
    if (shared.normal) {
      const [from, to] = [depths(source, shared.normal), depths(target, shared.normal)];
      if (from && to) return { index: nearest(to, from[index]), by: "position" };
    }
    const [from, to] = [locations(source), locations(target)];
    if (from && to) return { index: nearest(to, from[index]), by: "location" };
  }
  return { index: byProportion(index, source.length, target.length), by: "index" };
}
