// teleread viewer — measurements in image coordinates (pure functions, no DOM).
// Distances use (0028,0030) Pixel Spacing [row spacing, column spacing] in mm, or
// (0018,1164) Imager Pixel Spacing (labelled "at detector"); without either, pixels.

/** Distance between two image points in mm (spacing [row, col]) or pixels (spacing null). */
export function distance(a, b, spacing) {
  const [sy, sx] = spacing || [1, 1];
  return Math.hypot((b.x - a.x) * sx, (b.y - a.y) * sy);
}

/** Angle ABC at vertex b in degrees (0..180), in physical space when spacing is known. */
export function angle(a, b, c, spacing) {
  const [sy, sx] = spacing || [1, 1];
  const ux = (a.x - b.x) * sx;
  const uy = (a.y - b.y) * sy;
  const vx = (c.x - b.x) * sx;
  const vy = (c.y - b.y) * sy;
  const norm = Math.hypot(ux, uy) * Math.hypot(vx, vy);
  if (norm === 0) return 0;
  const cos = Math.min(1, Math.max(-1, (ux * vx + uy * vy) / norm));
  return (Math.acos(cos) * 180) / Math.PI;
}

/**
 * Mean and (sample) standard deviation of the modality values inside the ellipse inscribed in
 * the box from a to b (pixel centres at integer + 0.5), and its area in mm² (or pixels).
 */
export function ellipseStats(frame, a, b, spacing) {
  const cx = (a.x + b.x) / 2;
  const cy = (a.y + b.y) / 2;
  const rx = Math.abs(b.x - a.x) / 2;
  const ry = Math.abs(b.y - a.y) / 2;
  if (rx < 0.5 || ry < 0.5) return null;
  const x0 = Math.max(0, Math.floor(cx - rx));
  const x1 = Math.min(frame.columns - 1, Math.ceil(cx + rx));
  const y0 = Math.max(0, Math.floor(cy - ry));
  const y1 = Math.min(frame.rows - 1, Math.ceil(cy + ry));
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  for (let y = y0; y <= y1; y += 1) {
    const dy = (y + 0.5 - cy) / ry;
    for (let x = x0; x <= x1; x += 1) {
      const dx = (x + 0.5 - cx) / rx;
      if (dx * dx + dy * dy > 1) continue;
      const v = frame.values[y * frame.columns + x];
      n += 1;
      sum += v;
      sumSq += v * v;
    }
  }
  if (n === 0) return null;
  const mean = sum / n;
  const variance = n > 1 ? Math.max(0, (sumSq - n * mean * mean) / (n - 1)) : 0;
  const [sy, sx] = spacing || [1, 1];
  return { mean, sd: Math.sqrt(variance), n, area: Math.PI * rx * ry * sx * sy };
}
