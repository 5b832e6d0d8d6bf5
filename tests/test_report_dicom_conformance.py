"""The signed report's DICOM objects pass dciodvfy (Debian dicom3tools) without a warning.

A real signed report (a consortium CA, a signer's certificate, the PAdES-signed PDF and the
detached CMS signature over the canonical form) is built into its Encapsulated PDF and its
Comprehensive SR (PS3.16 TID 2000), written to disk and checked by the validator a hospital's
IT would run. Any "Warning" or "Error" line fails the test and is printed.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest

from service.cli.main import main
from service.demo.synthetic import dataset_bytes
from service.reports.canonical import canonical_bytes
from service.reports.dicom_objects import encapsulated_pdf, report_sr
from service.reports.files import read_report_file
from service.reports.pdf import render_report_pdf
from service.reports.person_names import checked_person_name, dicom_person_name
from service.settings import load_settings
from service.signing import ConsortiumCA, new_signing_key, sign_pdf
from service.signing.signatures import sign_detached
from service.storage import facilities as facility_store
from service.storage import users as user_store
from service.storage.opening import open_database
from tests.test_report_documents import SIGNED_AT, reference, sample

from .backends import database_url_at

STANDARD_SCHEMES = {"DCM", "LN", "SCT", "RFC5646", "ISO3166_1"}


@dataclasses.dataclass(frozen=True)
class Signed:
    pdf: bytes
    canonical: bytes
    signature: bytes


def signed(doc, tmp_path: Path) -> Signed:
    """The report as signing leaves it: signed PDF, canonical form and its CMS signature."""
    ca = ConsortiumCA.load_or_create(tmp_path / "pki", "Test consortium CA")
    key = new_signing_key()
    cert = ca.issue(
        key.public_key(),
        common_name=doc.signer_name,
        organisation=doc.centre_name,
        user_id=7,
        now=SIGNED_AT,
        crl_url="http://teleread.test/api/ca/crl",
    )
    pdf = sign_pdf(
        render_report_pdf(doc),
        key,
        cert,
        [ca.certificate],
        reason="report",
        location=doc.centre_name,
        signer_name=doc.signer_name,
    )
    canonical = canonical_bytes(doc)
    return Signed(pdf, canonical, sign_detached(canonical, key, cert, [ca.certificate]))


def dciodvfy(ds: pydicom.Dataset | bytes, path: Path) -> list[str]:
    """dciodvfy's Warning and Error lines for one object (it writes them on stderr)."""
    path.write_bytes(ds if isinstance(ds, bytes) else dataset_bytes(ds))
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    return [line for line in lines if "Warning" in line or "Error" in line]


def walk(items):
    for item in items:
        yield item
        yield from walk(item.get("ContentSequence", []))


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> dict[str, pydicom.Dataset]:
    """A critical Chinese report (v1) and its English correction by "Dr Li" (v2)."""
    tmp = tmp_path_factory.mktemp("conformance")
    first_doc = sample(critical=True, refer=True)
    first = signed(first_doc, tmp / "first")
    ref = reference()
    first_sr = report_sr(first_doc, first.canonical, first.signature, ref)
    second_doc = sample(
        version=2, supersedes_version=1, signer_name="Dr Li", language="en", quality=None
    )
    second = signed(second_doc, tmp / "second")
    return {
        "first_pdf": encapsulated_pdf(first.pdf, first_doc, ref),
        "first_sr": first_sr,
        "second_pdf": encapsulated_pdf(second.pdf, second_doc, ref),
        "second_sr": report_sr(
            second_doc, second.canonical, second.signature, ref, previous=first_sr
        ),
    }


def test_dciodvfy_reports_nothing_on_the_sr_and_the_encapsulated_pdf(objects, tmp_path):
    """Both objects of both versions validate with no warning and no error."""
    assert shutil.which("dciodvfy"), "dciodvfy missing: scripts/install-system-deps.sh --test"
    found = {name: dciodvfy(ds, tmp_path / f"{name}.dcm") for name, ds in objects.items()}
    for name, lines in found.items():
        for line in lines:
            print(f"{name}: {line}")
    assert found == {name: [] for name in objects}


