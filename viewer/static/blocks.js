// teleread viewer — a frame's modality values reduced to step x step block means (pure, no DOM).
// A frame shown at under half its size is windowed on this reduced image instead of on every
// stored value: the values are filtered first and the VOI (window) applied after, as expert
// viewers do (Cornerstone3D interpolates stored values, then applies the VOI LUT). Taking one
// value per block instead (nearest-neighbour decimation) aliases fine lines on a fitted chest
// film: a pneumothorax edge, a fracture line, the moiré of an anti-scatter grid.

/** Image pixels per reduced pixel for a frame shown at `scale`: 1 at half size and above (every
 * value windowed), else floor(1 / scale), the largest block that still leaves at least one
 * reduced pixel per device pixel. */
export function blockStep(scale) {
  return scale < 0.5 ? Math.floor(1 / scale) : 1;
}

/**
 * The frame reduced to the mean of each step x step block of its values, as a frame of
 * ceil(columns / step) x ceil(rows / step) values of the same dtype (applyWindow windows it as
 * any frame). Blocks on the right and bottom edges, where the size is not a multiple of step,
 * average only the values they cover. int16 means are rounded to the nearest integer (halves
 * toward +infinity), so the reduced image stays in [min, max] and windows through the same
 * lookup table; float32 means are kept as floats. One pass over the values, row by row, summing
 * into a row of block sums (a 3000x3000 CR at step 3: about 10 ms).
 */
export function blockMeans(frame, step) {
  const { columns, rows, values } = frame;
  const outColumns = Math.ceil(columns / step);
  const outRows = Math.ceil(rows / step);
  const integer = frame.dtype === "int16";
  const out = integer ? new Int16Array(outColumns * outRows) : new Float32Array(outColumns * outRows);
  const sums = new Float64Array(outColumns);
  const lastWidth = columns - (outColumns - 1) * step;
  for (let by = 0, o = 0; by < outRows; by += 1) {
    const top = by * step;
    const bottom = Math.min(top + step, rows);
    sums.fill(0);
    for (let y = top; y < bottom; y += 1) {
      const start = y * columns;
      for (let bx = 0, x = start; bx < outColumns; bx += 1) {
        const end = Math.min(x + step, start + columns);
        let sum = 0;
        for (; x < end; x += 1) sum += values[x];
        sums[bx] += sum;
      }
    }
    const height = bottom - top;
    for (let bx = 0; bx < outColumns; bx += 1, o += 1) {
      const mean = sums[bx] / ((bx === outColumns - 1 ? lastWidth : step) * height);
      out[o] = integer ? Math.round(mean) : mean;
    }
  }
  return { ...frame, columns: outColumns, rows: outRows, values: out };
}
