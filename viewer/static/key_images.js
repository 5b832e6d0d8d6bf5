// teleread viewer — a key image as the reader sees it (issue 19, 图文报告): the frame in view and
// the viewport's state, in the form POST /api/consultations/{id}/report/key-images stores and
// viewer/key_image.py redraws (pure: reads a Viewport's fields, no DOM writes).

/** At most this many key images are printed on the report (the rest are kept, not printed). */
export const PRINTED = 4;

/** The request body for the image in view of `viewport`, with `caption`; null when none is shown. */
export function keyImageBody(viewport, caption) {
  const ref = viewport.frameRef;
  if (!viewport.shown || !ref) return null;
  const values = viewport.frame.kind === "values";
  const measurements = (viewport.measurements.get(ref.values) || []).map((m) => ({
    type: m.type,
    points: m.points.map((p) => ({ x: p.x, y: p.y })),
    text: m.text || "",
  }));
  return {
    series_instance_uid: viewport.series.uid,
    sop_instance_uid: ref.instance.uid,
    frame: ref.n,
    caption: (caption || "").trim(),
    view: {
      viewport: [viewport.canvas.width, viewport.canvas.height],
      window: values && viewport.window ? { center: viewport.window.center, width: viewport.window.width } : null,
      invert: Boolean(viewport.invert),
      rotation: viewport.rotation,
      flip_h: Boolean(viewport.flipH),
      flip_v: Boolean(viewport.flipV),
      scale: viewport.zoom === "fit" ? null : viewport.scale(),
      pan_x: viewport.panX,
      pan_y: viewport.panY,
      measurements,
      overlays: Boolean(values && viewport.overlaysShown && ref.instance.overlays),
    },
  };
}
