// viewer/static/key_images.js: what the viewer sends when the reader marks a key image.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { keyImageBody } from "../../viewer/static/key_images.js";

function viewport(changes = {}) {
  const ref = { values: "/v/2", n: 2, instance: { uid: "1.2.3.4" } };
  return {
    shown: true,
    frameRef: ref,
    frame: { kind: "values" },
    series: { uid: "1.2.3" },
    canvas: { width: 800, height: 600 },
    window: { center: 40, width: 80 },
    invert: false,
    rotation: 1,
    flipH: true,
    flipV: false,
    zoom: "fit",
    panX: 12,
    panY: -4,
    scale: () => 2.5,
    measurements: new Map([[ref.values, [{ type: "length", points: [{ x: 1, y: 2 }, { x: 3, y: 4 }], value: 2.8, text: "Length 2.8 mm" }]]]),
    ...changes,
  };
}

describe("keyImageBody", () => {
  test("the frame in view, its view as seen and its measurements", () => {
    const body = keyImageBody(viewport(), "  lesion ");
    assert.deepEqual(body, {
      series_instance_uid: "1.2.3",
      sop_instance_uid: "1.2.3.4",
      frame: 2,
      caption: "lesion",
      view: {
        viewport: [800, 600],
        window: { center: 40, width: 80 },
        invert: false,
        rotation: 1,
        flip_h: true,
        flip_v: false,
        scale: null,
        pan_x: 12,
        pan_y: -4,
        measurements: [{ type: "length", points: [{ x: 1, y: 2 }, { x: 3, y: 4 }], text: "Length 2.8 mm" }],
        overlays: false,
      },
    });
  });

  test("a zoomed view sends its scale; a colour image no window", () => {
    const body = keyImageBody(viewport({ zoom: 2.5, frame: { kind: "rendered" } }), "");
    assert.equal(body.view.scale, 2.5);
    assert.equal(body.view.window, null);
  });

  test("nothing while the frame is still loading", () => {
    assert.equal(keyImageBody(viewport({ shown: false }), "x"), null);
  });
});
