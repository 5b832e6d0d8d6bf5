"""The signed report's documents: canonical form, PDF with QR code, DICOM PDF and SR, read back.

Run as a script (``.venv/bin/python -m tests.test_report_documents``) it renders page 1 of the
sample report to docs/screenshots/report-pdf.png.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import highdicom as hd
import pydicom
import pypdfium2
import pytest
import zxingcpp
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.fields import SigFieldSpec, append_signature_field
from pypdf import PdfReader

from service.demo.synthetic import StudySpec, dataset_bytes, make_study
from service.reports.canonical import FORMAT, canonical_bytes, parse_canonical
from service.reports.dicom_objects import CANONICAL, encapsulated_pdf, report_sr
from service.reports.dicom_objects import SIGNATURE as LEGACY_SIGNATURE
from service.reports.document import ReportDocument
from service.reports.files import read_report_file
from service.reports.pdf import _qr, render_report_pdf
from service.signing import ConsortiumCA, new_signing_key, sign_pdf

STUDY_UID = "1.2.826.0.1.3680043.8.498.4242"
SIGNED_AT = datetime(2026, 11, 23, 22, 54, 51, tzinfo=UTC)
SIGNATURE = bytes(range(256)) + b"\x00\xff detached CMS"


def sample(**changes) -> ReportDocument:
    """A realistic report: a chest CT from a township clinic read at the county centre."""
    doc = ReportDocument(
        report_id=17,
        version=1,
        supersedes_version=None,
        consultation_id=311,
        study_instance_uid=STUDY_UID,
        accession_number="QS20261120007",
        centre_name="县域影像中心",
        facility_name="青山镇卫生院",
        patient_name="王^小明",
        patient_id="QS-0042137",
        patient_sex="M",
        patient_birth_date="19580301",
        study_date="20261120",
        study_description="胸部CT平扫",
        modality="CT",
        body_part="CHEST",
        clinical_question="咳嗽两周，发热？排除肺炎。",
        findings=(
            "右肺上叶尖段见一实性结节，直径约6 mm，边界清楚。\r\n两肺门影不大，纵隔未见肿大淋巴结。"
        ),
        impression="右肺上叶小结节，考虑良性可能。",
        recommendation="建议12个月后低剂量CT复查。",
        critical=False,
        refer=False,
        quality="acceptable",
        quality_reason="轻度运动伪影",
        signer_name="李明",
        signer_title="副主任医师",
        signer_certificate_serial="5f3a9c0e11d2",
        signed_at=SIGNED_AT,
        timezone="Asia/Shanghai",
        verification_code="K7Q2M-9XABC-DEFGH-JKLMN",
        verification_url="https://teleread.example/verify/K7Q2M-9XABC-DEFGH-JKLMN",
    )
    return dataclasses.replace(doc, **changes)


def reference(charset: str = "GB18030", name: str = "王^小明") -> pydicom.Dataset:
    """An image of the study as Orthanc hands it back: bytes in the clinic's character set."""
    spec = StudySpec(
        "QS-0042137",
        name,
        "CT",
        "CHEST",
        charset=charset,
        accession_number="QS20261120007",
        study_instance_uid=STUDY_UID,
        patient_sex="M",
        patient_birth_date="19580301",
        study_description="胸部CT平扫",
    )
    return pydicom.dcmread(io.BytesIO(dataset_bytes(make_study(spec)[0])))


def round_trip(ds: pydicom.Dataset) -> pydicom.Dataset:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def page_image(pdf: bytes, scale: float = 3.0):
    document = pypdfium2.PdfDocument(pdf)
    try:
        return document[0].render(scale=scale).to_pil()
    finally:
        document.close()


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return render_report_pdf(sample())


