"""Two signatures on one report (issue 19): the writer (报告医师) signs the PDF rendered for
review, the reviewer (审核医师) co-signs it with ``cosign_pdf``: an incremental update that fills
the reserved field with a visible signature and covers the first. Checked the way a clinic's
tools would: poppler's ``pdfsig``, pyHanko's validation with diff analysis, ETSI long-term
validation after both certificates expired, and the page as pdfium draws it."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto.crl import CertificateList
from cryptography.hazmat.primitives import serialization
from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.ades import ades_lta_validation
from pyhanko.sign.validation.policy_decl import (
    LocalKnowledge,
    PdfSignatureValidationSpec,
    SignatureValidationSpec,
)
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
from pyhanko_certvalidator.registry import SimpleTrustManager
from pyhanko_certvalidator.revinfo.archival import CRLContainer
from reportlab.lib.pagesizes import A4

from service.reports.cosign import MARGIN_BOX, cosign_pdf, review_appearance
from service.reports.pdf import render_report_pdf
from service.reports.review_field import FIELD_NAME
from service.signing import (
    ConsortiumCA,
    ConsortiumTimeStamper,
    LongTerm,
    TrustStore,
    new_signing_key,
    sign_pdf,
    verify_pdf,
)
from service.signing.trust import to_asn1
from tests.test_report_documents import sample

NOW = datetime.now(UTC).replace(microsecond=0)


@dataclasses.dataclass(frozen=True)
class World:
    ca: ConsortiumCA
    trust: TrustStore
    first: bytes  # the writer's signed PDF, B-LTA
    both: bytes  # and the reviewer's signature, B-LTA
    both_plain: bytes  # the same without long-term evidence (B-B): nothing after the second
    margin: bytes  # co-signed, rendered without a reserved field


def _identity(ca: ConsortiumCA, name: str, user_id: int):
    key = new_signing_key()
    certificate = ca.issue(
        key.public_key(),
        common_name=name,
        organisation="县域影像中心",
        user_id=user_id,
        now=NOW,
        crl_url="http://teleread.test/api/ca/crl",
    )
    return key, certificate, [ca.certificate]


@pytest.fixture(scope="module")
def world(tmp_path_factory, database_backend) -> World:
    ca = ConsortiumCA.load_or_create(tmp_path_factory.mktemp("pki"), "Test consortium CA")
    trust = TrustStore((ca.certificate,), (ca.crl([], now=NOW + timedelta(seconds=1)),))
    long_term = LongTerm(ConsortiumTimeStamper(ca.timestamp_authority(None, now=NOW)), trust)
    writer, reviewer = _identity(ca, "李明", 7), _identity(ca, "王强", 8)
    doc = sample(signed_at=NOW)
    reviewed = dataclasses.replace(
        doc, reviewer_name="王强", reviewer_title="主任医师", reviewed_at=NOW + timedelta(hours=2)
    )

    def first_signature(pdf: bytes, evidence: LongTerm | None) -> bytes:
        return sign_pdf(
            pdf, *writer, reason="report", location="县域影像中心", signer_name="李明",
            long_term=evidence,
        )  # fmt: skip

    for_review = render_report_pdf(doc, review_field=True)
    first = first_signature(for_review, long_term)
    plain = first_signature(for_review, None)
    unreserved = first_signature(render_report_pdf(doc), long_term)
    return World(
        ca,
        trust,
        first,
        cosign_pdf(first, reviewed, *reviewer, long_term=long_term),
        cosign_pdf(plain, reviewed, *reviewer),
        cosign_pdf(unreserved, reviewed, *reviewer, long_term=long_term),
    )


def _tool(*command: str, pdf: bytes, directory: Path) -> str:
    path = directory / "report.pdf"
    path.write_bytes(pdf)
    return subprocess.run([*command, str(path)], capture_output=True, timeout=60).stdout.decode()


def pdfsig(pdf: bytes, directory: Path) -> dict[str, dict]:
    """pdfsig's verdict per signature field: validity, whole-file coverage, byte ranges."""
    out = _tool("pdfsig", "-nocert", pdf=pdf, directory=directory)
    found = {}
    for block in re.split(r"^Signature #\d+:", out, flags=re.M)[1:]:
        name = re.search(r"Signature Field Name: (\S+)", block).group(1)
        ranges = [(int(a), int(b)) for a, b in re.findall(r"\[(\d+) - (\d+)\]", block)]
        found[name] = {
            "valid": "Signature is Valid." in block,
            "total": "- Total document signed" in block,
            "ranges": ranges,
            "signer": re.search(r"Common Name: (.+)", block).group(1),
        }
    return found