def test_the_sr_declares_tid_2000_and_uses_standard_codes_only(objects):
    """Root "Diagnostic Imaging Report" (LOINC 18748-4) with TID 2000 / DCMR declared, and no
    private coding scheme anywhere in the tree."""
    sr = objects["first_sr"]
    assert sr.ConceptNameCodeSequence[0].CodeValue == "18748-4"
    template = sr.ContentTemplateSequence[0]
    assert (template.MappingResource, template.TemplateIdentifier) == ("DCMR", "2000")
    schemes = set()
    for item in walk(sr.ContentSequence):
        schemes.add(item.ConceptNameCodeSequence[0].CodingSchemeDesignator)
        for code in item.get("ConceptCodeSequence", []):
            schemes.add(code.CodingSchemeDesignator)
    assert schemes <= STANDARD_SCHEMES, schemes
    modifiers = {
        i.ConceptNameCodeSequence[0].CodeMeaning: i.ConceptCodeSequence[0].CodeValue
        for i in sr.ContentSequence
        if i.RelationshipType == "HAS CONCEPT MOD"
    }
    assert modifiers == {
        "Language of Content Item and Descendants": "zh",
        "Acquisition Device Type": "CT",
        "Target Region": "816094009",  # CHEST
    }


def test_the_signer_is_verifying_observer_and_author_with_han_and_pinyin(objects):
    """李明 signs as "Li^Ming=李^明=lǐ^míng" in the header and in the observation context."""
    sr = objects["first_sr"]
    expected = "Li^Ming=李^明=lǐ^míng"
    assert str(sr.VerifyingObserverSequence[0].VerifyingObserverName) == expected
    assert sr.VerifyingObserverSequence[0].VerificationDateTime.startswith("20261123225451")
    assert str(sr.AuthorObserverSequence[0].PersonName) == expected
    names = [str(i.PersonName) for i in walk(sr.ContentSequence) if "PersonName" in i]
    assert names == [expected]
    assert sr.SpecificCharacterSet == "ISO_IR 192"
    english = objects["second_sr"]
    assert str(english.VerifyingObserverSequence[0].VerifyingObserverName) == "Li^^^Dr"


def test_the_sr_still_carries_a_signed_form_that_reads_back(objects):
    """The canonical form and its CMS signature come back byte for byte from the SR."""
    for name in ("first_sr", "second_sr"):
        read = read_report_file(dataset_bytes(objects[name]))
        assert read.kind == "dicom-sr" and read.canonical and read.signature
        assert read.verification_code == "K7Q2M-9XABC-DEFGH-JKLMN"


def test_an_image_without_type_2_patient_attributes_still_gives_valid_objects(tmp_path):
    """A modality that left out the birth date and sex (type 2) does not break the SR; both
    objects carry the attributes empty and dciodvfy finds nothing wrong."""
    ref = reference()
    for keyword in ("PatientBirthDate", "PatientSex", "ReferringPhysicianName"):
        delattr(ref, keyword)
    doc = sample(findings="", recommendation="", clinical_question="", quality=None)
    sr = report_sr(doc, canonical_bytes(doc), b"signature", ref)
    pdf = encapsulated_pdf(b"%PDF-1.4 minimal", doc, ref)
    assert (sr.PatientBirthDate, sr.PatientSex, pdf.PatientSex) == ("", "", "")
    assert dciodvfy(sr, tmp_path / "sr.dcm") == dciodvfy(pdf, tmp_path / "pdf.dcm") == []


def test_a_patient_name_without_a_caret_gets_one(tmp_path):
    """Clinics send "张伟" (the demo does too); the objects say "张伟^", the same name in the
    form dciodvfy does not call retired."""
    doc = sample()
    ref = reference(name="张伟")
    sr = report_sr(doc, canonical_bytes(doc), b"signature", ref)
    pdf = encapsulated_pdf(b"%PDF-1.4 minimal", doc, ref)
    assert str(sr.PatientName) == str(pdf.PatientName) == "张伟^"
    assert dciodvfy(sr, tmp_path / "sr.dcm") == dciodvfy(pdf, tmp_path / "pdf.dcm") == []


