// teleread — one consultation's live status page: status header, timeline, message thread,
// and (for the specialist holding the claim) the preliminary answer form. Data comes from
// GET /api/consultations/{id} and /messages; /api/worklist/events tells when to refetch.

import { api, el, format, formatDateTime, label, personName, redirectToLogin, strings, t } from "./common.js";

const root = document.getElementById("consultation");
const id = Number(root.dataset.consultationId);
const userId = Number(root.dataset.userId);
const node = (name) => document.getElementById(name);

function text(name, value) {
  node(name).textContent = value || "";
}

function showConsultation(c) {
  const patient = [personName(c.patient_name), c.patient_id, c.modality, label("body_part", c.body_part)];
  text("consult-patient", patient.filter(Boolean).join(" · "));
  text("consult-priority", label("priority", c.priority));
  node("consult-priority").dataset.priority = c.priority || "";
  text("consult-history", c.clinical_history);
  text("consult-question", c.clinical_question);
  text("consult-phone", c.callback_phone);
  const cancelled = c.status === "cancelled" ? (c.events || []).filter((e) => e.type === "cancelled").pop() : null;
  text(
    "status-received",
    cancelled
      ? t("cancelled", { time: formatDateTime(cancelled.at), reason: (cancelled.detail && cancelled.detail.reason) || "—" })
      : c.received_at
        ? t("received", { time: formatDateTime(c.received_at) })
        : t("requested", { time: formatDateTime(c.requested_at) }),
  );
  // A signed consultation has no claim any more: say who read it, not "Not yet claimed".
  const signer = signedBy(c.events || []);
  text(
    "status-claimed",
    c.claimed_by ? t("claimed_by", { name: c.claimed_by }) : signer ? t("read_by", { name: signer }) : t("not_claimed"),
  );
  const pre = node("status-preliminary");
  if (c.preliminary) {
    pre.replaceChildren(
      el("span", { className: "preliminary-text", text: c.preliminary.text }),
      el("span", {
        className: "preliminary-meta",
        text: ` — ${t("preliminary_by", { name: c.preliminary.by, time: formatDateTime(c.preliminary.at) })}`,
      }),
    );
  } else {
    pre.textContent = signer ? t("answered_in_report") : t("no_preliminary");
  }
  // Two-level sign-off: the writer signed, a reviewer has yet to co-sign.
  const written = c.status === "awaiting_review" ? (c.events || []).filter((e) => e.type === "written").pop() : null;
  text("status-report", written ? t("awaiting_review", { name: written.actor || "—" }) : t("not_signed"));
  node("preliminary-card").hidden = !(c.claimed_by_id && c.claimed_by_id === userId);
  const events = c.events || [];
  const start = events.length ? Date.parse(events[0].at) : 0;
  node("timeline").replaceChildren(
    ...events.map((e) =>
      el(
        "li",
        { className: "timeline-event", dataset: { type: e.type } },
        el("time", { dateTime: e.at, text: formatDateTime(e.at) }),
        " ",
        el("span", { className: "event-type", text: label("events", e.type) }),
        " ",
        el("span", { className: "event-elapsed", text: elapsed(Date.parse(e.at) - start) }),
        e.actor ? el("span", { className: "event-actor", text: ` · ${e.actor}` }) : null,
        e.detail && e.detail.version > 1 && e.type !== "written" && e.type !== "reviewed"
          ? el("span", { className: "event-detail", text: ` (${timelineText("correction", { version: e.detail.version })})` })
          : null,
        e.type === "returned" && e.detail && e.detail.comment
          ? el("blockquote", { className: "event-comment", text: e.detail.comment })
          : null,
      ),
    ),
  );
}

/** Who signed the latest report version (the actor of the last "signed" event), or "". */
function signedBy(events) {
  const signed = events.filter((e) => e.type === "signed");
  return signed.length ? signed[signed.length - 1].actor || "" : "";
}

/** A timeline label from the "timeline" strings of the page (time since the first event). */
function timelineText(key, vars) {
  return format((strings.timeline || {})[key] || key, vars);
}

function elapsed(ms) {
  const minutes = Math.max(0, Math.round(ms / 60000));
  return timelineText("elapsed", { h: Math.floor(minutes / 60), m: minutes % 60 });
}

function showMessages(items) {
  const thread = node("thread");
  if (!items.length) {
    thread.replaceChildren(el("li", { className: "thread-empty", text: t("no_messages") }));
    return;
  }
  thread.replaceChildren(
    ...items.map((m) =>
      el(
        "li",
        { className: "message", dataset: { messageId: String(m.id) } },
        el(
          "div",
          { className: "message-head" },
          el("span", { className: "message-author", text: `${m.author} · ${m.author_facility}` }),
          " ",
          el("time", { dateTime: m.created_at, text: formatDateTime(m.created_at) }),
        ),
        el("p", { className: "message-body", text: m.body }),
      ),
    ),
  );
}

