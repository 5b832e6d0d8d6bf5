"""The reviewer's signature (审核医师, issue 19): a second PAdES signature added to the report PDF
the writer already signed, as an incremental update covering it, visible in the field
``render_report_pdf(doc, review_field=True)`` reserved under the 报告医师 lines.

The first signature keeps validating: the second only fills a signature field (and, with
``long_term``, adds its own DSS and document timestamp), which pyHanko's diff analysis counts
as form filling, poppler's pdfsig as a later revision. The appearance names the reviewer and the
review time in the facility's zone, drawn by reportlab in the report's font (embedded, as
PDF/A asks) and imported by pyHanko as the field's appearance.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from cryptography import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import enumerate_sig_fields
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen import canvas

from ..signing import LongTerm, PrivateKey, sign_pdf
from ..signing.signatures import Appearance
from .document import ReportDocument
from .pdf import LABELS, _font
from .print_text import print_time
from .review_field import FIELD_NAME

#: Without a reserved field (a PDF rendered before review was asked for), the signature goes
#: in the bottom margin of the last page, above the page number: one line.
MARGIN_BOX = (20 * mm, 13.5 * mm, 150 * mm, 17.5 * mm)


def review_lines(doc: ReportDocument) -> list[str]:
    """What the reviewer's signature shows: "审核医师（电子签名）：王强 主任医师" and
    "审核时间：2026-11-24 09:10:00（北京时间）" (English on an English report)."""
    if not doc.reviewer_name or doc.reviewed_at is None:
        raise ValueError("the document names no reviewer and review time")
    labels = LABELS.get(doc.language, LABELS["zh_CN"])
    colon = labels["colon"]
    stamp = print_time(doc.reviewed_at, doc.timezone, doc.language)
    return [
        f"{labels['reviewer']}{colon}{doc.reviewer_name} {doc.reviewer_title}".strip(),
        f"{labels['reviewed_at']}{colon}{stamp}",
    ]


def review_appearance(doc: ReportDocument, width: float, height: float) -> bytes:
    """A one-page PDF of the field's size with the reviewer's lines: two lines where they
    fit, else one; the font shrinks to the width."""
    lines = review_lines(doc)
    if height < 24:
        lines = ["  ".join(lines)]
    font = _font()
    size = min(10.5, (height - 2) / (1.3 * len(lines)))
    widest = max(stringWidth(line, font, size) for line in lines)
    if widest > width - 2:
        size *= (width - 2) / widest
    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, pagesize=(width, height), initialFontName=font)
    page.setFont(font, size)
    leading = size * 1.3
    top = (height + leading * len(lines)) / 2 - size
    for number, line in enumerate(lines):
        page.drawString(0, top - number * leading, line)
    page.showPage()
    page.save()
    return buffer.getvalue()


def _reserved_box(pdf: bytes) -> tuple[float, float, float, float] | None:
    """The empty review field's rectangle, if the PDF was rendered with one."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    for name, value, reference in enumerate_sig_fields(reader, filled_status=False):
        if name == FIELD_NAME and value is None:
            field = reference.get_object()
            widget = field if "/Rect" in field else field["/Kids"][0].get_object()
            x1, y1, x2, y2 = (float(v) for v in widget["/Rect"])
            return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)
    return None


def cosign_pdf(
    signed_pdf: bytes,
    doc: ReportDocument,
    key: PrivateKey,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate] = (),
    *,
    long_term: LongTerm | None = None,
) -> bytes:
    """``signed_pdf`` (the writer's signed report) with the reviewer's visible PAdES signature
    appended as an incremental update; the writer's signature and its LTV evidence stay as
    they were.

    ``doc`` is the report version as signed, with ``reviewer_name``, ``reviewer_title`` and
    ``reviewed_at`` filled (the time the appearance prints, in ``doc.timezone``); ``key``,
    ``certificate`` and ``chain`` the reviewer's unlocked identity; ``long_term`` as for the
    writer's signature (``reports.signing._Evidence.long_term()``): B-LTA, else B-B. The
    signature fills the field ``render_report_pdf(doc, review_field=True)`` reserved; a PDF
    rendered without one gets it in the bottom margin of its last page. CPU work: call it in
    a worker thread. Raises ValueError when ``doc`` names no reviewer or review time."""
    lines = review_lines(doc)
    box = _reserved_box(signed_pdf) or MARGIN_BOX
    width, height = box[2] - box[0], box[3] - box[1]
    appearance = Appearance(FIELD_NAME, review_appearance(doc, width, height), box=box)
    return sign_pdf(
        signed_pdf,
        key,
        certificate,
        chain,
        reason=f"Imaging report {doc.verification_code} reviewed",
        location=doc.centre_name,
        signer_name=doc.reviewer_name or lines[0],
        long_term=long_term,
        appearance=appearance,
    )
