"""The report as a PDF (reportlab), ready for the PAdES signature added afterwards by pyHanko.

Chinese text needs a font the reader has: a TrueType CJK font (WenQuanYi Zen Hei, installed by
scripts/install-system-deps.sh) is embedded, subsetted; without it reportlab's built-in
``STSong-Light`` CID font is named instead (readers substitute a system font).
"""

from __future__ import annotations

import io
import logging
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib import textsplit as _textsplit
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus import paragraph as _paragraph

from .archival import as_pdfa
from .document import ReportDocument
from .page_marks import PageMarks
from .pdf_figures import figure_flowables
from .print_text import examination, print_date, print_sex, print_time
from .review_field import SignatureSlot, reserve_field

log = logging.getLogger(__name__)

CJK_FONT_FILES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
)
FONT = "TelereadCJK"
FALLBACK_FONT = "STSong-Light"

BODY_PARTS_ZH = {
    "HEAD": "头颅",
    "BRAIN": "颅脑",
    "NECK": "颈部",
    "CHEST": "胸部",
    "ABDOMEN": "腹部",
    "PELVIS": "盆腔",
    "SPINE": "脊柱",
    "CSPINE": "颈椎",
    "TSPINE": "胸椎",
    "LSPINE": "腰椎",
    "SHOULDER": "肩关节",
    "HIP": "髋关节",
    "KNEE": "膝关节",
    "HAND": "手部",
    "FOOT": "足部",
    "EXTREMITY": "四肢",
    "BREAST": "乳腺",
    "HEART": "心脏",
    "WHOLEBODY": "全身",
}

LABELS = {
    "zh_CN": {
        "title": "影像诊断报告",
        "patient": "患者",
        "patient_id": "患者ID",
        "sex_age": "性别/出生日期",
        "study": "检查",
        "study_date": "检查日期",
        "accession": "检查号",
        "facility": "申请机构",
        "question": "临床问题",
        "findings": "影像所见",
        "impression": "诊断意见",
        "recommendation": "建议",
        "critical": "危急值：请立即处理并确认",
        "refer": "建议转上级医院",
        "quality": "图像质量",
        "signer": "报告医师（电子签名）",
        "signed_at": "签名时间",
        "reviewer": "审核医师（电子签名）",
        "reviewed_at": "审核时间",
        "colon": "：",
        "page": "第 {page} 页 / 共 {total} 页",
        "preliminary": "初步报告 PRELIMINARY — 待审核",
        "recognised": "本检查结果在医联体内互认（{exam}）",
        "watermark": "初步报告",
        "corrected": "更正报告：替代第 {n} 版",
        "verify": "验证码",
        "verify_hint": "扫描二维码或访问网址验证本报告的真实性与完整性",
        "version": "版本",
        "quality_names": {"good": "良好", "acceptable": "可接受", "poor": "差"},
        "sex_names": {"M": "男", "F": "女", "O": "其他", "U": "未知"},
        # As the catalogue (messages.po) words them for the worklist.
        "body_parts": BODY_PARTS_ZH,
    },
    "en": {
        "title": "Imaging report",
        "patient": "Patient",
        "patient_id": "Patient ID",
        "sex_age": "Sex / birth date",
        "study": "Study",
        "study_date": "Study date",
        "accession": "Accession",
        "facility": "Requesting facility",
        "question": "Clinical question",
        "findings": "Findings",
        "impression": "Impression",
        "recommendation": "Recommendation",
        "critical": "CRITICAL FINDING: act on it now and acknowledge",
        "refer": "Referral to a higher-level hospital recommended",
        "quality": "Image quality",
        "signer": "Reporting specialist (digitally signed)",
        "signed_at": "Signed at",
        "reviewer": "Reviewing specialist (digitally signed)",
        "reviewed_at": "Reviewed at",
        "colon": ": ",
        "page": "Page {page} of {total}",
        "preliminary": "PRELIMINARY — awaiting review",
        "recognised": "Recognised within the consortium for {exam}",
        "watermark": "PRELIMINARY",
        "corrected": "CORRECTED REPORT: replaces version {n}",
        "verify": "Verification code",
        "verify_hint": "Scan the QR code or open the address to check this report is genuine",
        "version": "Version",
        "quality_names": {"good": "good", "acceptable": "acceptable", "poor": "poor"},
        "sex_names": {"M": "Male", "F": "Female", "O": "Other", "U": "Unknown"},
        "body_parts": {},
    },
}


