"""The key images of an image-and-text report (图文报告, issue 19) laid out on the A4 page.

After the report's text come up to :data:`PRINTED` figures with their captions: one across the
text's width, two side by side, three or four in a 2x2 grid. Each figure is embedded with every
pixel of its PNG (reportlab stores the decoded pixels Flate-compressed: lossless; a test reads
them back with ``pdfimages``). A report without key images gets nothing here, so its PDF is
laid out exactly as before.
"""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from PIL import Image as PILImage
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Image, KeepTogether, Paragraph, Table, TableStyle

from .document import ReportDocument, ReportFigure

PRINTED = 4
TEXT_WIDTH = 170 * mm  # pdf.py: A4 less 20 mm margins
GAP = 4 * mm
MAX_HEIGHT = {1: 120 * mm, 2: 80 * mm}  # by figures per row
HEADINGS = {"en": "Key images", "zh_CN": "关键图像"}
FIGURE = {"en": "Figure {n}", "zh_CN": "图 {n}"}


def _image(figure: ReportFigure, width: float, max_height: float) -> Image:
    with PILImage.open(io.BytesIO(figure.png)) as probe:
        pixels_w, pixels_h = probe.size
    scale = min(width / pixels_w, max_height / pixels_h)
    return Image(io.BytesIO(figure.png), width=pixels_w * scale, height=pixels_h * scale)


def _caption(figure: ReportFigure, n: int, language: str, style) -> Paragraph:
    name = FIGURE.get(language, FIGURE["zh_CN"]).format(n=n)
    parts = [name, figure.label, figure.caption.strip()]
    return Paragraph(escape("  ".join(p for p in parts if p)), style)


def figure_flowables(doc: ReportDocument, styles: dict) -> list[Flowable]:
    """The key-image section of ``doc`` (empty without figures)."""
    figures = doc.figures[:PRINTED]
    if not figures:
        return []
    per_row = 1 if len(figures) == 1 else 2
    width = (TEXT_WIDTH - GAP * (per_row - 1)) / per_row
    cells = [
        [_image(f, width, MAX_HEIGHT[per_row]), _caption(f, n, doc.language, styles["base"])]
        for n, f in enumerate(figures, start=1)
    ]
    rows = [cells[i : i + per_row] for i in range(0, len(cells), per_row)]
    heading = Paragraph(escape(HEADINGS.get(doc.language, HEADINGS["zh_CN"])), styles["heading"])
    tables: list[Flowable] = []
    for row in rows:
        data = [[c[0] for c in row], [c[1] for c in row]]
        table = Table(data, colWidths=[width] * len(row), hAlign="LEFT")
        table.setStyle(
            TableStyle(
                [
                    ("ALIGN", (0, 0), (-1, 0), "CENTER"),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LEFTPADDING", (0, 0), (-1, -1), 0),
                    ("RIGHTPADDING", (0, 0), (-1, -1), GAP / 2 if per_row > 1 else 0),
                    ("BOTTOMPADDING", (0, 1), (-1, 1), 6),
                    ("FONT", (0, 0), (-1, -1), styles["base"].fontName),
                ]
            )
        )
        tables.append(table)
    # The heading stays with the first row of figures: never alone at the foot of a page.
    return [KeepTogether([heading, tables[0]]), *tables[1:]]
