// viewer/static/scalebar.js: round bar lengths that fit, worked out by hand.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { barLength, horizontalSpacing, scaleBar } from "../../viewer/static/scalebar.js";

describe("scaleBar", () => {
  test("the longest of 1, 2, 5 x 10^k mm that fits the room", () => {
    // 0.5 mm per pixel, 150 px of room = 75 mm: 50 mm, 100 px long.
    assert.deepEqual(scaleBar(0.5, 150), { mm: 50, pixels: 100 });
    // 0.5 mm per pixel, 400 px = 200 mm exactly: 200 mm fits.
    assert.deepEqual(scaleBar(0.5, 400), { mm: 200, pixels: 400 });
  });

  test("small fields give millimetre bars", () => {
    // 0.02 mm per pixel, 150 px = 3 mm: 2 mm, 100 px.
    const bar = scaleBar(0.02, 150);
    assert.equal(bar.mm, 2);
    assert.ok(Math.abs(bar.pixels - 100) < 1e-9);
  });

  test("no spacing or no room: no bar", () => {
    assert.equal(scaleBar(0, 100), null);
    assert.equal(scaleBar(undefined, 100), null);
    assert.equal(scaleBar(0.5, 0), null);
  });
});

describe("horizontalSpacing", () => {
  test("the column spacing across the screen, divided by the zoom", () => {
    assert.equal(horizontalSpacing([0.8, 0.4], 0, 2), 0.2);
  });

  test("a quarter turn puts the row spacing across", () => {
    assert.equal(horizontalSpacing([0.8, 0.4], 1, 2), 0.4);
  });

  test("no spacing gives 0", () => {
    assert.equal(horizontalSpacing(null, 0, 1), 0);
  });
});

describe("barLength", () => {
  test("centimetres from 10 mm, millimetres below", () => {
    assert.deepEqual(barLength(50), { value: "5", unit: "cm" });
    assert.deepEqual(barLength(5), { value: "5", unit: "mm" });
  });
});
