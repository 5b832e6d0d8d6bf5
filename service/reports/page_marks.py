"""What every page of the printed report carries besides the story: the page number as
"第 1 页 / 共 2 页" on a report of several pages, a running line naming the patient on the pages
after the first (a loose second sheet still says whose it is), and on a preliminary report
(初步报告, issue 19) a mark at the top of every page and across it.

reportlab knows the page count only once the story is laid out, so pdf.py lays it out once to
count and, for a report of several pages, again with the total (``PageMarks.total``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm


@dataclass
class PageMarks:
    """The page callback for ``SimpleDocTemplate.build``; ``total`` None counts pages only."""

    font: str
    page_label: str  # "第 {page} 页 / 共 {total} 页"
    running_head: str
    preliminary: str  # the mark's text; empty: a final report
    watermark: str
    total: int | None = None
    pages: int = field(default=0, init=False)

    def __call__(self, canvas, document) -> None:
        self.pages = max(self.pages, document.page)
        canvas.saveState()
        if self.preliminary:
            self._preliminary(canvas)
        canvas.setFont(self.font, 8)
        canvas.setFillColor(colors.black)
        if self.total and self.total > 1:
            label = self.page_label.format(page=document.page, total=self.total)
            canvas.drawRightString(A4[0] - 20 * mm, 10 * mm, label)
        if document.page > 1 and self.running_head:
            canvas.drawString(20 * mm, 10 * mm, self.running_head)
        canvas.restoreState()

    def _preliminary(self, canvas) -> None:
        """A light mark across the page (drawn first: the text prints over it) and the words
        in red in the top margin, where the story never reaches."""
        canvas.saveState()
        canvas.setFillColor(colors.Color(0.93, 0.86, 0.86))
        canvas.setFont(self.font, 60)
        canvas.translate(A4[0] / 2, A4[1] / 2)
        canvas.rotate(40)
        canvas.drawCentredString(0, 0, self.watermark)
        canvas.restoreState()
        canvas.setFillColor(colors.red)
        canvas.setFont(self.font, 11)
        canvas.drawCentredString(A4[0] / 2, A4[1] - 12 * mm, self.preliminary)