class TestCanonical:
    def test_deterministic_and_line_endings_normalised(self):
        first = canonical_bytes(sample())
        assert first == canonical_bytes(sample())
        unix = sample(findings=sample().findings.replace("\r\n", "\n"))
        assert canonical_bytes(unix) == first
        assert b"\r" not in first and b" " not in first.split(b'"findings"')[0]

    @pytest.mark.parametrize(
        "field, value",
        [
            ("report_id", 18),
            ("version", 2),
            ("supersedes_version", 1),
            ("consultation_id", 312),
            ("study_instance_uid", STUDY_UID + ".1"),
            ("accession_number", "QS20261120008"),
            ("facility_name", "白河乡卫生院"),
            ("findings", "两肺未见异常。"),
            ("impression", "未见异常。"),
            ("recommendation", ""),
            ("critical", True),
            ("refer", True),
            ("quality", "poor"),
            ("signer_name", "李敏"),
            ("signer_certificate_serial", "5f3a9c0e11d3"),
            ("signed_at", SIGNED_AT.replace(second=52)),
            ("verification_code", "AAAAA-9XABC-DEFGH-JKLMN"),
        ],
    )
    def test_every_signed_field_changes_the_bytes(self, field, value):
        assert canonical_bytes(sample(**{field: value})) != canonical_bytes(sample())

    def test_the_patients_name_is_left_out(self):
        assert canonical_bytes(sample(patient_name="张^三")) == canonical_bytes(sample())
        assert "王" not in canonical_bytes(sample()).decode("utf-8")

    def test_parse_round_trip(self):
        fields = parse_canonical(canonical_bytes(sample(supersedes_version=1, critical=True)))
        assert fields["format"] == FORMAT == "teleread-report/1"
        assert fields["findings"].startswith("右肺上叶尖段") and "\r" not in fields["findings"]
        assert fields["supersedes_version"] == 1 and fields["critical"] is True
        assert fields["signed_at"] == "2026-11-23T22:54:51Z"
        assert fields["study_instance_uid"] == STUDY_UID and fields["consultation_id"] == 311

    @pytest.mark.parametrize(
        "data", [b"", b"\xff\xfe", b"[]", b'{"format":"teleread-report/2"}', b"not json"]
    )
    def test_anything_else_is_refused(self, data):
        with pytest.raises(ValueError):
            parse_canonical(data)


class TestPdf:
    def test_the_text_carries_the_report_in_chinese(self, pdf):
        text = pdf_text(pdf)
        for expected in (
            "县域影像中心",
            "影像诊断报告",
            "王小明",
            "QS-0042137",
            "青山镇卫生院",
            "右肺上叶尖段见一实性结节",
            "右肺上叶小结节，考虑良性可能。",
            "建议12个月后低剂量CT复查。",
            "李明",
            "K7Q2M-9XABC-DEFGH-JKLMN",
            "2026-11-24 06:54:51",  # signed 22:54:51 UTC, shown in Asia/Shanghai
            "可接受",
        ):
            assert expected in text, expected
        assert "危急值" not in text and "更正报告" not in text

    def test_the_font_is_embedded(self, pdf):
        fonts = [
            font.get_object()
            for page in PdfReader(io.BytesIO(pdf)).pages
            for font in page["/Resources"]["/Font"].values()
        ]
        # reportlab embeds TrueType subsets of up to 256 glyphs each as simple fonts.
        embedded = {
            str(f["/BaseFont"])
            for f in fonts
            if "/FontDescriptor" in f and "/FontFile2" in f["/FontDescriptor"]
        }
        assert embedded and all("WenQuanYi" in name for name in embedded), embedded

    def test_critical_and_corrected_banners(self):
        text = pdf_text(render_report_pdf(sample(critical=True, supersedes_version=1, version=2)))
        assert "危急值" in text and "更正报告：替代第 1 版" in text

    def test_english_labels(self):
        text = pdf_text(render_report_pdf(sample(language="en", critical=True, refer=True)))
        assert "Imaging report" in text and "CRITICAL FINDING" in text
        assert "Referral to a higher-level hospital" in text and "Findings" in text

    def test_dates_sex_and_study_read_as_words_not_dicom_codes(self, pdf):
        """DICOM DA "20261120" prints as 2026-11-20, sex "M" as 男 / Male, and a description
        that only repeats modality and body part is not printed twice ("CT HEAD CT HEAD")."""
        text = pdf_text(pdf)
        assert "2026-11-20" in text and not re.search(r"(?<!\w)20261120(?!\w)", text)
        assert "男 / 1958-03-01" in text
        assert "胸部CT平扫" in text and "CT 胸部" not in text and "CHEST" not in text
        english = pdf_text(
            render_report_pdf(sample(language="en", body_part="HEAD", study_description="CT HEAD"))
        )
        assert "Male / 1958-03-01" in english
        assert "CT HEAD" in english and "CT HEAD CT HEAD" not in english

    def test_no_chinese_line_starts_with_a_full_stop_or_comma(self):
        """Wrapped Chinese keeps "。" and "，" at the end of a line, never at the start of the next
        (plain wrapping put "。" first; reportlab's CJK rules did not know "，")."""
        starts = set()
        for n in range(40, 60):  # lengths that put the punctuation at each place of a line
            findings = "右" * n + "。" + "左" * 30 + "，" + "中" * 40 + "。"
            text = pdf_text(render_report_pdf(sample(findings=findings)))
            starts |= {line.strip()[:1] for line in text.splitlines() if line.strip()}
        assert not starts & {"。", "，"}

    def test_a4_with_the_code_in_the_metadata(self, pdf):
        reader = PdfReader(io.BytesIO(pdf))
        width, height = (float(x) for x in reader.pages[0].mediabox.upper_right)
        assert (round(width), round(height)) == (595, 842)
        assert reader.metadata.subject == "teleread-verification-code:K7Q2M-9XABC-DEFGH-JKLMN"
        assert read_report_file(pdf).verification_code == "K7Q2M-9XABC-DEFGH-JKLMN"

    def test_the_qr_code_decodes_to_the_verification_url(self, pdf):
        found = zxingcpp.read_barcodes(page_image(pdf))
        assert [b.text for b in found if b.format == zxingcpp.BarcodeFormat.QRCode] == [
            sample().verification_url
        ]
        assert _qr(sample().verification_url).contents[0].value == sample().verification_url

    def test_long_reports_run_onto_numbered_pages(self):
        long = "\n".join(f"第{i}层面未见明确异常密度影。" for i in range(120))
        reader = PdfReader(io.BytesIO(render_report_pdf(sample(findings=long))))
        assert len(reader.pages) >= 2
        lines = [line.strip() for line in reader.pages[1].extract_text().splitlines()]
        pages = len(reader.pages)  # the page number, drawn in the footer of every page
        assert f"第 2 页 / 共 {pages} 页" in lines or f"第2页/共{pages}页" in lines, lines

    def test_pyhanko_can_sign_it_incrementally(self, pdf, tmp_path):
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
        append_signature_field(writer, SigFieldSpec("Signature", on_page=0))
        out = io.BytesIO()
        writer.write(out)
        assert out.getvalue().startswith(pdf)  # incremental: the original bytes are kept
        ca = ConsortiumCA.load_or_create(tmp_path / "pki", "Test consortium CA")
        key = new_signing_key()
        cert = ca.issue(
            key.public_key(),
            common_name="李明",
            organisation="县域影像中心",
            user_id=7,
            now=SIGNED_AT,
            crl_url="http://teleread.test/api/ca/crl",
        )
        signed = sign_pdf(
            pdf, key, cert, [ca.certificate], reason="report", location="x", signer_name="李明"
        )
        assert signed.startswith(pdf)
        read = read_report_file(signed)
        assert read.kind == "pdf" and read.pdf == signed
        assert read.verification_code == "K7Q2M-9XABC-DEFGH-JKLMN"