def _font() -> str:
    """Register (once) and name the font used for every text of the report."""
    if FONT in pdfmetrics.getRegisteredFontNames():
        return FONT
    for path in CJK_FONT_FILES:
        if path.exists():
            pdfmetrics.registerFont(TTFont(FONT, str(path), subfontIndex=0))
            return FONT
    if FALLBACK_FONT not in pdfmetrics.getRegisteredFontNames():
        log.warning("no CJK TrueType font found; report PDFs will not embed their font")
        pdfmetrics.registerFont(UnicodeCIDFont(FALLBACK_FONT))
    return FALLBACK_FONT


#: Chinese full-width punctuation that may not start a line. reportlab's CJK wrap knows "。" and
#: "、" but not "，" "：" "；" "！" "？" "）" "》" (its list is Japanese), so a Chinese line could
#: start with "，". Both of its wraps (one text run; several) read a module-level copy of the
#: string, hence extended in both modules, once.
_CHINESE_CANNOT_START = "，：；！？）》〉”’"
for _module in (_textsplit, _paragraph):
    if not set(_CHINESE_CANNOT_START) <= set(_module.ALL_CANNOT_START):
        _module.ALL_CANNOT_START += _CHINESE_CANNOT_START


def _styles(font: str, cjk: bool = False) -> dict[str, ParagraphStyle]:
    """``cjk``: Chinese line breaking (reportlab's CJK wrap keeps "。" and "，" off the start of a
    line, where plain wrapping put them)."""
    base = ParagraphStyle(
        "base", fontName=font, fontSize=10.5, leading=15, wordWrap="CJK" if cjk else None
    )
    return {
        "base": base,
        "centre": ParagraphStyle("centre", base, fontSize=15, leading=20, alignment=1),
        "facility": ParagraphStyle("facility", base, fontSize=12, leading=17, alignment=1),
        "title": ParagraphStyle("title", base, fontSize=18, leading=24, alignment=1),
        "heading": ParagraphStyle(
            "heading", base, fontSize=11.5, leading=17, spaceBefore=8, textColor=colors.navy
        ),
        "banner": ParagraphStyle(
            "banner", base, fontSize=12, leading=17, textColor=colors.white, alignment=1
        ),
        "small": ParagraphStyle("small", base, fontSize=8.5, leading=11),
    }


def _cell_font(styles: dict[str, ParagraphStyle]) -> tuple:
    """A table sets its cells' font even around paragraphs: Helvetica by default, which would
    then be named (not embedded) in the PDF, against PDF/A."""
    return ("FONT", (0, 0), (-1, -1), styles["base"].fontName)


def _para(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def _banner(text: str, colour: colors.Color, styles: dict[str, ParagraphStyle]) -> Table:
    table = Table([[_para(text, styles["banner"])]], colWidths=[170 * mm])
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, -1), colour),
                ("PADDING", (0, 0), (-1, -1), 5),
                _cell_font(styles),
            ]
        )
    )
    return table


def _name(dicom_name: str) -> str:
    """ "WANG^XIAOMING" -> "WANG XIAOMING"; "王^小明" -> "王小明" (no space in Chinese names)."""
    name = dicom_name.split("=")[0].strip("^ ")
    wide = any("\u4e00" <= ch <= "\u9fff" for ch in name)
    return name.replace("^", "" if wide else " ")


