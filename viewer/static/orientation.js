// teleread viewer — orientation markers: which patient direction lies at each edge of the image
// on screen. Pure functions, no DOM: tested by node (tests/js/orientation.test.mjs).
//
// Patient directions follow the DICOM patient coordinate system (PS3.3 C.7.6.2.1.1): +x towards
// the patient's Left, +y Posterior, +z Head. (0020,0037) *Image Orientation (Patient)* gives the
// direction cosines of the first row (towards increasing column) and the first column (towards
// increasing row); (0020,0020) *Patient Orientation* gives the same two directions as letters
// (PS3.3 C.7.6.1.1.1) for images without that geometry, such as radiographs.

/** A direction's letter for a positive and a negative component, per axis x, y, z. */
const AXES = [
  ["L", "R"],
  ["P", "A"],
  ["H", "F"],
];

const OPPOSITE = { L: "R", R: "L", A: "P", P: "A", H: "F", F: "H" };

/**
 * Components smaller than this are left out of an oblique label: a plane tilted a few degrees
 * off axial still reads "L", not "LPH"; past about 6° (cos 84° ≈ 0.1) the second letter shows.
 */
export const OBLIQUE_COMPONENT = 0.1;

/** The letters of a direction vector, strongest component first ("L"; "LA" when oblique). */
export function directionLetters(vector) {
  return vector
    .map((c, axis) => ({ c, axis }))
    .filter(({ c }) => Math.abs(c) >= OBLIQUE_COMPONENT)
    .sort((a, b) => Math.abs(b.c) - Math.abs(a.c))
    .map(({ c, axis }) => AXES[axis][c > 0 ? 0 : 1])
    .join("");
}

/** The letters of the opposite direction ("LA" -> "RP"). */
export function opposite(letters) {
  return [...letters].map((l) => OPPOSITE[l] || "").join("");
}

/**
 * The directions of the image's right and bottom edges (the row and column directions), from
 * Image Orientation (Patient) if it has six numbers, else from Patient Orientation; null when
 * neither says.
 */
export function imageDirections(orientation, patientOrientation) {
  if (Array.isArray(orientation) && orientation.length === 6 && orientation.every(Number.isFinite)) {
    const right = directionLetters(orientation.slice(0, 3));
    const bottom = directionLetters(orientation.slice(3, 6));
    if (right && bottom) return { right, bottom };
  }
  if (Array.isArray(patientOrientation) && patientOrientation.length === 2) {
    const [right, bottom] = patientOrientation.map((v) => String(v || "").toUpperCase());
    if (/^[LRAPHF]+$/.test(right) && /^[LRAPHF]+$/.test(bottom)) return { right, bottom };
  }
  return null;
}

/**
 * The letters at each screen edge once the image is turned `rotation` quarter turns clockwise
 * and then flipped in screen space (as the viewport draws it: flip after rotate).
 */
export function edgeLabels(directions, rotation = 0, flipH = false, flipV = false) {
  if (!directions) return null;
  const image = [
    { x: 1, y: 0, text: directions.right },
    { x: -1, y: 0, text: opposite(directions.right) },
    { x: 0, y: 1, text: directions.bottom },
    { x: 0, y: -1, text: opposite(directions.bottom) },
  ];
  const labels = {};
  for (let { x, y, text } of image) {
    for (let turn = 0; turn < (((rotation % 4) + 4) % 4); turn += 1) [x, y] = [-y, x];
    if (flipH) x = -x;
    if (flipV) y = -y;
    const edge = x > 0 ? "right" : x < 0 ? "left" : y > 0 ? "bottom" : "top";
    labels[edge] = text;
  }
  return labels;
}
