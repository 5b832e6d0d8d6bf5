"""The reviewer's signature field (审核医师, issue 19), reserved when the report is rendered for
review: an empty PAdES signature field just under the 报告医师 line, which cosign.py fills with
the reviewer's visible signature.

The story lays out a ``SignatureSlot`` of the field's size where the field goes; it notes where
on which page it landed, and ``reserve_field`` then adds the empty field there (pyHanko, one
incremental update before any signature: the field is part of what the writer signs, and the
reviewer's signature only fills it — an update pyHanko's diff analysis allows).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.fields import SigFieldSpec, VisibleSigSettings, append_signature_field
from reportlab.platypus import Flowable

FIELD_NAME = "TelereadReview"


@dataclass
class Placement:
    """Where the slot was drawn: 0-based page index and its box in PDF points."""

    page: int
    box: tuple[float, float, float, float]


class SignatureSlot(Flowable):
    """Blank space of the field's size; records its place on the page when drawn."""

    def __init__(self, width: float, height: float) -> None:
        super().__init__()
        self.width, self.height = width, height
        self.placement: Placement | None = None

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        x, y = self.canv.absolutePosition(0, 0)
        page = self.canv.getPageNumber() - 1
        self.placement = Placement(page, (x, y, x + self.width, y + self.height))


def reserve_field(pdf: bytes, placement: Placement) -> bytes:
    """``pdf`` with the empty, printable review signature field at ``placement``."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    spec = SigFieldSpec(
        FIELD_NAME,
        on_page=placement.page,
        box=tuple(round(v, 2) for v in placement.box),
        visible_sig_settings=VisibleSigSettings(print_signature=True),
    )
    append_signature_field(writer, spec)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
