// viewer/static/hanging.js studyTitle: the Compare menu names a prior's study once.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { studyTitle } from "../../viewer/static/hanging.js";

describe("studyTitle", () => {
  test("a description naming the modality is not prefixed again", () => {
    assert.equal(studyTitle("CT", "CT HEAD"), "CT HEAD");
    assert.equal(studyTitle("ct", "Head ct w/o contrast"), "Head ct w/o contrast");
    assert.equal(studyTitle("CT", "头颅CT平扫"), "头颅CT平扫");
  });

  test("a description without the modality gets it in front", () => {
    assert.equal(studyTitle("CR", "Chest PA"), "CR Chest PA");
    assert.equal(studyTitle("CT", "CTA neck"), "CT CTA neck");
  });

  test("either alone stands alone", () => {
    assert.equal(studyTitle("MR", ""), "MR");
    assert.equal(studyTitle("", "Knee"), "Knee");
  });
});
