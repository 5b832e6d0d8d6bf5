// teleread — the review part of the report editor (two-level sign-off, 报告 + 审核, issue 19).
// A report the rules send to review waits for a second reader: the writer sees that it waits,
// a reviewer claims it and approves and co-signs, edits and co-signs (the form holds the text
// signed for review), or returns it with a comment, which the writer then sees above the form.
// The password is re-entered for a co-signature, as for signing.

import { $, api, errorText, formatDateTime, t } from "./common.js";

/**
 * What the user may do with the report's review: "review" (holds the claim on a report awaiting
 * review), "claim" (may claim it to review), "written" (wrote it: it waits), "returned" (the
 * reviewer sent it back with a comment), or "" (no review in play).
 */
export function reviewMode(consultation, report, userId) {
  const review = report && report.review;
  if (!consultation || !review) return "";
  if (consultation.status === "awaiting_review" && review.awaiting) {
    if (review.awaiting.writer_id === userId) return "written";
    return consultation.claimed_by_id === userId ? "review" : "claim";
  }
  return review.returned ? "returned" : "";
}

/** Show the review notice, the reviewer's buttons, or the returned comment for ``mode``. */
export function renderReview(mode, report) {
  const review = report && report.review;
  const awaiting = review && review.awaiting;
  const box = $("report-review-box");
  box.hidden = !["review", "claim", "written"].includes(mode);
  if (awaiting) {
    $("report-review-text").textContent = t("awaiting_review_note", {
      writer: awaiting.writer_name,
      time: formatDateTime(awaiting.written_at),
    });
  }
  $("review-actions").hidden = mode !== "review";
  const returned = $("report-returned");
  returned.hidden = mode !== "returned";
  if (mode === "returned") {
    $("report-returned-text").textContent = t("returned_note", {
      reviewer: review.returned.reviewer_name,
      time: formatDateTime(review.returned.decided_at),
    });
    $("report-returned-comment").textContent = review.returned.comment;
  }
}

/** Wire the reviewer's buttons; ``payload()`` is the form's text, ``reload()`` re-reads all. */
export function setupReview({ base, payload, reload, showError }) {
  let action = "approve";
  const dialog = $("review-dialog");
  const open = (which) => {
    action = which;
    $("review-dialog-title").textContent = t(which === "edit" ? "review_edit_title" : "review_approve_title");
    $("review-error").textContent = "";
    $("review-password").value = "";
    dialog.showModal();
    $("review-password").focus();
  };
  $("review-approve").addEventListener("click", () => open("approve"));
  $("review-edit").addEventListener("click", () => open("edit"));
  $("review-cancel").addEventListener("click", () => dialog.close());
  $("review-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const password = $("review-password").value;
    if (!password) return;
    $("review-confirm").disabled = true;
    try {
      const body = { password };
      if (action === "edit") {
        const text = payload();
        delete text.template_id;
        Object.assign(body, text);
      }
      const response = await api(`${base}/report/review/${action}`, { method: "POST", json: body });
      if (!response.ok) {
        $("review-error").textContent = errorText(response, "review_failed");
        return;
      }
      dialog.close();
      showError("");
      await reload(t("reviewed_done", { code: response.data.verification_code }));
    } finally {
      $("review-password").value = "";
      $("review-confirm").disabled = false;
    }
  });

  const back = $("return-dialog");
  $("review-return").addEventListener("click", () => {
    $("return-error").textContent = "";
    $("return-comment").value = "";
    back.showModal();
    $("return-comment").focus();
  });
  $("return-cancel").addEventListener("click", () => back.close());
  $("return-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const comment = $("return-comment").value.trim();
    if (!comment) {
      $("return-error").textContent = t("return_comment_needed");
      return;
    }
    const response = await api(`${base}/report/review/return`, { method: "POST", json: { comment } });
    if (!response.ok) {
      $("return-error").textContent = errorText(response, "review_failed");
      return;
    }
    back.close();
    await reload("");
  });
}
