// teleread — upload page. Each file goes to POST /api/studies as its own XHR (so each has
// its own progress bar), at most MAX_PARALLEL at a time. The optional consultation request is
// then sent with POST /api/consultations for every accepted study.

import { api, csrfToken, el, formatBytes, label, personName, plural, t } from "./common.js";

const MAX_PARALLEL = 3;

const dropzone = document.getElementById("dropzone");
const input = document.getElementById("file-input");
const list = document.getElementById("upload-list");
const summary = document.getElementById("upload-summary");
const requestForm = document.getElementById("request-form");
const requestStatus = document.getElementById("request-status");
const requestResults = document.getElementById("request-results");
const requestSubmit = document.getElementById("request-submit");
const studiesBox = document.getElementById("upload-studies");
const studyList = document.getElementById("study-list");


const queue = []; // jobs waiting for a slot
const jobs = []; // every job shown on the page
let active = 0;
let nextId = 1;
const acceptedStudies = new Set(); // study_instance_uid values accepted by the server
const studies = new Map(); // study uid -> {detail, item}: what the server said of each study
const requestedStudies = new Set(); // ... for which a consultation request was sent

// ---- list items ---------------------------------------------------------------------

function createJob(file, displayName) {
  const job = {
    id: nextId++,
    file,
    state: "queued",
    accepted: 0,
    rejected: 0,
    nameNode: el("span", { className: "file-name", text: displayName || file.name }),
    sizeNode: el("span", { className: "file-size", text: formatBytes(file.size) }),
    progress: el("progress", { max: 1, value: 0 }),
    resultNode: el("span", { className: "file-result", text: t("queued") }),
    detailNode: el("div", { className: "file-rejects", hidden: true }),
    retryButton: el("button", {
      type: "button",
      className: "button button-small file-retry",
      hidden: true,
      text: t("retry"),
    }),
  };
  job.item = el(
    "li",
    {
      className: "upload-item",
      dataset: { filename: file.name, uploadId: String(job.id), state: "queued" },
    },
    el("div", { className: "file-line" }, job.nameNode, job.sizeNode, job.resultNode),
    job.progress,
    job.detailNode,
    job.retryButton,
  );
  job.progress.setAttribute("aria-label", displayName || file.name);
  job.retryButton.addEventListener("click", () => {
    job.retryButton.hidden = true;
    setState(job, "queued", t("queued"));
    job.progress.value = 0;
    queue.push(job);
    pump();
  });
  return job;
}

function setState(job, state, text) {
  job.state = state;
  job.item.dataset.state = state;
  job.resultNode.textContent = text;
}

function showRejects(job, files) {
  const rejected = files.filter((f) => f.status !== "accepted");
  job.detailNode.replaceChildren(
    ...rejected.map((f) => {
      const reason = f.reason ? label("reasons", f.reason) : "";
      return el(
        "div",
        { className: "file-reject", dataset: { filename: f.filename || "" } },
        el("span", { className: "reject-name", text: f.filename || "" }),
        reason ? el("span", { className: "reject-reason", text: reason }) : null,
      );
    }),
  );
  job.detailNode.hidden = rejected.length === 0;
}

/** Show the server's per-file answer (single DICOM file or a whole .zip). */
function showFiles(job, files) {
  job.accepted = files.filter((f) => f.status === "accepted").length;
  job.rejected = files.length - job.accepted;
  const isArchive =
    files.length !== 1 ||
    /\.zip$/i.test(job.file.name) ||
    (files[0].filename && files[0].filename !== job.file.name);
  let state = "rejected";
  if (job.accepted && job.rejected) state = "partial";
  else if (job.accepted) state = "accepted";

  if (isArchive) {
    setState(job, state, t("archive_result", { accepted: job.accepted, rejected: job.rejected }));
    showRejects(job, files);
  } else if (job.accepted) {
    setState(job, state, `✓ ${t("accepted")}`);
  } else {
    const reason = files[0].reason;
    const text = reason
      ? t("rejected", { reason: label("reasons", reason) })
      : t("rejected_no_reason");
    setState(job, state, `✗ ${text}`);
  }
}

/** Rejected and failed files first (with their reasons), then the rest in the order sent. */
function reorder() {
  const rank = (job) => (["rejected", "partial", "error"].includes(job.state) ? 0 : 1);
  const order = [...jobs].sort((a, b) => rank(a) - rank(b));
  if (order.some((job, index) => list.children[index] !== job.item)) {
    list.append(...order.map((job) => job.item));
  }
}

// ---- studies received -----------------------------------------------------------------

