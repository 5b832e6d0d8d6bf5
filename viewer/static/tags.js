// teleread viewer — the DICOM tag browser: instance metadata (PS3.18 DICOM JSON, F.2) from the
// service's facility-authorised DICOMweb proxy, as a filterable table.

import { el, t } from "../common.js";

/** Keywords of common attributes (PS3.6); the rest show their tag only. */
const NAMES = {
  "00080005": "SpecificCharacterSet", "00080008": "ImageType", "00080016": "SOPClassUID",
  "00080018": "SOPInstanceUID", "00080020": "StudyDate", "00080021": "SeriesDate",
  "00080030": "StudyTime", "00080050": "AccessionNumber", "00080060": "Modality",
  "00080070": "Manufacturer", "00080080": "InstitutionName", "00080090": "ReferringPhysicianName",
  "00081030": "StudyDescription", "0008103E": "SeriesDescription", "00100010": "PatientName",
  "00100020": "PatientID", "00100030": "PatientBirthDate", "00100040": "PatientSex",
  "00101010": "PatientAge", "00180015": "BodyPartExamined", "00180050": "SliceThickness",
  "00180060": "KVP", "00181164": "ImagerPixelSpacing", "00185100": "PatientPosition",
  "0020000D": "StudyInstanceUID", "0020000E": "SeriesInstanceUID", "00200010": "StudyID",
  "00200011": "SeriesNumber", "00200013": "InstanceNumber", "00200032": "ImagePositionPatient",
  "00200037": "ImageOrientationPatient", "00201041": "SliceLocation", "00280002": "SamplesPerPixel",
  "00280004": "PhotometricInterpretation", "00280008": "NumberOfFrames", "00280010": "Rows",
  "00280011": "Columns", "00280030": "PixelSpacing", "00280100": "BitsAllocated",
  "00280101": "BitsStored", "00280102": "HighBit", "00280103": "PixelRepresentation",
  "00281050": "WindowCenter", "00281051": "WindowWidth", "00281052": "RescaleIntercept",
  "00281053": "RescaleSlope", "00281054": "RescaleType",
};

/** Every PS3.6 keyword by tag, fetched once per page from the service (null until loaded). */
let dictionary = null;
let dictionaryLoading = null;

function loadDictionary() {
  dictionaryLoading ??= fetch("/api/dicom/dictionary", { credentials: "same-origin" })
    .then((response) => (response.ok ? response.json() : null))
    .then((names) => {
      dictionary = names;
    })
    .catch(() => {});
  return dictionaryLoading;
}

function nameOf(tag) {
  const key = tag.toUpperCase();
  return (dictionary && dictionary[key]) || NAMES[key] || "";
}

/** One attribute's value as display text (PN alphabetic, sequences and bulk data summarised). */
export function valueText(element) {
  if (!element) return "";
  if (element.vr === "SQ") return `[${(element.Value || []).length}]`;
  if (element.BulkDataURI || element.InlineBinary) return "(binary)";
  return (element.Value || [])
    .map((v) => (v && typeof v === "object" ? v.Alphabetic || "" : String(v)))
    .join("\\");
}

/** Flat rows {tag, name, vr, value, depth} in tag order, nested sequence items indented. */
export function tagRows(dataset, depth = 0) {
  const rows = [];
  for (const tag of Object.keys(dataset).sort()) {
    const element = dataset[tag];
    const label = `(${tag.slice(0, 4)},${tag.slice(4)})`;
    rows.push({ tag: label, name: nameOf(tag), vr: element.vr || "", value: valueText(element), depth });
    if (element.vr === "SQ" && depth < 3) {
      for (const item of element.Value || []) rows.push(...tagRows(item, depth + 1));
    }
  }
  return rows;
}

export class TagBrowser {
  constructor(panel) {
    this.panel = panel;
    this.body = panel.querySelector("#tag-rows");
    this.status = panel.querySelector("#tag-status");
    this.filter = panel.querySelector("#tag-filter");
    this.rows = [];
    this.url = null;
    this.filter.addEventListener("input", () => this.draw());
  }

  get open() {
    return !this.panel.hidden;
  }

  /** Load the metadata of one instance (only while the panel is open; cached per URL). */
  async show(url) {
    if (!this.open || url === this.url) return;
    this.url = url;
    this.status.textContent = t("tags_loading");
    await loadDictionary();
    let result;
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        headers: { Accept: "application/dicom+json" },
      });
      result = { ok: response.ok, status: response.status, data: await response.json().catch(() => null) };
    } catch (_err) {
      this.status.textContent = t("network_error");
      return;
    }
    if (url !== this.url) return;
    if (!result.ok || !Array.isArray(result.data)) {
      this.status.textContent = t("tags_failed", { status: result.status });
      this.rows = [];
    } else {
      this.status.textContent = "";
      this.rows = tagRows(result.data[0] || {});
    }
    this.draw();
  }

  draw() {
    const needle = this.filter.value.trim().toLowerCase();
    const rows = needle
      ? this.rows.filter((r) => `${r.tag} ${r.name} ${r.value}`.toLowerCase().includes(needle))
      : this.rows;
    this.body.replaceChildren(
      ...rows.map((r) =>
        el(
          "tr",
          { className: `tag-depth-${r.depth}` },
          el("td", { className: "tag-code", text: r.tag }),
          el("td", { text: r.name }),
          el("td", { text: r.vr }),
          el("td", { className: "tag-value", text: r.value }),
        ),
      ),
    );
  }
}