class TestDicom:
    def test_encapsulated_pdf_joins_the_study_in_utf8(self, pdf):
        ref = reference("GB18030", "刘^䶮")  # U+4DAE exists in GB18030 only, not in GBK
        ds = round_trip(encapsulated_pdf(pdf, sample(), ref))
        assert ds.SpecificCharacterSet == "ISO_IR 192"
        assert str(ds.PatientName) == "刘^䶮"
        assert ds["PatientName"].value.original_string == "刘^䶮".encode()
        assert ds.StudyInstanceUID == STUDY_UID == ref.StudyInstanceUID
        for keyword in ("PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber"):
            assert ds.get(keyword) == ref.get(keyword), keyword
        assert ds.StudyDescription == "胸部CT平扫"
        assert ds.SeriesInstanceUID != ref.SeriesInstanceUID
        assert ds.SOPClassUID == pydicom.uid.EncapsulatedPDFStorage
        assert (ds.Modality, ds.Manufacturer, ds.BurnedInAnnotation) == ("DOC", "teleread", "YES")
        assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
        assert ds.ConceptNameCodeSequence[0].CodeValue == "18748-4"
        assert "K7Q2M-9XABC-DEFGH-JKLMN" in ds.DocumentTitle

    def test_encapsulated_pdf_reads_back_byte_for_byte(self, pdf):
        odd = pdf + b"\n" if len(pdf) % 2 == 0 else pdf  # odd length needs the pad removed
        for document in (pdf, odd):
            data = dataset_bytes(encapsulated_pdf(document, sample(), reference()))
            read = read_report_file(data)
            assert (read.kind, read.pdf) == ("dicom-pdf", document)
            assert read.verification_code == "K7Q2M-9XABC-DEFGH-JKLMN"

    def test_sr_carries_text_flags_canonical_form_and_signature(self):
        doc = sample(critical=True)
        canonical = canonical_bytes(doc)
        ref = reference()
        sr = round_trip(report_sr(doc, canonical, SIGNATURE, ref))
        assert sr.SpecificCharacterSet == "ISO_IR 192" and str(sr.PatientName) == "王^小明"
        assert sr.StudyInstanceUID == STUDY_UID and sr.PatientID == ref.PatientID
        assert (sr.Modality, sr.Manufacturer) == ("SR", "teleread")
        assert sr.SeriesInstanceUID != ref.SeriesInstanceUID
        assert (sr.CompletionFlag, sr.VerificationFlag) == ("COMPLETE", "VERIFIED")
        assert str(sr.VerifyingObserverSequence[0].VerifyingObserverName) == "Li^Ming=李^明=lǐ^míng"
        sections = {
            i.ConceptNameCodeSequence[0].CodeMeaning: {
                c.ConceptNameCodeSequence[0].CodeMeaning: c for c in i.ContentSequence
            }
            for i in sr.ContentSequence
            if i.ValueType == "CONTAINER"
        }
        items = {i.ConceptNameCodeSequence[0].CodeMeaning: i for i in sr.ContentSequence}
        assert sections["Findings"]["Finding"].TextValue.startswith("右肺上叶尖段见一实性结节")
        assert sections["Impressions"]["Impression"].TextValue == "右肺上叶小结节，考虑良性可能。"
        recommendations = sections["Recommendations"]
        assert recommendations["Recommendation"].TextValue == "建议12个月后低剂量CT复查。"
        assert recommendations["Patient referral"].ConceptCodeSequence[0].CodeMeaning == "No"
        assert sections["Clinical Information"]["Request"].TextValue == "咳嗽两周，发热？排除肺炎。"
        procedure = sections["Current Procedure Descriptions"]
        assert procedure["Overall study quality"].TextValue == "acceptable (轻度运动伪影)"
        critical = items["Communication of Critical Results"].ConceptCodeSequence[0]
        assert (critical.CodeValue, critical.CodingSchemeDesignator) == ("373066001", "SCT")
        read = read_report_file(dataset_bytes(sr))
        assert read.kind == "dicom-sr" and read.pdf is None
        assert read.canonical == canonical and read.signature == SIGNATURE
        assert read.verification_code == "K7Q2M-9XABC-DEFGH-JKLMN"
        evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
        assert evidence.StudyInstanceUID == STUDY_UID
        assert "PredecessorDocumentsSequence" not in sr

    def test_a_correction_references_the_previous_sr(self):
        ref = reference()
        first = report_sr(sample(), canonical_bytes(sample()), SIGNATURE, ref)
        second_doc = sample(version=2, supersedes_version=1, impression="右肺上叶小结节，随访。")
        second = round_trip(
            report_sr(second_doc, canonical_bytes(second_doc), SIGNATURE, ref, previous=first)
        )
        predecessor = second.PredecessorDocumentsSequence[0]
        assert predecessor.StudyInstanceUID == STUDY_UID
        referenced = predecessor.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
        assert referenced.ReferencedSOPInstanceUID == first.SOPInstanceUID
        assert second.SeriesNumber != first.SeriesNumber
        assert (
            parse_canonical(read_report_file(dataset_bytes(second)).canonical)["supersedes_version"]
            == 1
        )