let loading = null;
let again = false;

async function refresh() {
  if (loading) {
    again = true;
    return loading;
  }
  loading = (async () => {
    try {
      const [one, thread] = await Promise.all([
        api(`/api/consultations/${id}`),
        api(`/api/consultations/${id}/messages`),
      ]);
      if (one.status === 401) return redirectToLogin();
      if (!one.ok) {
        text("consult-load-status", t("load_failed", { status: one.status }));
        return;
      }
      text("consult-load-status", "");
      showConsultation(one.data);
      if (thread.ok) showMessages(thread.data.items);
      await showReport(one.data.status === "awaiting_review");
    } catch (_err) {
      text("consult-load-status", t("network_error"));
    }
  })();
  await loading;
  loading = null;
  if (again) {
    again = false;
    await refresh();
  }
}

function send(formId, statusId, url, field) {
  const form = node(formId);
  const status = node(statusId);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = form.elements[field];
    const value = input.value.trim();
    if (!value) {
      input.focus();
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    status.textContent = t("sending");
    try {
      const result = await api(url, { method: "POST", json: { [field]: value } });
      if (result.ok) {
        input.value = "";
        status.textContent = "";
        await refresh();
      } else {
        const detail = result.data && result.data.detail;
        status.textContent =
          typeof detail === "string" && detail ? detail : t("send_failed", { status: result.status });
      }
    } catch (_err) {
      status.textContent = t("network_error");
    }
    button.disabled = false;
  });
}

// ---- report section: signed versions, PDF links, acknowledgements -----------------------
async function showReport(awaitingReview = false) {
  const answer = await api(`/api/consultations/${id}/report`);
  const list = node("report-card-versions");
  if (!answer.ok) return;
  const r = answer.data;
  const items = [...r.versions].reverse().map((v) =>
    el(
      "li",
      { dataset: { version: String(v.version) } },
      t("report_version", { version: v.version, time: formatDateTime(v.signed_at), signer: v.signer_name }),
      " ",
      v.supersedes_version ? el("span", { className: "badge badge-corrected", text: t("report_corrected") }) : null,
      v.critical && !r.critical_acknowledged_at ? el("span", { className: "badge badge-critical", text: t("report_critical") }) : null,
      r.acknowledged_version === v.version ? el("span", { className: "badge badge-acknowledged", text: t("report_acknowledged") }) : null,
      " ",
      el("a", { href: v.pdf, target: "_blank", rel: "noopener", text: t("report_pdf") }),
    ),
  );
  list.replaceChildren(...(items.length ? items : [el("li", { className: "muted", text: t("report_none") })]));
  const latest = r.versions[r.versions.length - 1];
  const ack = node("report-card-ack");
  if (ack) ack.hidden = !latest || r.acknowledged_version === latest.version;
  const critical = node("report-card-ack-critical");
  if (critical) critical.hidden = !latest || !latest.critical || Boolean(r.critical_acknowledged_at);
  if (latest && !awaitingReview) {
    text("status-report", t("report_version", { version: latest.version, time: formatDateTime(latest.signed_at), signer: latest.signer_name }));
  }
}

for (const [button, path] of [["report-card-ack", "acknowledgement"], ["report-card-ack-critical", "critical-acknowledgement"]]) {
  const target = node(button);
  if (!target) continue;
  target.addEventListener("click", async () => {
    const result = await api(`/api/consultations/${id}/report/${path}`, { method: "POST" });
    const detail = (result.data && (result.data.detail || result.data.error)) || "";
    text("report-card-status", result.ok ? "" : t("report_failed", { status: result.status, detail }));
    await refresh();
  });
}

send("message-form", "message-status", `/api/consultations/${id}/messages`, "body");
send("preliminary-form", "preliminary-status", `/api/consultations/${id}/preliminary`, "text");

function listen() {
  if (!window.EventSource) return;
  const source = new EventSource("/api/worklist/events");
  const live = node("consult-live");
  source.addEventListener("open", () => {
    root.dataset.live = "on";
    live.textContent = t("live_on");
    refresh(); // catch up on anything missed while disconnected
  });
  source.addEventListener("error", () => {
    root.dataset.live = "off";
    live.textContent = t("live_off");
  });
  source.addEventListener("change", (event) => {
    try {
      if (JSON.parse(event.data).consultation_id === id) refresh();
    } catch (_err) {
      /* a malformed event: ignore it */
    }
  });
}

refresh();
listen();
