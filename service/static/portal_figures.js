// teleread — the portal's key images (issue 19, 图文报告): a signed version's figures with their
// captions, as its PDF prints them, shown under the report's row on demand (one scoped, audited
// call per version opened; kept open across the list's refreshes without asking again).

import { api, el, errorText, t } from "./common.js";

const opened = new Map(); // "consultation/version" -> the figures answer

function key(item) {
  return `${item.consultation_id}/${item.version}`;
}

function figuresRow(item, answer) {
  const cell = el("td", { colSpan: 6 });
  if (!answer.items.length) {
    cell.append(el("p", { className: "muted", text: t("no_key_images") }));
  } else {
    cell.append(
      el(
        "ul",
        { className: "key-images portal-key-images" },
        ...answer.items.map((figure) =>
          el(
            "li",
            { className: "key-image", dataset: { position: String(figure.position) } },
            el("img", { src: figure.image, alt: figure.caption || t("key_image_alt", { n: figure.position }) }),
            el("span", { className: "key-image-caption", text: [figure.label, figure.caption].filter(Boolean).join(" · ") }),
          ),
        ),
      ),
    );
  }
  return el("tr", { className: "portal-figures", dataset: { consultationId: String(item.consultation_id) } }, cell);
}

/** The rows for one report: its own, and its figures' row when the reader opened them. */
export function withFigures(item, tr) {
  const answer = opened.get(key(item));
  return answer ? [tr, figuresRow(item, answer)] : [tr];
}

/** The "Key images" button of a report's row: shows or hides the figures under it. */
export function figuresButton(item, showError) {
  const button = el("button", { type: "button", className: "button button-small portal-key-images-button", text: t("key_images"), "aria-expanded": String(opened.has(key(item))) });
  button.addEventListener("click", async () => {
    const tr = button.closest("tr");
    if (opened.has(key(item))) {
      opened.delete(key(item));
      tr.nextElementSibling?.classList.contains("portal-figures") && tr.nextElementSibling.remove();
      button.setAttribute("aria-expanded", "false");
      return;
    }
    const answer = await api(`/api/consultations/${item.consultation_id}/report/versions/${item.version}/figures`);
    if (!answer.ok) {
      showError(errorText(answer, "action_failed"));
      return;
    }
    opened.set(key(item), answer.data);
    // A live update may have drawn the list again while the figures were on their way: the
    // row clicked is gone then, and its figures go under the row that replaced it (unless that
    // drawing already put them there).
    const current = button.isConnected ? tr : rowNow(item);
    if (!current) return;
    if (!current.nextElementSibling?.classList.contains("portal-figures")) {
      current.after(figuresRow(item, answer.data));
    }
    current.querySelector(".portal-key-images-button")?.setAttribute("aria-expanded", "true");
  });
  return button;
}

/** The report's row as the list shows it now. */
function rowNow(item) {
  return document.querySelector(
    `tr.portal-row[data-consultation-id="${item.consultation_id}"][data-version="${item.version}"]`,
  );
}