class TestPdfsig:
    def test_both_signatures_are_valid_the_second_covering_the_first(self, world, tmp_path):
        found = pdfsig(world.both, tmp_path)
        writer, reviewer = found["TelereadSignature"], found[FIELD_NAME]
        assert writer["valid"] and reviewer["valid"], found
        assert (writer["signer"], reviewer["signer"]) == ("李明", "王强")
        stamps = sorted(v["ranges"][-1][1] for k, v in found.items() if k.startswith("Timestamp"))
        assert len(stamps) == 2  # one document timestamp each (B-LTA)
        # the reviewer's signed bytes run from 0 past the writer's signature and its evidence
        # (DSS, document timestamp); only the reviewer's own evidence comes after
        end = reviewer["ranges"][-1][1]
        assert reviewer["ranges"][0][0] == 0 and writer["ranges"][-1][1] < stamps[0] < end
        assert end < stamps[1]

    def test_without_long_term_evidence_the_second_covers_the_whole_file(self, world, tmp_path):
        found = pdfsig(world.both_plain, tmp_path)
        assert set(found) == {"TelereadSignature", FIELD_NAME}
        assert found["TelereadSignature"]["valid"] and not found["TelereadSignature"]["total"]
        assert found[FIELD_NAME]["valid"] and found[FIELD_NAME]["total"]


def _validate(world: World, pdf: bytes):
    reader = PdfFileReader(io.BytesIO(pdf))
    context = world.trust.validation_context(None)
    return [
        (s, _run(async_validate_pdf_signature(s, context, skip_diff=False)))
        for s in reader.embedded_regular_signatures
    ]


def _run(coroutine):
    return asyncio.run(coroutine)


class TestPyHanko:
    @pytest.mark.parametrize("variant", ["both", "both_plain", "margin"])
    def test_both_validate_in_order_the_first_seeing_only_form_filling(self, world, variant):
        (writer, first), (reviewer, second) = _validate(world, getattr(world, variant))
        assert writer.field_name == "TelereadSignature" and reviewer.field_name == FIELD_NAME
        assert writer.signed_revision < reviewer.signed_revision
        for status in (first, second):
            assert status.bottom_line and status.intact and status.valid and status.trusted
            assert status.docmdp_ok is not False
        assert first.modification_level == ModificationLevel.FORM_FILLING
        assert second.modification_level <= ModificationLevel.LTA_UPDATES
        assert first.signing_cert.subject.native["common_name"] == "李明"
        assert second.signing_cert.subject.native["common_name"] == "王强"

    def test_the_service_verification_accepts_the_cosigned_file(self, world):
        verdict = verify_pdf(world.both, world.trust)
        assert verdict.valid and verdict.intact and verdict.trusted and verdict.signer == "李明"
        assert verdict.reasons == ()
        assert [(c.signer, c.valid) for c in verdict.co_signers] == [("王强", True)]

    def test_content_added_after_the_co_signature_fails_both_ways(self, world):
        """An incremental update that is not a signature (a text annotation) after the
        reviewer's signature: the whole document is no longer what either signed."""
        writer = IncrementalPdfFileWriter(io.BytesIO(world.both_plain))
        page = writer.root["/Pages"]["/Kids"][0]
        note = writer.add_object(
            generic.DictionaryObject(
                {
                    generic.NameObject("/Type"): generic.NameObject("/Annot"),
                    generic.NameObject("/Subtype"): generic.NameObject("/Text"),
                    generic.NameObject("/Rect"): generic.ArrayObject(
                        [generic.FloatObject(v) for v in (10, 10, 30, 30)]
                    ),
                    generic.NameObject("/Contents"): generic.TextStringObject("changed"),
                }
            )
        )
        page.get_object()["/Annots"] = generic.ArrayObject([note])
        writer.update_container(page)
        out = io.BytesIO()
        writer.write(out)
        verdict = verify_pdf(out.getvalue(), world.trust)
        assert not verdict.valid
        assert any("co-signature of 王强" in reason for reason in verdict.reasons)

    def test_the_first_revision_is_kept_byte_for_byte(self, world):
        assert world.both.startswith(world.first)

    async def test_both_keep_long_term_validity_after_the_certificates_expired(self, world):
        """ETSI EN 319 102-1 validation a year after both certificates expired, trusting only
        the consortium CA and requiring revocation evidence: what each signature's DSS and
        document timestamp hold, plus the CA's CRL as it would be served then."""
        reader = PdfFileReader(io.BytesIO(world.both))
        assert len(reader.embedded_timestamp_signatures) == 2
        later = NOW + timedelta(days=825 + 365)
        crl = world.ca.crl([], now=later).public_bytes(serialization.Encoding.DER)
        policy = CertValidationPolicySpec(
            trust_manager=SimpleTrustManager.build(trust_roots=[to_asn1(world.ca.certificate)]),
            revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO),
        )
        knowledge = LocalKnowledge(known_crls=[CRLContainer(CertificateList.load(crl))])
        spec = PdfSignatureValidationSpec(
            SignatureValidationSpec(cert_validation_policy=policy, local_knowledge=knowledge)
        )
        timing = ValidationTimingInfo(later, later, point_in_time_validation=True)
        for signature in reader.embedded_regular_signatures:
            result = await ades_lta_validation(signature, spec, timing)
            assert result.ades_subindic.status.name == "PASSED", (
                signature.field_name,
                result.ades_subindic,
            )


