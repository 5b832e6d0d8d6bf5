// teleread viewer — the scale bar: a length in millimetres that is a round number (1, 2 or 5
// times a power of ten) and fits the space given, at the current zoom. Pure, tested by node.

const STEPS = [1, 2, 5];

/**
 * The longest round length whose bar is at most `maxPixels` screen pixels long.
 *
 * @param {number} mmPerPixel millimetres per screen pixel along the bar (pixel spacing / zoom)
 * @param {number} maxPixels room for the bar, in screen pixels
 * @returns {{mm: number, pixels: number} | null} null when there is no spacing or no room
 */
export function scaleBar(mmPerPixel, maxPixels) {
  if (!(mmPerPixel > 0) || !(maxPixels >= 1) || !Number.isFinite(mmPerPixel)) return null;
  const room = mmPerPixel * maxPixels;
  let best = null;
  for (let power = Math.floor(Math.log10(room)) - 1; power <= Math.ceil(Math.log10(room)); power += 1) {
    for (const step of STEPS) {
      const mm = Number((step * 10 ** power).toPrecision(12));
      if (mm <= room * (1 + 1e-9) && (!best || mm > best)) best = mm;
    }
  }
  return best ? { mm: best, pixels: best / mmPerPixel } : null;
}

/**
 * Millimetres per screen pixel along the screen's horizontal axis. (0028,0030) *Pixel Spacing* is
 * [between rows, between columns]; a quarter turn puts the rows across the screen.
 */
export function horizontalSpacing(pixelSpacing, rotation, scale) {
  if (!Array.isArray(pixelSpacing) || pixelSpacing.length !== 2 || !(scale > 0)) return 0;
  const [rowSpacing, columnSpacing] = pixelSpacing;
  return (rotation % 2 ? rowSpacing : columnSpacing) / scale;
}

/** A bar length as it reads: centimetres from 10 mm up, millimetres below. */
export function barLength(mm) {
  return mm >= 10 ? { value: String(mm / 10), unit: "cm" } : { value: String(mm), unit: "mm" };
}