/** Whose study, what it is, how many images arrived, and its consultation when known. */
function renderStudy(uid) {
  const entry = studies.get(uid);
  const d = entry.detail;
  if (!entry.item) {
    entry.item = el("li", { className: "study-received", dataset: { studyUid: uid } });
    studyList.append(entry.item);
  }
  const parts = [
    el("span", { className: "study-patient", text: personName(d.patient_name) || "—" }),
    d.patient_id ? el("span", { className: "study-patient-id", text: t("patient_id", { id: d.patient_id }) }) : null,
    d.study_description ? el("span", { className: "study-description", text: d.study_description }) : null,
    el("span", { className: "study-instances", text: plural("instances", d.instances) }),
    d.consultation_id
      ? el("a", { className: "study-consultation", href: `/consultations/${d.consultation_id}`, text: t("open_consultation") })
      : el("span", { className: "study-consultation-none", text: t("no_consultation") }),
  ];
  entry.item.replaceChildren(...parts.filter(Boolean));
  studiesBox.hidden = false;
}

/** Merge one answer's study details: image counts add up over the files sent one by one. */
function learnStudies(details) {
  for (const detail of details || []) {
    const uid = detail.study_instance_uid;
    const entry = studies.get(uid);
    if (!entry) studies.set(uid, { detail: { ...detail }, item: null });
    else {
      const known = entry.detail;
      known.instances += detail.instances;
      for (const key of ["patient_name", "patient_id", "study_description", "consultation_id"]) {
        if (!known[key] && detail[key]) known[key] = detail[key];
      }
    }
    renderStudy(uid);
  }
}

/** A short name for a study in the request results: patient, ID and description. */
function studyLabel(uid) {
  const entry = studies.get(uid);
  if (!entry) return t("study", { uid });
  const d = entry.detail;
  return [personName(d.patient_name), d.patient_id, d.study_description].filter(Boolean).join(" · ");
}

function showFailure(job, text, retry) {
  job.accepted = 0;
  job.rejected = 0;
  setState(job, "error", `✗ ${text}`);
  job.retryButton.hidden = !retry;
}

function updateSummary() {
  const done = jobs.filter((j) => !["queued", "uploading", "processing"].includes(j.state));
  const accepted = jobs.reduce((sum, j) => sum + j.accepted, 0);
  const rejected = jobs.reduce((sum, j) => sum + j.rejected, 0);
  let text = t("summary", { done: done.length, total: jobs.length, accepted, rejected });
  if (acceptedStudies.size) text += ` · ${t("studies_received", { n: acceptedStudies.size })}`;
  summary.textContent = jobs.length ? text : "";
}

// ---- uploading ----------------------------------------------------------------------

function pump() {
  while (active < MAX_PARALLEL && queue.length) start(queue.shift());
  updateSummary();
}

function start(job) {
  active += 1;
  setState(job, "uploading", t("uploading"));
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/studies");
  xhr.responseType = "json";
  xhr.setRequestHeader("Accept", "application/json");
  xhr.setRequestHeader("X-CSRF-Token", csrfToken());
  xhr.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable && event.total) job.progress.value = event.loaded / event.total;
  });
  xhr.upload.addEventListener("load", () => {
    // Bytes sent; the server is now checking the files: indeterminate bar.
    job.progress.removeAttribute("value");
    setState(job, "processing", t("processing"));
  });
  xhr.addEventListener("load", () => finish(job, xhr.status, xhr.response));
  xhr.addEventListener("error", () => finish(job, 0, null));
  xhr.addEventListener("abort", () => finish(job, 0, null));
  const data = new FormData();
  data.append("files", job.file, job.file.name);
  xhr.send(data);
}

function finish(job, status, body) {
  active -= 1;
  job.progress.value = 1;
  const data = body && typeof body === "object" ? body : {};
  if (status === 200 && Array.isArray(data.files)) {
    showFiles(job, data.files);
    for (const uid of data.studies || []) acceptedStudies.add(uid);
    for (const f of data.files) {
      const uid = f.status === "accepted" ? f.study_instance_uid : null;
      if (uid) acceptedStudies.add(uid);
    }
    learnStudies(data.study_details);
  } else if (status === 400 && Array.isArray(data.files) && data.files.length) {
    showFiles(job, data.files);
  } else if (status === 400 && data.error === "no_dicom_accepted") {
    showFailure(job, t("nothing_accepted"), false);
  } else if (status === 413) {
    showFailure(job, t("too_large"), false);
  } else if (status === 401) {
    showFailure(job, t("session_expired"), false);
  } else if (status === 403) {
    showFailure(job, t("forbidden"), false);
  } else if (status === 0) {
    showFailure(job, t("upload_network"), true);
  } else {
    showFailure(job, t("upload_failed", { status }), status >= 500 || status === 429);
  }
  reorder();
  pump();
}

function addFiles(entries) {
  for (const { file, name } of entries) {
    const job = createJob(file, name);
    jobs.push(job);
    queue.push(job);
    list.append(job.item);
  }
  pump();
}

// ---- choosing files: input and drag-and-drop (files, folders, .zip) -----------------

input.addEventListener("change", () => {
  addFiles([...input.files].map((file) => ({ file, name: file.name })));
  input.value = ""; // allow choosing the same file again
});

