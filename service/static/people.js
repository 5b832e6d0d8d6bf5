// teleread — people's names as DICOM stores them, written the way people read them. Pure: no
// DOM, so node's test runner checks it (tests/js/people.test.mjs).

const IDEOGRAPH = /[\u3400-\u9fff]/;

/**
 * A DICOM person name (PS3.5 6.2, value representation PN) as people write it. Components are
 * separated by "^" (family^given^middle^prefix^suffix) and the component groups by "="
 * (alphabetic=ideographic=phonetic). Within a group the non-empty components are joined by a
 * space, except in a group with Chinese ideographs, written without one as on the signed PDF;
 * every non-empty group is kept, joined by " = ":
 * "WANG^FANG" → "WANG FANG", "王^芳=WANG^FANG" → "王芳 = WANG FANG".
 */
export function personName(name) {
  return (name || "")
    .split("=")
    .map((group) => {
      const parts = group
        .split("^")
        .map((part) => part.trim())
        .filter(Boolean);
      return parts.join(IDEOGRAPH.test(group) ? "" : " ");
    })
    .filter(Boolean)
    .join(" = ");
}

/** The first component group only (the viewer's corner has room for one): "王^芳=WANG^FANG" → "王芳". */
export function firstPersonName(name) {
  return personName((name || "").split("=")[0]);
}