def test_a_stored_dicom_name_wins_over_the_derived_one(tmp_path):
    """Dr Li's display name has no Han characters; the DICOM name set for the account gives the
    SR its ideographic and phonetic groups, and still passes dciodvfy."""
    doc = sample(signer_name="Dr Li", signer_dicom_name="Li^Ming^^Dr=李^明=lǐ^míng")
    sr = report_sr(doc, canonical_bytes(doc), b"signature", reference())
    assert str(sr.VerifyingObserverSequence[0].VerifyingObserverName) == doc.signer_dicom_name
    assert str(sr.AuthorObserverSequence[0].PersonName) == doc.signer_dicom_name
    assert dciodvfy(sr, tmp_path / "sr.dcm") == []


def test_teleread_user_dicom_name_sets_and_clears_the_name(tmp_path, monkeypatch):
    """The CLI stores a checked PN for the account, refuses a malformed one, and '' clears it."""
    monkeypatch.setenv("TELEREAD_DATA_DIR", str(tmp_path / "var"))
    if url := database_url_at(tmp_path / "var" / "teleread.db"):
        monkeypatch.setenv("TELEREAD_DATABASE_URL", url)
    database = open_database(load_settings())
    try:
        centre = database.write_sync(
            facility_store.add_facility,
            name="Centre",
            kind="regional",
            aet="CENTRE",
            timezone="Asia/Shanghai",
        )
        user_id = database.write_sync(
            user_store.add_user,
            username="dr.li",
            password_hash="x",
            role="specialist",
            facility_id=centre,
            display_name="Dr Li",
        )
        assert main(["user", "dicom-name", "dr.li", "Li^Ming=李^明=lǐ^míng"]) == 0
        stored = database.read_sync(user_store.signer_names, user_id)["dicom_name"]
        assert stored == "Li^Ming=李^明=lǐ^míng"
        assert main(["user", "dicom-name", "dr.li", "A=B=C=D"]) == 1  # four groups
        assert main(["user", "dicom-name", "nobody", "A^B"]) == 1
        assert main(["user", "dicom-name", "dr.li", ""]) == 0
        assert database.read_sync(user_store.signer_names, user_id)["dicom_name"] == ""
    finally:
        database.close()


class TestDicomPersonName:
    @pytest.mark.parametrize(
        ("display", "pn"),
        [
            ("李明", "Li^Ming=李^明=lǐ^míng"),
            ("王小明", "Wang^Xiaoming=王^小明=wáng^xiǎomíng"),
            ("欧阳娜娜", "Ouyang^Nana=欧阳^娜娜=ōuyáng^nànà"),  # compound surname
            ("曾志伟", "Zeng^Zhiwei=曾^志伟=zēng^zhìwěi"),  # surname reading, not céng
            ("Dr Li", "Li^^^Dr"),
            ("Li Ming", "Li^Ming"),
            ("dr_li", "dr_li^"),
            ("Wang^XiaoDong=王^小東=", "Wang^XiaoDong=王^小東="),  # already a PN
        ],
    )
    def test_display_names_become_dicom_person_names(self, display, pn):
        """Han names get alphabetic, ideographic and phonetic groups; others keep their words."""
        assert dicom_person_name(display) == pn

    def test_no_component_group_is_longer_than_a_pn_allows(self):
        """64 characters per group (PS3.5 6.2), however long the display name."""
        pn = dicom_person_name("Dr " + "Abcdefghij " * 10)
        assert pn.startswith("Abcdefghij^Abcdefghij^") and len(pn) == 64

    @pytest.mark.parametrize(
        "bad",
        ["A=B=C=D", "A^B^C^D^E^F", "X" * 65 + "^Y", "Li\\Ming", "Li\tMing"],
    )
    def test_a_malformed_stored_name_is_refused(self, bad):
        """Four groups, six components, a 65-character group, a backslash, a tab."""
        with pytest.raises(ValueError, match="DICOM person name"):
            checked_person_name(bad)
