"""The printed report as Chinese clinics expect it (issue 19 item 3), read back with poppler's
``pdftotext`` page by page: sex and dates in Chinese form, times in the facility's zone with the
zone named, the examination named once, 报告医师 and 审核医师 with their times, the centre's and
facility's header, and "第 1 页 / 共 2 页" on reports of several pages; English equivalents."""

from __future__ import annotations

import io
import re
import subprocess
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader

from service.reports.pdf import render_report_pdf
from service.reports.print_text import examination, print_time
from service.reports.review_field import FIELD_NAME
from tests.test_report_documents import sample

REVIEWED_AT = datetime(2026, 11, 24, 1, 10, 0, tzinfo=UTC)
LONG = "\n".join(f"第{i}层面未见明确异常密度影。" for i in range(120))


def pages(pdf: bytes) -> list[str]:
    """Each page's text as pdftotext reads it, whitespace removed (it spaces CJK unevenly)."""
    count = len(PdfReader(io.BytesIO(pdf)).pages)
    texts = []
    for number in range(1, count + 1):
        run = subprocess.run(
            ["pdftotext", "-f", str(number), "-l", str(number), "-", "-"],
            input=pdf,
            capture_output=True,
            timeout=60,
            check=True,
        )
        texts.append(re.sub(r"\s+", "", run.stdout.decode("utf-8")))
    return texts


def text(pdf: bytes) -> str:
    return "".join(pages(pdf))


@pytest.fixture(scope="module")
def reviewed() -> str:
    return text(
        render_report_pdf(
            sample(reviewer_name="王强", reviewer_title="主任医师", reviewed_at=REVIEWED_AT)
        )
    )


class TestChinesePage:
    def test_header_names_the_centre_then_the_facility(self, reviewed):
        assert reviewed.startswith("县域影像中心青山镇卫生院影像诊断报告")

    @pytest.mark.parametrize(
        "sex, word", [("M", "男"), ("F", "女"), ("O", "其他"), ("", "未知"), ("X", "未知")]
    )
    def test_sex_in_chinese(self, sex, word):
        assert f"性别/出生日期{word}/1958-03-01" in text(render_report_pdf(sample(patient_sex=sex)))

    def test_dates_in_one_form_and_times_in_beijing_time(self, reviewed):
        assert "检查日期2026-11-20" in reviewed and "日期20261120" not in reviewed
        # signed 22:54:51 UTC and reviewed 01:10 UTC, printed in the facility's zone
        assert "签名时间：2026-11-2406:54:51（北京时间）" in reviewed
        assert "审核时间：2026-11-2409:10:00（北京时间）" in reviewed

    def test_both_physicians_in_order(self, reviewed):
        signer = reviewed.index("报告医师（电子签名）：李明副主任医师")
        assert reviewed.index("审核医师（电子签名）：王强主任医师") > signer

    def test_no_reviewer_line_before_review(self):
        assert "审核" not in text(render_report_pdf(sample()))

    def test_the_examination_is_named_once(self, reviewed):
        assert reviewed.count("胸部CT平扫") == 1 and "CT胸部" not in reviewed

    def test_a_single_page_carries_no_page_number(self, reviewed):
        assert "第1页" not in reviewed


class TestZones:
    def test_another_zone_is_named_with_its_offset(self):
        at = datetime(2026, 11, 23, 22, 54, 51, tzinfo=UTC)
        assert (
            print_time(at, "Asia/Urumqi", "zh_CN")
            == "2026-11-24 04:54:51（Asia/Urumqi，UTC+06:00）"
        )
        assert (
            print_time(at, "Asia/Shanghai", "en")
            == "2026-11-24 06:54:51 (Asia/Shanghai, UTC+08:00)"
        )
        assert print_time(at, "", "zh_CN") == "2026-11-23 22:54:51（UTC）"
        assert print_time(at, "Not/AZone", "en") == "2026-11-23 22:54:51 (UTC)"

    @pytest.mark.parametrize(
        "parts, printed",
        [
            (("CT", "HEAD", "HEAD", "CT HEAD"), "CT HEAD"),
            (("CT", "HEAD", "HEAD", "ct  head"), "CT HEAD"),
            (("CT", "CHEST", "胸部", "胸部CT平扫"), "胸部CT平扫"),
            (("CT", "CHEST", "胸部", "平扫"), "CT 胸部 平扫"),
            (("CR", "SKULL", "SKULL", "CRANIAL VIEWS"), "CR SKULL CRANIAL VIEWS"),
            (("MR", "HEAD", "HEAD", "MR head without contrast"), "MR head without contrast"),
            (("CT", "", "", ""), "CT"),
        ],
    )
    def test_examination_names(self, parts, printed):
        assert examination(*parts) == printed


