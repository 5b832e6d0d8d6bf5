// teleread — the report editor's list of key images (issue 19, 图文报告): what the reader marked
// in the viewer beside it (thumbnail as it will be printed, caption, remove), refreshed when the
// viewer says one was marked. The PDF prints the first `printed`; the list says so when more.

import { $, api, el, errorText, t } from "./common.js";

const root = document.getElementById("report-editor");
const url = `/api/consultations/${root.dataset.consultationId}/report/key-images`;

function show(answer) {
  const list = $("key-images");
  const items = answer.items;
  root.dataset.keyImages = String(items.length);
  $("key-images-count").textContent = items.length ? `(${items.length})` : "";
  $("key-images-over").hidden = items.length <= answer.printed;
  $("key-images-over").textContent = t("key_images_over", { printed: answer.printed });
  if (!items.length) {
    list.replaceChildren(el("li", { className: "muted", text: t("key_images_none") }));
    return;
  }
  list.replaceChildren(
    ...items.map((item, index) => {
      const remove = el("button", { type: "button", className: "button button-small", text: t("key_image_remove") });
      remove.addEventListener("click", () => removeImage(item.id));
      return el(
        "li",
        { className: "key-image", dataset: { keyImageId: String(item.id), printed: String(index < answer.printed) } },
        el("img", { src: item.image, alt: item.caption || t("key_image_alt", { n: index + 1 }), loading: "lazy" }),
        el("span", { className: "key-image-caption", text: item.caption || t("key_image_no_caption") }),
        remove,
      );
    }),
  );
}

async function load() {
  const answer = await api(url);
  if (answer.ok) show(answer.data);
  else $("key-images-error").textContent = errorText(answer, "key_images_failed");
}

async function removeImage(id) {
  const answer = await api(`${url}/${id}`, { method: "DELETE" });
  if (answer.ok) {
    $("key-images-error").textContent = "";
    show(answer.data);
  } else {
    $("key-images-error").textContent = errorText(answer, "key_images_failed", { not_claim_holder: "key_images_not_yours", report_signed: "key_images_signed" });
  }
}

window.addEventListener("message", (event) => {
  if (event.origin === window.location.origin && event.data && event.data.type === "teleread:key-images") load();
});

load();
