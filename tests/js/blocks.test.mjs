// viewer/static/blocks.js: a frame's values reduced to step x step block means (averaged before
// the window, so fine lines do not alias), against means worked out by hand.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { blockMeans, blockStep } from "../../viewer/static/blocks.js";
import { applyWindow, linear } from "../../viewer/static/windowing.js";

/** 5 x 4 values, value = 10 * row + column (a size that is not a multiple of 2 or 3). */
function grid(dtype = "int16") {
  const Typed = dtype === "int16" ? Int16Array : Float32Array;
  const values = Typed.from({ length: 20 }, (_, i) => 10 * Math.floor(i / 5) + (i % 5));
  return { kind: "values", dtype, columns: 5, rows: 4, values, min: 0, max: 34, photometric: "MONOCHROME2" };
}

describe("blockStep", () => {
  test("at half size and above every value is windowed", () => {
    assert.equal(blockStep(1), 1);
    assert.equal(blockStep(0.5), 1);
    assert.equal(blockStep(4), 1);
  });

  test("below half size the block is floor(1 / scale)", () => {
    assert.equal(blockStep(0.49), 2);
    assert.equal(blockStep(0.27), 3);
    assert.equal(blockStep(0.1), 10);
  });
});

describe("blockMeans", () => {
  test("each whole block is the mean of its values", () => {
    const frame = { ...grid(), columns: 4, rows: 2, values: Int16Array.from([0, 2, 4, 8, 6, 8, 10, 20]) };
    const reduced = blockMeans(frame, 2);
    assert.equal(reduced.columns, 2);
    assert.equal(reduced.rows, 1);
    // (0 + 2 + 6 + 8) / 4 = 4; (4 + 8 + 10 + 20) / 4 = 10.5 -> 11
    assert.deepEqual(Array.from(reduced.values), [4, 11]);
  });

  test("edge blocks, where the size is not a multiple of step, average only what they cover", () => {
    const reduced = blockMeans(grid(), 2);
    assert.deepEqual([reduced.columns, reduced.rows], [3, 2]);
    // rows 0-1: cols 0-1 -> (0+1+10+11)/4 = 5.5 -> 6; cols 2-3 -> 7.5 -> 8; col 4 -> (4+14)/2 = 9
    // rows 2-3: 25.5 -> 26, 27.5 -> 28, (24+34)/2 = 29
    assert.deepEqual(Array.from(reduced.values), [6, 8, 9, 26, 28, 29]);
  });

  test("a block larger than the remaining rows and columns at step 3", () => {
    const reduced = blockMeans(grid(), 3);
    assert.deepEqual([reduced.columns, reduced.rows], [2, 2]);
    // rows 0-2 x cols 0-2: mean 11; cols 3-4: 13.5 -> 14; row 3 x cols 0-2: 31; cols 3-4: 33.5 -> 34
    assert.deepEqual(Array.from(reduced.values), [11, 14, 31, 34]);
  });

  test("int16 means round to the nearest integer and stay in the frame's range", () => {
    const frame = { ...grid(), columns: 2, rows: 1, values: Int16Array.from([-32768, -32767]), min: -32768, max: -32767 };
    const reduced = blockMeans(frame, 2);
    assert.ok(reduced.values instanceof Int16Array);
    assert.deepEqual(Array.from(reduced.values), [-32767]); // -32767.5 rounds up
    assert.deepEqual([reduced.min, reduced.max], [-32768, -32767]);
  });

  test("float data keeps fractional means", () => {
    const reduced = blockMeans(grid("float32"), 2);
    assert.ok(reduced.values instanceof Float32Array);
    assert.deepEqual(Array.from(reduced.values), [5.5, 7.5, 9, 25.5, 27.5, 29]);
  });

  test("the reduced frame keeps the frame's dtype, photometric and range, and leaves it as it was", () => {
    const frame = { ...grid(), photometric: "MONOCHROME1" };
    const before = Array.from(frame.values);
    const reduced = blockMeans(frame, 2);
    assert.deepEqual(
      [reduced.kind, reduced.dtype, reduced.photometric, reduced.min, reduced.max],
      ["values", "int16", "MONOCHROME1", 0, 34],
    );
    assert.deepEqual(Array.from(frame.values), before);
  });

  test("a uniform region stays exactly its value (no blur of flat areas)", () => {
    const frame = { ...grid(), columns: 7, rows: 5, values: new Int16Array(35).fill(-1000), min: -1000, max: -1000 };
    assert.ok(Array.from(blockMeans(frame, 3).values).every((v) => v === -1000));
  });
});

describe("windowing the block means", () => {
  test("int16: every reduced pixel is linear() of its block's mean", () => {
    const values = Int16Array.from({ length: 64 * 48 }, (_, i) => ((i * 7919) % 4001) - 2000);
    const frame = { kind: "values", dtype: "int16", columns: 64, rows: 48, values, min: -2000, max: 2000, photometric: "MONOCHROME2" };
    const reduced = blockMeans(frame, 3);
    const out = applyWindow(reduced, 40, 400, false, new Uint8ClampedArray(4 * reduced.values.length));
    const wrong = Array.from(reduced.values).findIndex((v, i) => out[4 * i] !== linear(v, 40, 400) || out[4 * i + 3] !== 255);
    assert.equal(wrong, -1);
  });

  test("float32 and MONOCHROME1: the same formula, inverted inside it", () => {
    const floats = { ...grid("float32"), photometric: "MONOCHROME1" };
    const reduced = blockMeans(floats, 2);
    const out = applyWindow(reduced, 16, 30, false, new Uint8ClampedArray(4 * 6));
    const expected = [5.5, 7.5, 9, 25.5, 27.5, 29].map((v) => linear(v, 16, 30, true));
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => out[4 * i]), expected);
  });
});