class TestReadingFiles:
    @pytest.mark.parametrize(
        "data", [b"", b"hello", b"\x00" * 128 + b"DICM" + b"\x00" * 40, b"PK\x03\x04zip"]
    )
    def test_garbage_is_not_a_report(self, data):
        with pytest.raises(ValueError, match="not a teleread report"):
            read_report_file(data)

    def test_a_plain_image_is_not_a_report(self):
        with pytest.raises(ValueError, match="not a teleread report"):
            read_report_file(dataset_bytes(make_study(StudySpec("P1", "A^B", "CT", "HEAD"))[0]))

    def test_another_sr_is_not_a_report(self):
        sr = report_sr(sample(), canonical_bytes(sample()), SIGNATURE, reference())
        sr.ContentSequence = [  # without the two Comment items of the signed form
            i
            for i in sr.ContentSequence
            if not i.get("TextValue", "").startswith("teleread signed form")
        ]
        with pytest.raises(ValueError, match="not a teleread report"):
            read_report_file(dataset_bytes(sr))

    def test_an_sr_stored_before_tid_2000_still_reads_back(self):
        """Older SRs carried the signed form as 99TELEREAD content items; they still verify."""
        sr = report_sr(sample(), canonical_bytes(sample()), SIGNATURE, reference())
        legacy = []
        for concept, text in (
            (CANONICAL, canonical_bytes(sample()).decode("utf-8")),
            (LEGACY_SIGNATURE, base64.b64encode(SIGNATURE).decode("ascii")),
        ):
            legacy.append(hd.sr.TextContentItem(concept, text, "CONTAINS"))
        sr.ContentSequence = [
            *(
                i
                for i in sr.ContentSequence
                if "teleread signed form" not in i.get("TextValue", "")
            ),
            *legacy,
        ]
        read = read_report_file(dataset_bytes(sr))
        assert read.canonical == canonical_bytes(sample()) and read.signature == SIGNATURE


def write_screenshot(path: Path = Path("docs/screenshots/report-pdf.png")) -> None:
    """Page 1 of a corrected, critical sample report as the docs show it."""
    doc = sample(version=2, supersedes_version=1, critical=True, refer=True)
    page_image(render_report_pdf(doc), scale=1.5).save(path)


if __name__ == "__main__":
    write_screenshot()