class TestEnglishPage:
    def test_english_equivalents(self):
        doc = sample(
            language="en",
            patient_sex="",
            reviewer_name="Dr Wang",
            reviewer_title="Chief",
            reviewed_at=REVIEWED_AT,
            body_part="HEAD",
            study_description="CT HEAD",
        )
        printed = text(render_report_pdf(doc))
        assert "Sex/birthdateUnknown/1958-03-01" in printed
        assert "Signedat:2026-11-2406:54:51(Asia/Shanghai,UTC+08:00)" in printed
        assert "Reviewingspecialist(digitallysigned):DrWangChief" in printed
        assert "Reviewedat:2026-11-2409:10:00(Asia/Shanghai,UTC+08:00)" in printed
        assert printed.count("CTHEAD") == 1


class TestSeveralPages:
    def test_every_page_numbered_of_the_total_with_a_running_head(self):
        texts = pages(render_report_pdf(sample(findings=LONG)))
        assert len(texts) >= 2
        for number, page in enumerate(texts, start=1):
            assert f"第{number}页/共{len(texts)}页" in page, page[-80:]
        for page in texts[1:]:
            assert "县域影像中心·王小明·患者ID：QS-0042137·检查号：QS20261120007" in page

    def test_english_pages(self):
        texts = pages(render_report_pdf(sample(findings=LONG, language="en")))
        for number, page in enumerate(texts, start=1):
            assert f"Page{number}of{len(texts)}" in page


class TestReviewField:
    def test_reserved_on_the_signer_page_under_the_reporting_physician(self):
        pdf = render_report_pdf(sample(findings=LONG), review_field=True)
        reader = PdfReader(io.BytesIO(pdf))
        fields = reader.get_fields()
        assert fields is not None and fields[FIELD_NAME]["/FT"] == "/Sig"
        assert "/V" not in fields[FIELD_NAME]  # empty until the reviewer signs
        last = reader.pages[-1]
        (widget,) = [a.get_object() for a in last["/Annots"]]
        assert widget["/T"] == FIELD_NAME and int(widget["/F"]) & 4  # printed
        x1, y1, x2, y2 = (float(v) for v in widget["/Rect"])
        found: dict[str, float] = {}

        def visit(text, cm, tm, font, size):
            for label in ("签名时间", "验证码"):
                if label in text:
                    found[label] = tm[5] * cm[3] + cm[5]

        last.extract_text(visitor_text=visit)
        assert found["验证码"] < y1 < y2 < found["签名时间"], (found, (x1, y1, x2, y2))
        assert x2 - x1 > 300 and 25 < y2 - y1 < 40

    def test_without_it_there_is_no_form(self):
        assert PdfReader(io.BytesIO(render_report_pdf(sample()))).get_fields() is None


class TestPreliminary:
    """A stat or urgent report released before review (初步报告) says so on every page."""

    def test_every_page_is_marked(self):
        texts = pages(render_report_pdf(sample(findings=LONG, preliminary=True)))
        assert len(texts) >= 3
        for page in texts:
            assert "初步报告PRELIMINARY—待审核" in page, page[:80]

    def test_english_marks(self):
        texts = pages(render_report_pdf(sample(findings=LONG, preliminary=True, language="en")))
        for page in texts:
            assert "PRELIMINARY—awaitingreview" in page and "待审核" not in page

    def test_a_final_report_is_not_marked(self):
        texts = pages(render_report_pdf(sample(findings=LONG)))
        assert not any("初步报告" in page or "PRELIMINARY" in page for page in texts)

    def test_the_mark_keeps_every_font_embedded(self, tmp_path):
        path = tmp_path / "report.pdf"
        path.write_bytes(render_report_pdf(sample(preliminary=True), review_field=True))
        run = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, timeout=60)
        rows = run.stdout.splitlines()[2:]
        assert rows and all(row[36:].split()[-5] == "yes" for row in rows), rows