function readAllEntries(reader) {
  return new Promise((resolve, reject) => {
    const out = [];
    const next = () =>
      reader.readEntries((batch) => {
        if (!batch.length) resolve(out);
        else {
          out.push(...batch);
          next();
        }
      }, reject);
    next();
  });
}

function entryFile(entry) {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

async function walk(entry, out) {
  if (entry.name.startsWith(".")) return; // .DS_Store and friends
  if (entry.isFile) {
    const file = await entryFile(entry);
    out.push({ file, name: entry.fullPath.replace(/^\//, "") || file.name });
  } else if (entry.isDirectory) {
    for (const child of await readAllEntries(entry.createReader())) await walk(child, out);
  }
}

function stop(event) {
  event.preventDefault();
  event.stopPropagation();
}

for (const type of ["dragenter", "dragover"]) {
  dropzone.addEventListener(type, (event) => {
    stop(event);
    event.dataTransfer.dropEffect = "copy";
    dropzone.classList.add("is-dragover");
  });
}
dropzone.addEventListener("dragleave", (event) => {
  if (!dropzone.contains(event.relatedTarget)) dropzone.classList.remove("is-dragover");
});
dropzone.addEventListener("drop", async (event) => {
  stop(event);
  dropzone.classList.remove("is-dragover");
  const transfer = event.dataTransfer;
  // Entries must be taken synchronously: the DataTransfer is emptied after the event.
  const entries = [];
  const plain = [];
  for (const item of transfer.items || []) {
    if (item.kind !== "file") continue;
    const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
    if (entry) entries.push(entry);
    else {
      const file = item.getAsFile();
      if (file) plain.push({ file, name: file.name });
    }
  }
  if (!entries.length && !plain.length) {
    for (const file of transfer.files) plain.push({ file, name: file.name });
  }
  const found = [...plain];
  try {
    for (const entry of entries) await walk(entry, found);
  } catch (err) {
    console.error("teleread: could not read dropped folder", err);
  }
  addFiles(found);
});

// A file dropped next to the zone must not make the browser navigate away from the page.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());

window.addEventListener("beforeunload", (event) => {
  if (active || queue.length) event.preventDefault();
});

// ---- consultation request -----------------------------------------------------------

function uploadsRunning() {
  return active > 0 || queue.length > 0;
}

const requestItems = new Map(); // study uid -> <li> in #request-results

function showRequestResult(uid, state, text, consultationId) {
  let item = requestItems.get(uid);
  if (!item) {
    item = el("li", { className: "request-result", dataset: { studyUid: uid } });
    requestItems.set(uid, item);
    requestResults.append(item);
  }
  item.dataset.state = state;
  item.replaceChildren(
    el("span", { className: "request-study", title: uid, text: studyLabel(uid) }),
    el("span", { className: "request-outcome", text }),
  );
  if (consultationId) {
    item.append(
      el("a", {
        className: "request-consultation",
        href: `/consultations/${consultationId}`,
        text: t("open_consultation"),
      }),
    );
  }
  const entry = studies.get(uid);
  if (consultationId && entry) {
    entry.detail.consultation_id = consultationId;
    renderStudy(uid);
  }
}

if (requestForm) {
  requestForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const history = requestForm.elements.clinical_history.value.trim();
    const question = requestForm.elements.clinical_question.value.trim();
    const priority = requestForm.elements.priority.value;
    if (uploadsRunning()) {
      requestStatus.textContent = t("wait_uploads");
      return;
    }
    if (!acceptedStudies.size) {
      requestStatus.textContent = t("need_study");
      return;
    }
    if (!history && !question) {
      requestStatus.textContent = t("need_text");
      requestForm.elements.clinical_history.focus();
      return;
    }
    const pending = [...acceptedStudies].filter((uid) => !requestedStudies.has(uid));
    if (!pending.length) {
      requestStatus.textContent = t("already_sent");
      return;
    }
    requestSubmit.disabled = true;
    requestStatus.textContent = t("sending");
    let failures = 0;
    for (const uid of pending) {
      try {
        const result = await api("/api/consultations", {
          method: "POST",
          json: {
            study_instance_uid: uid,
            priority,
            clinical_history: history,
            clinical_question: question,
          },
        });
        if (result.ok) {
          requestedStudies.add(uid);
          showRequestResult(uid, "sent", `✓ ${t("request_sent")}`, result.data && result.data.id);
        } else {
          failures += 1;
          const detail = result.data && result.data.detail;
          const text = detail || t("request_failed", { status: result.status });
          showRequestResult(uid, "error", `✗ ${text}`);
        }
      } catch (_err) {
        failures += 1;
        showRequestResult(uid, "error", `✗ ${t("network_error")}`);
      }
    }
    requestStatus.textContent = failures ? "" : t("request_sent");
    requestSubmit.disabled = false;
  });
}
