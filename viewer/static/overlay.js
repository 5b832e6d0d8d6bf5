// teleread viewer — the text in the four corners of a viewport (patient, study, series, slice,
// W/L, zoom) and the measurement label. All strings go through the page's t().

import { label, t } from "../common.js";
import { firstPersonName } from "../people.js";
import { barLength } from "./scalebar.js";

/** DICOM DA "20261101" -> "2026-11-01" (unchanged when not 8 digits). */
export function dicomDate(da) {
  return /^\d{8}$/.test(da || "") ? `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6)}` : da || "";
}

function dicomTime(tm) {
  return /^\d{4}/.test(tm || "") ? `${tm.slice(0, 2)}:${tm.slice(2, 4)}` : "";
}

function put(root, selector, text) {
  const node = root.querySelector(selector);
  if (node && node.textContent !== text) node.textContent = text;
}

/** Study-level corners (top left: patient; top right: facility and study). */
export function showStudy(root, manifest) {
  const study = manifest.study;
  const patient = study.patient || {};
  put(root, ".overlay-patient", firstPersonName(patient.name));
  put(root, ".overlay-patient-id", patient.id || "");
  let sexLine = "";
  const sex = label("sex", patient.sex); // "M" reads 男 / Male, not a DICOM code
  if (patient.birth_date) {
    sexLine = t("sex_age", { sex: sex || "?", date: dicomDate(patient.birth_date) });
  } else if (sex) {
    sexLine = t("sex_only", { sex });
  }
  put(root, ".overlay-sex", sexLine);
  put(root, ".overlay-facility", study.facility_name || "");
  put(root, ".overlay-study", study.description || study.modality || "");
  put(
    root,
    ".overlay-study-date",
    [dicomDate(study.date), dicomTime(study.time), study.accession_number]
      .filter(Boolean)
      .join(" "),
  );
}

/**
 * Image-level corners (bottom left: series and slice; bottom right: W/L and zoom). While the
 * frame in view is still loading (`view.loading`) the slice, frame and location labels stay empty
 * and the loading label on the image says which slice is coming: the canvas is black then, so no
 * label ever describes pixels of another slice.
 */
export function showImage(root, view) {
  const { series, instance, position, total, frame, frames, loading } = view;
  const loadingLabel = root.querySelector(".loading-label");
  if (loadingLabel) {
    loadingLabel.hidden = !loading;
    put(root, ".loading-label", loading ? t("loading_slice", { n: position, total }) : "");
  }
  put(
    root,
    ".overlay-series",
    series ? t("series_label", { number: series.number ?? "", description: series.description || "" }) : "",
  );
  put(root, ".slice-label", total && !loading ? t("slice_label", { n: position, total }) : "");
  put(root, ".frame-label", frames > 1 && !loading ? t("frame_label", { n: frame, total: frames }) : "");
  const location = instance && instance.slice_location;
  put(
    root,
    ".overlay-location",
    loading || location === null || location === undefined ? "" : t("location_label", { mm: location.toFixed(1) }),
  );
  put(
    root,
    ".wl-label",
    view.window ? t("wl_label", { width: view.window.width, center: view.window.center }) : "",
  );
  if (view.colour) put(root, ".wl-label", t("colour_image"));
  put(root, ".zoom-label", view.zoomPercent ? t("zoom_label", { percent: `${view.zoomPercent}%` }) : "");
  put(root, ".overlay-spacing", view.spacingNote || "");
}

/** Text of a finished measurement, in the page language. */
export function measurementText(measurement, spacingSource) {
  const detector = spacingSource === "ImagerPixelSpacing";
  const mm = spacingSource === "PixelSpacing" || detector;
  if (measurement.type === "length") {
    const key = mm ? (detector ? "length_mm_detector" : "length_mm") : "length_px";
    return t(key, { value: measurement.value.toFixed(1) });
  }
  if (measurement.type === "angle") return t("angle", { value: measurement.value.toFixed(1) });
  const key = mm ? (detector ? "roi_mm_detector" : "roi_mm") : "roi_px";
  return t(key, {
    mean: measurement.stats.mean.toFixed(1),
    sd: measurement.stats.sd.toFixed(1),
    area: measurement.stats.area.toFixed(1),
  });
}

/** An orientation label in the page language, letter by letter ("RA" -> "R" "A" translated). */
function orientationText(letters) {
  return [...(letters || "")].map((letter) => t(`orient_${letter}`)).join("");
}

/**
 * Orientation markers at the four edges (`edges`: {top, right, bottom, left} letters, or null
 * when the image says nothing of its orientation) and the scale bar (`bar`: {mm, pixels} in CSS
 * pixels, or null when there is no pixel spacing or no image in view).
 */
export function showGeometry(root, edges, bar) {
  for (const edge of ["top", "right", "bottom", "left"]) {
    const node = root.querySelector(`.orientation-marker[data-edge="${edge}"]`);
    if (!node) continue;
    const letters = edges ? edges[edge] || "" : "";
    put(root, `.orientation-marker[data-edge="${edge}"]`, orientationText(letters));
    node.dataset.letters = letters;
  }
  const scale = root.querySelector(".scale-bar");
  if (!scale) return;
  scale.hidden = !bar;
  if (!bar) return;
  const length = barLength(bar.mm);
  put(root, ".scale-bar-label", t(length.unit === "cm" ? "scale_cm" : "scale_mm", { value: length.value }));
  scale.querySelector(".scale-bar-line").style.width = `${bar.pixels.toFixed(1)}px`;
  scale.dataset.mm = String(bar.mm);
  scale.dataset.pixels = bar.pixels.toFixed(1);
}