def _patient_block(doc: ReportDocument, labels: dict, styles: dict) -> Table:
    sex = print_sex(doc.patient_sex, labels["sex_names"])
    sex_birth = " / ".join(x for x in (sex, print_date(doc.patient_birth_date)) if x)
    body_part = labels["body_parts"].get(doc.body_part, doc.body_part)
    study = examination(doc.modality, doc.body_part, body_part, doc.study_description)
    cells = [
        [labels["patient"], _name(doc.patient_name), labels["patient_id"], doc.patient_id],
        [labels["sex_age"], sex_birth, labels["study_date"], print_date(doc.study_date)],
        [labels["study"], study, labels["accession"], doc.accession_number],
        [labels["facility"], doc.facility_name, labels["version"], str(doc.version)],
    ]
    rows = [[_para(str(c), styles["base"]) for c in row] for row in cells]
    table = Table(rows, colWidths=[31 * mm, 54 * mm, 28 * mm, 57 * mm])
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                _cell_font(styles),
                ("BACKGROUND", (0, 0), (0, -1), colors.whitesmoke),
                ("BACKGROUND", (2, 0), (2, -1), colors.whitesmoke),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table


def _qr(url: str) -> Drawing:
    widget = QrCodeWidget(url, barLevel="M")
    x1, y1, x2, y2 = widget.getBounds()
    size = 28 * mm
    drawing = Drawing(size, size, transform=[size / (x2 - x1), 0, 0, size / (y2 - y1), 0, 0])
    drawing.initialFontName = _font()  # a drawing starts in Helvetica too (it draws no text)
    drawing.add(widget)
    return drawing


def _signatures(doc: ReportDocument, labels: dict, styles: dict, slot: Flowable | None) -> list:
    """报告医师 and, once reviewed, 审核医师, each with the signature time in the facility's
    zone; ``slot``: the space reserved for the reviewer's visible signature (review_field.py),
    just under the 报告医师 lines."""
    colon = labels["colon"]

    def person(label: str, name: str, title: str) -> Paragraph:
        return _para(f"{label}{colon}{name} {title}".strip(), styles["base"])

    def time(label: str, moment: datetime) -> Paragraph:
        stamp = print_time(moment, doc.timezone, doc.language)
        return _para(f"{label}{colon}{stamp}", styles["base"])

    lines: list = [
        person(labels["signer"], doc.signer_name, doc.signer_title),
        time(labels["signed_at"], doc.signed_at),
    ]
    if slot is not None:
        lines.append(slot)
    elif doc.reviewer_name:
        lines.append(person(labels["reviewer"], doc.reviewer_name, doc.reviewer_title))
        if doc.reviewed_at is not None:
            lines.append(time(labels["reviewed_at"], doc.reviewed_at))
    return lines


def _footer(doc: ReportDocument, labels: dict, styles: dict, slot: Flowable | None) -> Table:
    colon = labels["colon"]
    signer = [
        *_signatures(doc, labels, styles, slot),
        _para(f"{labels['verify']}{colon}{doc.verification_code}", styles["heading"]),
        _para(f"{labels['verify_hint']}{colon}\n{doc.verification_url}", styles["small"]),
    ]
    table = Table([[signer, _qr(doc.verification_url)]], colWidths=[138 * mm, 32 * mm])
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEABOVE", (0, 0), (-1, 0), 0.8, colors.black),
                _cell_font(styles),
            ]
        )
    )
    return table