def _widget(pdf: bytes):
    reader = PdfFileReader(io.BytesIO(pdf))
    last = reader.root["/Pages"]["/Count"] - 1
    page = reader.find_page_for_modification(last)[0].get_object()
    widgets = [a.get_object() for a in page.get("/Annots", [])]
    (widget,) = [w for w in widgets if w.get("/T") == FIELD_NAME]
    return last, widget


def _ink(pdf: bytes, page_index: int, rect, directory: Path) -> int:
    """Dark pixels poppler (``pdftoppm``) draws inside ``rect`` (PDF points) of the A4 page at
    144 dpi, annotation appearances included (only that part of the page is drawn)."""
    path = directory / "page.pdf"
    path.write_bytes(pdf)
    number = str(page_index + 1)
    x1, y1, x2, y2 = (round(float(v) * 2) for v in rect)  # 144 dpi: 2 pixels a point
    top = round(A4[1] * 2) - y2
    crop = ["-x", str(x1), "-y", str(top), "-W", str(x2 - x1), "-H", str(y2 - y1)]
    run = subprocess.run(
        ["pdftoppm", "-r", "144", "-gray", "-png", "-f", number, "-l", number, *crop, str(path)],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return sum(Image.open(io.BytesIO(run.stdout)).histogram()[:128])


class TestAppearance:
    def test_the_reserved_field_shows_the_reviewer_once_signed(self, world, tmp_path):
        index, widget = _widget(world.both)
        assert "/AP" in widget and int(widget["/F"]) & 4  # drawn, and printed
        assert _ink(world.first, index, widget["/Rect"], tmp_path) == 0
        assert _ink(world.both, index, widget["/Rect"], tmp_path) > 500

    def test_the_appearance_names_reviewer_and_time_in_the_facility_zone(self):
        reviewed_at = datetime(2026, 11, 24, 1, 10, tzinfo=UTC)
        doc = sample(reviewer_name="王强", reviewer_title="主任医师", reviewed_at=reviewed_at)
        text = _pdftotext(review_appearance(doc, 350, 31))
        assert "审核医师（电子签名）：王强主任医师" in text
        assert "审核时间：2026-11-2409:10:00（北京时间）" in text
        english = dataclasses.replace(doc, language="en", reviewer_name="Dr Wang")
        text = _pdftotext(review_appearance(english, 350, 31))
        assert "Reviewingspecialist(digitallysigned):DrWang主任医师" in text
        assert "Reviewedat:2026-11-2409:10:00(Asia/Shanghai,UTC+08:00)" in text

    def test_without_a_reserved_field_it_goes_in_the_last_page_margin(self, world, tmp_path):
        index, widget = _widget(world.margin)
        assert [round(float(v), 1) for v in widget["/Rect"]] == [round(v, 1) for v in MARGIN_BOX]
        assert _ink(world.margin, index, widget["/Rect"], tmp_path) > 200

    def test_every_font_is_still_embedded(self, world, tmp_path):
        rows = _tool("pdffonts", pdf=world.both, directory=tmp_path).splitlines()[2:]
        assert len(rows) >= 2 and all(row[36:].split()[-5] == "yes" for row in rows), rows

    def test_a_document_without_reviewer_is_refused(self, world):
        with pytest.raises(ValueError):
            cosign_pdf(world.first, sample(), *_identity(world.ca, "王强", 8))


def _pdftotext(pdf: bytes) -> str:
    run = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, timeout=60)
    return re.sub(r"\s+", "", run.stdout.decode("utf-8"))
