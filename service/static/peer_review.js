// teleread — peer review pages (issue 20 item 1): claim a review, record its RADPEER score,
// answer a discrepancy (the first reader) or close it (a manager). The pages are rendered by
// the server; this posts to the API and reloads, or shows the refusal in the user's language.

import { $, api, errorText } from "./common.js";

const CODES = {
  claimed: "claimed",
  comment_required: "comment_required",
  significance_required: "significance_required",
  own_report: "own_report",
  co_signed: "co_signed",
  not_claimed: "not_claimed",
  discrepancy_closed: "discrepancy_closed",
  not_your_report: "not_your_report",
};

async function post(url, json, errorBox) {
  const answer = await api(url, { method: "POST", json });
  if (answer.ok) return answer;
  $(errorBox).textContent = errorText(answer, "failed", CODES);
  return null;
}

function setupScore() {
  const form = $("peer-score-form");
  if (!form) return;
  const id = form.dataset.review;
  $("peer-claim").addEventListener("click", async () => {
    if (await post(`/api/peer-reviews/${id}/claim`, undefined, "peer-error")) location.reload();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = {
      score: Number(data.get("score")),
      significance: data.get("significance") || null,
      comment: data.get("comment") || "",
    };
    if (body.score === 1) body.significance = null;
    const done = await post(`/api/peer-reviews/${id}/score`, body, "peer-error");
    if (done) location.assign("/peer-reviews");
  });
}

function setupDiscrepancy() {
  const answer = $("discrepancy-answer-form");
  if (answer) {
    answer.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { answer: $("discrepancy-answer-text").value };
      const url = `/api/peer-reviews/${answer.dataset.review}/answer`;
      if (await post(url, body, "discrepancy-error")) location.reload();
    });
  }
  const close = $("discrepancy-close-form");
  if (close) {
    close.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { outcome: $("discrepancy-outcome-text").value };
      const url = `/api/peer-reviews/${close.dataset.review}/close`;
      if (await post(url, body, "discrepancy-error")) location.reload();
    });
  }
}

setupScore();
setupDiscrepancy();
