// viewer/static/sync.js: which slice of the other stack shows the same level.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { byProportion, matchingSlice, planeNormal } from "../../viewer/static/sync.js";

const AXIAL = [1, 0, 0, 0, 1, 0];

/** An axial stack: `count` slices `step` mm apart from z = `start`, in one frame of reference. */
function stack(count, start, step, frameOfReference = "1.2.3", extra = {}) {
  return Array.from({ length: count }, (_, i) => ({
    position: [-100, -100, start + i * step],
    orientation: AXIAL,
    location: start + i * step,
    frameOfReference,
    ...extra,
  }));
}

describe("planeNormal", () => {
  test("an axial plane's normal is +z", () => {
    assert.deepEqual(planeNormal(AXIAL), [0, 0, 1]);
  });

  test("no orientation, no normal", () => {
    assert.equal(planeNormal(null), null);
  });
});

describe("matchingSlice", () => {
  test("in one frame of reference the nearest position along the normal wins", () => {
    const current = stack(30, -72.5, 5); // 5 mm slices
    const prior = stack(60, -50, 2.5); // 2.5 mm slices over a shorter range
    // current slice 10 lies at z = -22.5: prior slice 11 (z = -22.5).
    assert.deepEqual(matchingSlice(current, prior, 10), { index: 11, by: "position" });
    // current slice 29 (z = 72.5): prior slice 49.
    assert.deepEqual(matchingSlice(current, prior, 29), { index: 49, by: "position" });
    // below the prior's range (z = -72.5 < -50): its first slice.
    assert.deepEqual(matchingSlice(current, prior, 0), { index: 0, by: "position" });
  });

  test("a stack scanned in the other direction still matches by position", () => {
    const current = stack(10, 0, 5);
    const reversed = stack(10, 45, -5);
    assert.deepEqual(matchingSlice(current, reversed, 2), { index: 7, by: "position" });
  });

  test("without positions, Slice Location in the same frame of reference", () => {
    const current = stack(10, 0, 5, "1.2.3", { position: null });
    const prior = stack(20, 0, 2.5, "1.2.3", { position: null });
    assert.deepEqual(matchingSlice(current, prior, 4), { index: 8, by: "location" });
  });

  test("another frame of reference: by place in the stack", () => {
    const current = stack(150, 0, 1, "1.2.3");
    const prior = stack(16, 0, 10, "9.8.7");
    assert.deepEqual(matchingSlice(current, prior, 83), { index: 8, by: "index" });
    assert.deepEqual(matchingSlice(current, prior, 149), { index: 15, by: "index" });
  });

  test("no frame of reference at all: by place in the stack", () => {
    const current = stack(11, 0, 1, "");
    const prior = stack(6, 0, 1, "");
    assert.deepEqual(matchingSlice(current, prior, 10), { index: 5, by: "index" });
  });

  test("planes at an angle are not matched by position", () => {
    const current = stack(10, 0, 5);
    const sagittal = stack(10, 0, 5, "1.2.3", { orientation: [0, 1, 0, 0, 0, -1] });
    assert.equal(matchingSlice(current, sagittal, 3).by, "index");
  });
});

describe("byProportion", () => {
  test("first to first, last to last, single-image stacks to 0", () => {
    assert.equal(byProportion(0, 150, 16), 0);
    assert.equal(byProportion(149, 150, 16), 15);
    assert.equal(byProportion(5, 10, 1), 0);
    assert.equal(byProportion(0, 1, 10), 0);
  });
});
