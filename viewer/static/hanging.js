// teleread viewer — the hanging: which prior opens beside the current study. Pure, tested by node.

function same(a, b) {
  return String(a || "").trim().toUpperCase() === String(b || "").trim().toUpperCase();
}

/**
 * The most recent comparable prior: the same modality, and the same body part when both say
 * which. `priors` come newest first (the manifest's order, already matched to the patient by
 * ID and name or birth date on the server); null when none is comparable.
 */
export function comparablePrior(priors, current) {
  return (
    priors.find(
      (p) =>
        same(p.modality, current.modality) &&
        (!p.body_part || !current.body_part || same(p.body_part, current.body_part)),
    ) || null
  );
}

/**
 * A prior's study in a few words for the Compare menu: its description, with the modality in
 * front only when the description does not already name it ("CT HEAD", never "CT CT HEAD").
 */
export function studyTitle(modality, description) {
  const m = String(modality || "").trim();
  const d = String(description || "").trim();
  if (!m || !d) return m || d;
  const words = d.toUpperCase().split(/[^0-9A-Z]+/);
  return words.includes(m.toUpperCase()) ? d : `${m} ${d}`;
}
