// teleread — facility administration. GET /api/admin/facilities; POST to create, PATCH
// /api/admin/facilities/{id} with only the fields that changed. The answer says whether the AE
// title reached the image archive (Orthanc); the facility is saved either way.

import { apiAnswer, el, errorText, formatDateTime, label, plural, redirectToLogin, t } from "./common.js";

const AET = /^[A-Za-z0-9_-]{1,16}$/;
const HL7_ENDPOINT = /^[A-Za-z0-9.-]{1,253}:[0-9]{1,5}$/;
const FIELDS = [
  "name",
  "kind",
  "aet",
  "timezone",
  "contact",
  "dicom_host",
  "dicom_port",
  "hl7_code",
  "hl7_endpoint",
  "character_set",
];

const table = document.getElementById("facilities");
const form = document.getElementById("facility-form");
const tbody = table.tBodies[0];
const title = document.getElementById("facility-form-title");
const formError = document.getElementById("facility-form-error");
const formStatus = document.getElementById("facility-form-status");
const listError = document.getElementById("facilities-error");
const emptyBox = document.getElementById("facilities-empty");
const countBox = document.getElementById("facilities-count");
const submit = document.getElementById("facility-submit");
const cancel = document.getElementById("facility-cancel");
const zoneList = document.getElementById("timezone-list");

let editing = null; // the facility being edited, as the server last sent it

function say(error, status) {
  formError.textContent = error || "";
  formStatus.textContent = status || "";
}

/** The page's messages for the API's error codes. */
const ERRORS = {
  aet_taken: "aet_taken",
  hl7_code_taken: "hl7_code_taken",
  not_found: "not_found",
  forbidden: "forbidden",
  invalid_request: "invalid",
};

function failure(result) {
  if (result.status === 401) redirectToLogin();
  return errorText(result, "failed", ERRORS);
}

// ---- table ----------------------------------------------------------------------------

function buildRow(facility) {
  const row = el("tr", {
    className: "facility-row",
    dataset: { facilityId: String(facility.id), aet: facility.aet, kind: facility.kind },
  });
  const node = facility.dicom_host
    ? `${facility.dicom_host}:${facility.dicom_port || 104}`
    : "—";
  const created = formatDateTime(facility.created_at);
  const edit = el("button", {
    type: "button",
    className: "button button-small facility-edit",
    text: t("edit"),
  });
  edit.setAttribute("aria-label", `${t("edit")} ${facility.name}`);
  edit.addEventListener("click", () => startEditing(facility));
  row.append(
    el("td", { className: "col-name", text: facility.name }),
    el("td", { className: "col-kind", text: label("kinds", facility.kind) }),
    el("td", { className: "col-aet" }, el("code", { text: facility.aet })),
    el("td", { className: "col-timezone", text: facility.timezone }),
    el("td", { className: "col-contact", text: facility.contact || "" }),
    el("td", { className: "col-node", text: node }),
    el(
      "td",
      { className: "col-created" },
      created ? el("time", { dateTime: facility.created_at, text: created }) : "",
    ),
    el("td", { className: "col-actions" }, edit),
  );
  return row;
}

async function load() {
  table.setAttribute("aria-busy", "true");
  const result = await apiAnswer("/api/admin/facilities");
  table.setAttribute("aria-busy", "false");
  if (!result.ok || !result.data) {
    listError.textContent =
      result.status === 0 ? t("network_error") : t("load_failed", { status: result.status });
    if (result.status === 401) redirectToLogin();
    return;
  }
  listError.textContent = "";
  const items = result.data.items || [];
  tbody.replaceChildren(...items.map(buildRow));
  emptyBox.hidden = items.length > 0;
  emptyBox.textContent = items.length ? "" : t("empty");
  countBox.textContent = plural("facilities", items.length);
}

// ---- form -----------------------------------------------------------------------------

function formValues() {
  const value = (name) => form.elements[name].value.trim();
  const port = value("dicom_port");
  return {
    name: value("name"),
    kind: value("kind"),
    aet: value("aet"),
    timezone: value("timezone") || null,
    contact: value("contact"),
    dicom_host: value("dicom_host") || null,
    dicom_port: port ? Number(port) : null,
    hl7_code: value("hl7_code") || null,
    hl7_endpoint: value("hl7_endpoint") || null,
    character_set: value("character_set") || "ISO_IR 192",
  };
}

function setMode(facility) {
  editing = facility;
  title.textContent = facility ? t("edit_title", { name: facility.name }) : t("create_title");
  submit.textContent = t(facility ? "edit_submit" : "create_submit");
  cancel.hidden = !facility;
}

function startEditing(facility) {
  setMode(facility);
  for (const name of FIELDS) {
    const value = facility[name];
    form.elements[name].value = value === null || value === undefined ? "" : String(value);
  }
  say("", "");
  form.elements.name.focus();
}

function stopEditing() {
  setMode(null);
  form.reset();
}

function problem(values) {
  if (!values.name || !values.kind || !values.aet) return t("missing_fields");
  if (!AET.test(values.aet)) return t("bad_aet");
  const port = values.dicom_port;
  if (port !== null && !(Number.isInteger(port) && port >= 1 && port <= 65535)) {
    return t("bad_port");
  }
  if (values.hl7_endpoint !== null && !HL7_ENDPOINT.test(values.hl7_endpoint)) return t("bad_hl7_endpoint");
  return "";
}

function outcome(created, registered, aet) {
  if (registered === true) return t(created ? "created_registered" : "saved_registered", { aet });
  if (registered === false) {
    return t(created ? "created_unregistered" : "saved_unregistered", { aet });
  }
  return t("saved");
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const values = formValues();
  const wrong = problem(values);
  if (wrong) {
    say(wrong, "");
    return;
  }
  let result;
  submit.disabled = true;
  say("", t("saving"));
  if (editing) {
    const changes = {};
    for (const name of FIELDS) {
      const before = editing[name] === undefined ? null : editing[name];
      if (values[name] !== before && !(name === "timezone" && values[name] === null)) {
        changes[name] = values[name];
      }
    }
    if (!Object.keys(changes).length) {
      submit.disabled = false;
      say("", t("nothing_changed"));
      return;
    }
    result = await apiAnswer(`/api/admin/facilities/${editing.id}`, { method: "PATCH", json: changes });
  } else {
    const body = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== null));
    result = await apiAnswer("/api/admin/facilities", { method: "POST", json: body });
  }
  submit.disabled = false;
  if (!result.ok) {
    say(failure(result), "");
    return;
  }
  const message = outcome(!editing, result.data && result.data.registered, values.aet);
  stopEditing();
  say("", message);
  await load();
});

cancel.addEventListener("click", () => {
  stopEditing();
  say("", "");
});

// Time zone suggestions from the browser's own IANA list (free text stays allowed).
if (zoneList && typeof Intl.supportedValuesOf === "function") {
  zoneList.append(...Intl.supportedValuesOf("timeZone").map((zone) => el("option", { value: zone })));
}

countBox.textContent = t("loading");
load();