def _story(doc: ReportDocument, labels: dict, styles: dict, slot: Flowable | None) -> list:
    story: list = [
        # The header: the reporting centre, and the facility the report is issued to.
        _para(doc.centre_name, styles["centre"]),
        _para(doc.facility_name, styles["facility"]),
        _para(labels["title"], styles["title"]),
    ]
    story.append(Spacer(1, 4 * mm))
    if doc.supersedes_version:
        story.append(
            _banner(labels["corrected"].format(n=doc.supersedes_version), colors.darkorange, styles)
        )
        story.append(Spacer(1, 3 * mm))
    if doc.critical:
        story.append(_banner(labels["critical"], colors.red, styles))
        story.append(Spacer(1, 3 * mm))
    story.append(_patient_block(doc, labels, styles))
    sections = [
        (labels["question"], doc.clinical_question),
        (labels["findings"], doc.findings),
        (labels["impression"], doc.impression),
        (labels["recommendation"], doc.recommendation),
    ]
    for heading, text in sections:
        if text.strip():
            story += [_para(heading, styles["heading"]), _para(text.strip(), styles["base"])]
    notes = []
    if doc.recognised:
        body_part = labels["body_parts"].get(doc.body_part, doc.body_part)
        notes.append(
            labels["recognised"].format(exam=" ".join(x for x in (doc.modality, body_part) if x))
        )
    if doc.refer:
        notes.append(labels["refer"])
    if doc.quality:
        quality = labels["quality_names"].get(doc.quality, doc.quality)
        reason = f" ({doc.quality_reason})" if doc.quality_reason else ""
        notes.append(f"{labels['quality']}{labels['colon']}{quality}{reason}")
    for note in notes:
        story.append(_para(note, styles["base"]))
    story += figure_flowables(doc, styles)  # key images (图文报告, issue 19); none: nothing added
    story += [Spacer(1, 8 * mm), _footer(doc, labels, styles, slot)]
    return story


def _marks(doc: ReportDocument, labels: dict, font: str, total: int | None) -> PageMarks:
    colon = labels["colon"]
    head = [
        doc.centre_name,
        _name(doc.patient_name),
        f"{labels['patient_id']}{colon}{doc.patient_id}" if doc.patient_id else "",
        f"{labels['accession']}{colon}{doc.accession_number}" if doc.accession_number else "",
    ]
    return PageMarks(
        font,
        page_label=labels["page"],
        running_head=" · ".join(x for x in head if x),
        preliminary=labels["preliminary"] if doc.preliminary else "",
        watermark=labels["watermark"],
        total=total,
    )


#: The reviewer's field (review_field.py): as wide as the signer's lines, two lines high.
SLOT_SIZE = (124 * mm, 11 * mm)


def render_report_pdf(doc: ReportDocument, *, review_field: bool = False) -> bytes:
    """The unsigned A4 PDF of one report version, PDF/A-2b (archival.py).

    ``review_field``: the report goes to a reviewer (审核医师, issue 19): an empty signature
    field is reserved under the 报告医师 lines, which ``cosign.cosign_pdf`` fills with the
    reviewer's visible signature. Without it, a reviewer already on the document prints as a
    line of text like the signer."""
    font = _font()
    labels = LABELS.get(doc.language, LABELS["zh_CN"])
    styles = _styles(font, cjk=labels is LABELS["zh_CN"])
    about = {
        "title": f"{labels['title']} {doc.verification_code}",
        "author": doc.signer_name,
        "subject": f"teleread-verification-code:{doc.verification_code}",
        "creator": "teleread",
    }

    def build(total: int | None) -> tuple[bytes, PageMarks, SignatureSlot | None]:
        slot = SignatureSlot(*SLOT_SIZE) if review_field else None
        marks = _marks(doc, labels, font, total)
        buffer = io.BytesIO()
        template = SimpleDocTemplate(
            buffer,
            pagesize=A4,
            leftMargin=20 * mm,
            rightMargin=20 * mm,
            topMargin=18 * mm,
            bottomMargin=18 * mm,
            initialFontName=font,  # else each page starts in Helvetica, a font no PDF embeds
            **about,
        )
        template.build(_story(doc, labels, styles, slot), onFirstPage=marks, onLaterPages=marks)
        return buffer.getvalue(), marks, slot

    pdf, marks, slot = build(None)
    if marks.pages > 1:  # laid out again, now that "of N" is known
        pdf, _, slot = build(marks.pages)
    pdf = as_pdfa(pdf, created=doc.signed_at, **about)
    if slot is not None:
        if slot.placement is None:
            raise RuntimeError("the review signature field was not laid out")
        pdf = reserve_field(pdf, slot.placement)
    return pdf
