"""PDF/A-2b for the report PDF: what reportlab leaves out, added as one update before signing.

ISO 19005-2 level B asks for embedded fonts (pdf.py embeds the TrueType font and names no other),
XMP metadata saying ``pdfaid:part=2, conformance=B`` and agreeing with the document information
dictionary (6.6.2.3), and an output intent with an ICC profile for the DeviceRGB colours used
(6.2.3). The profile is LittleCMS's built-in sRGB, generated through Pillow (no profile file of
unclear licence ships with teleread). pyHanko writes the update, and keeps the XMP and the
information dictionary in step in the signature's updates that follow.
"""

from __future__ import annotations

import io
from datetime import datetime
from functools import cache

from PIL import ImageCms
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.metadata import model

PDFA_PART = "2"
PDFA_CONFORMANCE = "B"
SRGB = "sRGB IEC61966-2.1"
_PDFAID = model.NS["pdfaid"]
_NOT_IN_XMP = ("/Producer", "/Trapped", "/Keywords")
"""Information entries reportlab writes that the XMP would not echo: dropped (pyHanko then
writes the producer to both)."""


@cache
def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _output_intent(writer: IncrementalPdfFileWriter) -> generic.IndirectObject:
    profile = generic.StreamObject(
        generic.DictionaryObject({generic.NameObject("/N"): generic.NumberObject(3)}),
        stream_data=srgb_profile(),
    )
    profile.compress()
    intent = generic.DictionaryObject(
        {
            generic.NameObject("/Type"): generic.NameObject("/OutputIntent"),
            generic.NameObject("/S"): generic.NameObject("/GTS_PDFA1"),
            generic.NameObject("/OutputConditionIdentifier"): generic.TextStringObject(SRGB),
            generic.NameObject("/Info"): generic.TextStringObject(SRGB),
            generic.NameObject("/DestOutputProfile"): writer.add_object(profile),
        }
    )
    return writer.add_object(intent)


def as_pdfa(
    pdf: bytes, *, title: str, author: str, subject: str, creator: str, created: datetime
) -> bytes:
    """``pdf`` (from reportlab, unsigned) with the PDF/A-2b identification and output intent."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    info = writer.trailer["/Info"]
    for key in _NOT_IN_XMP:
        info.pop(key, None)
    writer.mark_update(writer.trailer.raw_get("/Info"))
    meta = writer.document_meta
    meta.title, meta.author, meta.subject, meta.creator = title, author, subject, creator
    meta.created = created
    meta.xmp_extra = [
        model.XmpStructure.of(
            (model.ExpandedName(_PDFAID, "part"), model.XmpValue(PDFA_PART)),
            (model.ExpandedName(_PDFAID, "conformance"), model.XmpValue(PDFA_CONFORMANCE)),
        )
    ]
    writer.root[generic.NameObject("/OutputIntents")] = generic.ArrayObject(
        [_output_intent(writer)]
    )
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
