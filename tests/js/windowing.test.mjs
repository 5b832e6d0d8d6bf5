// viewer/static/windowing.js: the LINEAR VOI LUT function of DICOM PS3.3 C.11.2.1.2.1 and the
// helpers around it, against values worked out by hand from the standard's formula.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  applyWindow,
  defaultWindow,
  dragWindow,
  linear,
  PRESET_ORDER,
  PRESETS,
  valueRange,
} from "../../viewer/static/windowing.js";

describe("linear", () => {
  // Window centre 40, width 400 (a soft-tissue window): the ramp runs over
  // (c - 0.5 - (w-1)/2, c - 0.5 + (w-1)/2] = (-160, 239], slope 255/399 per unit.
  test("values at or below the ramp's bottom are black", () => {
    assert.equal(linear(-1000, 40, 400), 0);
    assert.equal(linear(-160, 40, 400), 0);
  });

  test("values above the ramp's top are white", () => {
    assert.equal(linear(240, 40, 400), 255);
    assert.equal(linear(3000, 40, 400), 255);
  });

  test("inside the ramp the result is truncated toward zero, not rounded", () => {
    // y = 127.5 + (x - 39.5) * 255 / 399
    assert.equal(linear(-159, 40, 400), 0); // 0.639
    assert.equal(linear(40, 40, 400), 127); // 127.82
    assert.equal(linear(238, 40, 400), 254); // 254.36
    assert.equal(linear(239, 40, 400), 255); // exactly 255
  });

  test("inverse (MONOCHROME1) swaps black and white inside the formula", () => {
    // y = 127.5 - (x - 39.5) * 255 / 399
    assert.equal(linear(-160, 40, 400, true), 255);
    assert.equal(linear(-159, 40, 400, true), 254); // 254.36
    assert.equal(linear(40, 40, 400, true), 127); // 127.18: not 255 - 127 = 128
    assert.equal(linear(238, 40, 400, true), 0); // 0.639
    assert.equal(linear(240, 40, 400, true), 0);
  });

  test("width 1 is a threshold at the centre", () => {
    assert.equal(linear(99, 100, 1), 0);
    assert.equal(linear(99.5, 100, 1), 0);
    assert.equal(linear(100, 100, 1), 255);
  });

  test("a width below 1 is treated as 1", () => {
    assert.equal(linear(99, 100, 0), 0);
    assert.equal(linear(100, 100, -5), 255);
  });

  test("the lung preset puts -600 HU in the middle grey", () => {
    const { center, width } = PRESETS.lung;
    assert.equal(linear(-600, center, width), 127); // 127.585
  });
});

describe("PRESET_ORDER", () => {
  test("lists every preset once, brain first (number key 1)", () => {
    assert.deepEqual([...PRESET_ORDER].sort(), Object.keys(PRESETS).sort());
    assert.equal(PRESET_ORDER[0], "brain");
  });
});

describe("valueRange", () => {
  test("finds the smallest and largest value", () => {
    assert.deepEqual(valueRange(Int16Array.from([3, -2, 7, 0])), { min: -2, max: 7 });
  });

  test("an empty frame has the range 0..0", () => {
    assert.deepEqual(valueRange(new Int16Array(0)), { min: 0, max: 0 });
  });
});

describe("defaultWindow", () => {
  test("the first DICOM window wins", () => {
    const windows = [{ center: 40, width: 400 }, { center: 400, width: 1800 }];
    assert.deepEqual(defaultWindow(windows, { min: 0, max: 4095 }), { center: 40, width: 400 });
  });

  test("without one, the full range maps lowest to black and highest to white", () => {
    const window = defaultWindow([], { min: 0, max: 255 });
    assert.deepEqual(window, { center: 128, width: 256 });
    assert.equal(linear(0, window.center, window.width), 0);
    assert.equal(linear(255, window.center, window.width), 255);
  });

  test("a DICOM window of width 0 is ignored", () => {
    assert.deepEqual(defaultWindow([{ center: 5, width: 0 }], { min: 10, max: 10 }), {
      center: 10.5,
      width: 1,
    });
  });
});

describe("applyWindow", () => {
  const frame = (photometric) => ({
    dtype: "int16",
    values: Int16Array.from([-160, 40, 239]),
    min: -160,
    max: 239,
    photometric,
  });

  test("writes opaque grey RGBA pixels through the lookup table", () => {
    const out = applyWindow(frame("MONOCHROME2"), 40, 400, false, new Uint8ClampedArray(12));
    assert.deepEqual([...out], [0, 0, 0, 255, 127, 127, 127, 255, 255, 255, 255, 255]);
  });

  test("MONOCHROME1 is displayed inverted", () => {
    const out = applyWindow(frame("MONOCHROME1"), 40, 400, false, new Uint8ClampedArray(12));
    assert.deepEqual([...out], [255, 255, 255, 255, 127, 127, 127, 255, 0, 0, 0, 255]);
  });

  test("the reader's invert on MONOCHROME1 shows it upright again", () => {
    const out = applyWindow(frame("MONOCHROME1"), 40, 400, true, new Uint8ClampedArray(12));
    assert.deepEqual([...out], [0, 0, 0, 255, 127, 127, 127, 255, 255, 255, 255, 255]);
  });

  test("float data goes through the formula pixel by pixel", () => {
    const floats = { dtype: "float32", values: Float32Array.from([-160, 40.25, 239]), photometric: "MONOCHROME2" };
    const out = applyWindow(floats, 40, 400, false, new Uint8ClampedArray(12));
    assert.deepEqual([out[0], out[4], out[8]], [0, 127, 255]);
  });

  test("the whole pixel table writes what linear gives, over the full int16 range", () => {
    const values = Int16Array.from({ length: 65536 }, (_, i) => i - 32768);
    const full = { dtype: "int16", values, min: -32768, max: 32767, photometric: "MONOCHROME2" };
    const out = applyWindow(full, 1000, 3000, false, new Uint8ClampedArray(4 * values.length));
    const wrong = values.findIndex((v, i) => out[4 * i] !== linear(v, 1000, 3000) || out[4 * i + 3] !== 255);
    assert.equal(wrong, -1);
  });
});

describe("dragWindow", () => {
  test("right widens and up lowers the level, in steps of 1/800 of the range", () => {
    // range 0..4000: 5 units per screen pixel
    const next = dragWindow({ center: 40, width: 400 }, 10, -20, { min: 0, max: 4000 });
    assert.deepEqual(next, { center: -60, width: 450 });
  });

  test("a narrow range still moves half a unit per pixel", () => {
    const next = dragWindow({ center: 10, width: 20 }, 4, 4, { min: 0, max: 100 });
    assert.deepEqual(next, { center: 12, width: 22 });
  });

  test("the width never drops below 1", () => {
    const next = dragWindow({ center: 10, width: 20 }, -1000, 0, { min: 0, max: 100 });
    assert.equal(next.width, 1);
  });
});
