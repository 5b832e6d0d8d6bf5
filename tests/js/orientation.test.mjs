// viewer/static/orientation.js: the letters at each edge, worked out by hand from the patient
// coordinate system of PS3.3 C.7.6.2.1.1 (+x Left, +y Posterior, +z Head).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { directionLetters, edgeLabels, imageDirections, opposite } from "../../viewer/static/orientation.js";

const AXIAL = [1, 0, 0, 0, 1, 0];
const CORONAL = [1, 0, 0, 0, 0, -1];
const SAGITTAL = [0, 1, 0, 0, 0, -1];

describe("directionLetters", () => {
  test("each positive axis names the patient's left, posterior and head", () => {
    assert.equal(directionLetters([1, 0, 0]), "L");
    assert.equal(directionLetters([0, 1, 0]), "P");
    assert.equal(directionLetters([0, 0, 1]), "H");
  });

  test("each negative axis names the patient's right, anterior and feet", () => {
    assert.equal(directionLetters([-1, 0, 0]), "R");
    assert.equal(directionLetters([0, -1, 0]), "A");
    assert.equal(directionLetters([0, 0, -1]), "F");
  });

  test("an oblique direction combines letters, the strongest component first", () => {
    const c = Math.SQRT1_2;
    assert.equal(directionLetters([-0.8, -0.6, 0]), "RA");
    assert.equal(directionLetters([-0.6, -0.8, 0]), "AR");
    assert.equal(directionLetters([c, 0, -c]).length, 2);
  });

  test("a tilt of a degree or two does not add a letter", () => {
    assert.equal(directionLetters([0.9995, 0, 0.03]), "L");
  });
});

describe("opposite", () => {
  test("every letter turns into its opposite, in order", () => {
    assert.equal(opposite("RA"), "LP");
    assert.equal(opposite("HF"), "FH");
  });
});

describe("imageDirections", () => {
  test("an axial slice has the patient's left on the right and posterior at the bottom", () => {
    assert.deepEqual(imageDirections(AXIAL, null), { right: "L", bottom: "P" });
  });

  test("a coronal slice has the feet at the bottom; a sagittal one posterior on the right", () => {
    assert.deepEqual(imageDirections(CORONAL, null), { right: "L", bottom: "F" });
    assert.deepEqual(imageDirections(SAGITTAL, null), { right: "P", bottom: "F" });
  });

  test("without Image Orientation (Patient), Patient Orientation decides", () => {
    assert.deepEqual(imageDirections(null, ["L", "F"]), { right: "L", bottom: "F" });
    assert.deepEqual(imageDirections([], ["a", "fr"]), { right: "A", bottom: "FR" });
  });

  test("nothing usable gives no markers", () => {
    assert.equal(imageDirections(null, null), null);
    assert.equal(imageDirections([1, 0, 0], ["X", ""]), null);
  });
});

describe("edgeLabels", () => {
  const axial = { right: "L", bottom: "P" };

  test("unturned: R on the left, L on the right, A on top, P at the bottom", () => {
    assert.deepEqual(edgeLabels(axial), { right: "L", left: "R", bottom: "P", top: "A" });
  });

  test("a quarter turn clockwise moves the right edge's letter to the bottom", () => {
    assert.deepEqual(edgeLabels(axial, 1), { bottom: "L", top: "R", left: "P", right: "A" });
  });

  test("a half turn swaps both pairs", () => {
    assert.deepEqual(edgeLabels(axial, 2), { left: "L", right: "R", top: "P", bottom: "A" });
  });

  test("flips swap the letters of their own axis only", () => {
    assert.deepEqual(edgeLabels(axial, 0, true), { left: "L", right: "R", bottom: "P", top: "A" });
    assert.deepEqual(edgeLabels(axial, 0, false, true), { right: "L", left: "R", top: "P", bottom: "A" });
  });

  test("no directions, no labels", () => {
    assert.equal(edgeLabels(null, 1), null);
  });
});
