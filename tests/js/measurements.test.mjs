// viewer/static/measure.js: lengths, angles and ellipse statistics in image coordinates, in mm
// from (0028,0030) Pixel Spacing = [row spacing, column spacing] or in pixels without it.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { angle, distance, ellipseStats } from "../../viewer/static/measure.js";

const close = (actual, expected, digits = 9) =>
  assert.ok(Math.abs(actual - expected) < 10 ** -digits, `${actual} is not ${expected}`);

describe("distance", () => {
  test("without spacing it is in pixels", () => {
    assert.equal(distance({ x: 0, y: 0 }, { x: 3, y: 4 }, null), 5);
  });

  test("column spacing (the second value) scales x, row spacing (the first) scales y", () => {
    const spacing = [0.5, 0.75]; // rows 0.5 mm apart, columns 0.75 mm apart
    assert.equal(distance({ x: 0, y: 0 }, { x: 4, y: 0 }, spacing), 3);
    assert.equal(distance({ x: 0, y: 0 }, { x: 0, y: 4 }, spacing), 2);
  });

  test("an oblique line combines both", () => {
    // 3 columns x 1.5 mm = 4.5 mm across, 4 rows x 2 mm = 8 mm down
    close(distance({ x: 1, y: 1 }, { x: 4, y: 5 }, [2, 1.5]), Math.sqrt(4.5 ** 2 + 8 ** 2));
  });
});

describe("angle", () => {
  test("a right angle is 90 degrees", () => {
    close(angle({ x: 1, y: 0 }, { x: 0, y: 0 }, { x: 0, y: 1 }, null), 90);
  });

  test("a straight line is 180 degrees", () => {
    close(angle({ x: -2, y: 3 }, { x: 0, y: 3 }, { x: 5, y: 3 }, [0.7, 0.7]), 180);
  });

  test("is measured in physical space when rows and columns are spaced differently", () => {
    // 45 degrees in pixels; with rows 2 mm apart the arm (1, 1) becomes (1 mm, 2 mm): atan(2)
    close(angle({ x: 1, y: 1 }, { x: 0, y: 0 }, { x: 1, y: 0 }, null), 45);
    close(angle({ x: 1, y: 1 }, { x: 0, y: 0 }, { x: 1, y: 0 }, [2, 1]), (Math.atan(2) * 180) / Math.PI);
  });

  test("an arm of zero length gives 0", () => {
    assert.equal(angle({ x: 0, y: 0 }, { x: 0, y: 0 }, { x: 1, y: 0 }, null), 0);
  });
});

describe("ellipseStats", () => {
  // A 4 x 4 frame whose value is its index (0..15); the circle inscribed in the whole frame
  // holds every pixel centre but the four corners (0, 3, 12, 15).
  const frame = { rows: 4, columns: 4, values: Int16Array.from({ length: 16 }, (_, i) => i) };

  test("mean, sample standard deviation and count of the pixels inside", () => {
    const stats = ellipseStats(frame, { x: 0, y: 0 }, { x: 4, y: 4 }, null);
    assert.equal(stats.n, 12);
    assert.equal(stats.mean, 7.5); // (120 - 30) / 12
    close(stats.sd, Math.sqrt(17)); // (862 - 12 * 7.5^2) / 11 = 17
  });

  test("area in pixels without spacing, in mm² with it", () => {
    close(ellipseStats(frame, { x: 0, y: 0 }, { x: 4, y: 4 }, null).area, 4 * Math.PI);
    close(ellipseStats(frame, { x: 0, y: 0 }, { x: 4, y: 4 }, [0.5, 0.5]).area, Math.PI);
    close(ellipseStats(frame, { x: 0, y: 0 }, { x: 4, y: 4 }, [2, 0.5]).area, 4 * Math.PI);
  });

  test("the box may be drawn in any direction", () => {
    const forward = ellipseStats(frame, { x: 0, y: 0 }, { x: 4, y: 4 }, null);
    assert.deepEqual(ellipseStats(frame, { x: 4, y: 4 }, { x: 0, y: 0 }, null), forward);
  });

  test("a box thinner than one pixel measures nothing", () => {
    assert.equal(ellipseStats(frame, { x: 1, y: 1 }, { x: 1.5, y: 3 }, null), null);
  });

  test("one pixel has no spread", () => {
    const stats = ellipseStats(frame, { x: 1, y: 1 }, { x: 2, y: 2 }, null);
    assert.deepEqual([stats.n, stats.mean, stats.sd], [1, 5, 0]);
  });
});
