// teleread viewer — greyscale windowing in the browser (pure functions, no DOM).
// Implements the LINEAR VOI LUT function of DICOM PS3.3 C.11.2.1.2.1 on modality values
// (Rescale Slope/Intercept already applied by the server), so window/level changes never
// touch the network.

/** Presets (centre/width) reachable with number keys 1..8, in this order. */
export const PRESETS = Object.freeze({
  brain: { center: 40, width: 80 },
  subdural: { center: 75, width: 215 },
  stroke: { center: 40, width: 40 },
  lung: { center: -600, width: 1500 },
  mediastinum: { center: 50, width: 350 },
  bone: { center: 400, width: 1800 },
  abdomen: { center: 40, width: 400 },
  liver: { center: 60, width: 160 },
});
export const PRESET_ORDER = Object.freeze(Object.keys(PRESETS));

/**
 * Display value 0..255 of modality value x for the LINEAR function (C.11.2.1.2.1):
 *   x <= c - 0.5 - (w-1)/2  -> low;  x > c - 0.5 + (w-1)/2 -> high;
 *   else offset + x * (span / (w-1)), offset = high - ((c - 0.5) / (w-1) + 0.5) * span,
 * truncated toward zero. This is viewer/window.py's apply_window term for term, in the same
 * float64 arithmetic and order, which is how dcmtk evaluates it: the browser's pixels equal the
 * server's render (and dcm2pnm's) bit for bit. Rounding instead made about half of the pixels one
 * level brighter. `inverse` (MONOCHROME1 or the reader's invert) swaps low and high inside the
 * formula, as the server does, not 255 - y afterwards (that differs by one after truncation).
 * Width below 1 is clamped to 1 (the standard requires w >= 1).
 */
export function linear(x, center, width, inverse = false) {
  const w = Math.max(1, width);
  const low = inverse ? 255 : 0;
  const high = inverse ? 0 : 255;
  const span = high - low;
  const w1 = w - 1;
  if (x <= center - 0.5 - w1 / 2) return low;
  if (x > center - 0.5 + w1 / 2) return high;
  if (w1 === 0) return high;
  const offset = high - ((center - 0.5) / w1 + 0.5) * span;
  const y = offset + x * (span / w1);
  return y <= 0 ? 0 : y >= 255 ? 255 : Math.trunc(y);
}

/** Smallest and largest value of a typed array (one pass). */
export function valueRange(values) {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i += 1) {
    const v = values[i];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return min <= max ? { min, max } : { min: 0, max: 0 };
}

/**
 * Default window of a frame: the first DICOM window, else the full value range as the server
 * and dcmtk's min-max window (+Wm) compute it (viewer/frames.py full_range_window): lowest value
 * to 0, highest to 255, so the first picture equals the server's default render.
 */
export function defaultWindow(windows, range) {
  if (windows && windows.length && windows[0].width > 0) {
    return { center: windows[0].center, width: windows[0].width };
  }
  return { center: (range.min + range.max + 1) / 2, width: Math.max(1, range.max - range.min + 1) };
}

/** Whether this machine stores a Uint32 with its lowest byte first (every browser we know). */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** One opaque grey RGBA pixel of level y, as a Uint32 over ImageData bytes (R, G, B, A). */
function greyPixel(y) {
  return LITTLE_ENDIAN ? (0xff000000 | (y << 16) | (y << 8) | y) >>> 0 : ((y * 0x01010100) | 0xff) >>> 0;
}

/**
 * Write windowed greyscale pixels into RGBA `out` (Uint8ClampedArray of length 4*n).
 * Integer data goes through a lookup table over [min, max] (at most 65536 entries for int16)
 * that holds whole RGBA pixels, written through a Uint32 view of `out`: one store per pixel
 * instead of four, which is most of a 3000x3000 CR's repaint (bench/viewer_speed.py). The
 * levels are `linear`'s, so the pixels are the same bit for bit. MONOCHROME1 and "invert" both
 * flip the output. A frame shown at under half its size is windowed as its block means
 * (blocks.js), a smaller frame of the same form.
 */
export function applyWindow(frame, center, width, invert, out) {
  const flip = Boolean(invert) !== (frame.photometric === "MONOCHROME1");
  const values = frame.values;
  const n = values.length;
  const words = out.byteOffset % 4 === 0 ? new Uint32Array(out.buffer, out.byteOffset, n) : null;
  if (frame.dtype === "int16" && words) {
    const offset = frame.min;
    const lut = new Uint32Array(frame.max - frame.min + 1);
    for (let i = 0; i < lut.length; i += 1) {
      lut[i] = greyPixel(linear(i + offset, center, width, flip));
    }
    for (let i = 0; i < n; i += 1) words[i] = lut[values[i] - offset];
    return out;
  }
  for (let i = 0, j = 0; i < n; i += 1, j += 4) {
    const y = linear(values[i], center, width, flip);
    out[j] = y;
    out[j + 1] = y;
    out[j + 2] = y;
    out[j + 3] = 255;
  }
  return out;
}

/** New window after a mouse drag of (dx, dy) screen pixels: right widens, down raises the level. */
export function dragWindow(start, dx, dy, range) {
  const step = Math.max(0.5, (range.max - range.min) / 800);
  return {
    center: Math.round(start.center + dy * step),
    width: Math.max(1, Math.round(start.width + dx * step)),
  };
}
