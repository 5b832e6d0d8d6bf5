// viewer/static/hanging.js: which prior opens beside the current study.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { comparablePrior } from "../../viewer/static/hanging.js";

const PRIORS = [
  { consultation_id: 9, modality: "CR", body_part: "CHEST" },
  { consultation_id: 8, modality: "CT", body_part: "ABDOMEN" },
  { consultation_id: 7, modality: "CT", body_part: "HEAD" },
  { consultation_id: 6, modality: "CT", body_part: "" },
];

describe("comparablePrior", () => {
  test("the newest of the same modality and body part", () => {
    assert.equal(comparablePrior(PRIORS, { modality: "CT", body_part: "HEAD" }).consultation_id, 7);
  });

  test("a body part nobody recorded does not exclude", () => {
    assert.equal(comparablePrior(PRIORS, { modality: "CT", body_part: "" }).consultation_id, 8);
    assert.equal(comparablePrior(PRIORS, { modality: "CT", body_part: "KNEE" }).consultation_id, 6);
  });

  test("case and spaces do not matter", () => {
    assert.equal(comparablePrior(PRIORS, { modality: "cr ", body_part: "chest" }).consultation_id, 9);
  });

  test("no prior of the modality: none hangs", () => {
    assert.equal(comparablePrior(PRIORS, { modality: "MR", body_part: "HEAD" }), null);
    assert.equal(comparablePrior([], { modality: "CT" }), null);
  });
});
