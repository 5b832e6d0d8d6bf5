"""The SR of a report with two-level sign-off (issue 19): a reviewed report names both
observers (the writer as author and "Recording", the reviewer as verifying observer and
"Verifying"); a preliminary one (初步报告) is PARTIAL, UNVERIFIED and PRELIMINARY. Both pass
dciodvfy without a warning, like the single-signer SR (test_report_dicom_conformance.py)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pydicom
import pytest

from service.reports.dicom_objects import encapsulated_pdf, report_sr
from tests.test_report_dicom_conformance import dciodvfy, signed, walk
from tests.test_report_documents import SIGNED_AT, reference, sample

WRITER = "Li^Ming=李^明=lǐ^míng"
REVIEWER = "Wang^Qiang=王^强=wáng^qiáng"
REVIEWED_AT = SIGNED_AT + timedelta(hours=1, minutes=15)


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> dict[str, pydicom.Dataset]:
    tmp = tmp_path_factory.mktemp("review-sr")
    reviewed_doc = sample(reviewer_name="王强", reviewer_title="主任医师", reviewed_at=REVIEWED_AT)
    preliminary_doc = sample(preliminary=True, critical=True)
    ref = reference()
    found = {}
    for name, doc in (("reviewed", reviewed_doc), ("preliminary", preliminary_doc)):
        done = signed(doc, tmp / name)
        found[f"{name}_sr"] = report_sr(doc, done.canonical, done.signature, ref)
        found[f"{name}_pdf"] = encapsulated_pdf(done.pdf, doc, ref)
    return found


def _observers(sr: pydicom.Dataset) -> list[tuple[str, str | None]]:
    """(person name, role in procedure) of each person observer in the content tree."""
    items = list(walk(sr.ContentSequence))
    found = []
    for index, item in enumerate(items):
        if "PersonName" not in item:
            continue
        role = None
        for later in items[index + 1 :]:
            if "PersonName" in later or later.RelationshipType != "HAS OBS CONTEXT":
                break
            if later.ConceptNameCodeSequence[0].CodeMeaning.endswith("Role in this Procedure"):
                role = later.ConceptCodeSequence[0].CodeMeaning
        found.append((str(item.PersonName), role))
    return found


def test_dciodvfy_reports_nothing(objects, tmp_path):
    found = {name: dciodvfy(ds, tmp_path / f"{name}.dcm") for name, ds in objects.items()}
    for name, lines in found.items():
        for line in lines:
            print(f"{name}: {line}")
    assert found == {name: [] for name in objects}


def test_a_reviewed_report_is_verified_by_the_reviewer_and_authored_by_the_writer(objects):
    sr = objects["reviewed_sr"]
    flags = (sr.CompletionFlag, sr.VerificationFlag, sr.PreliminaryFlag)
    assert flags == ("COMPLETE", "VERIFIED", "FINAL")
    (verifier,) = sr.VerifyingObserverSequence
    assert str(verifier.VerifyingObserverName) == REVIEWER
    assert verifier.VerificationDateTime.startswith(REVIEWED_AT.strftime("%Y%m%d%H%M%S"))
    assert [str(a.PersonName) for a in sr.AuthorObserverSequence] == [WRITER]
    assert _observers(sr) == [(WRITER, "Recording"), (REVIEWER, "Verifying")]


def test_a_preliminary_report_is_partial_and_unverified(objects):
    sr = objects["preliminary_sr"]
    flags = (sr.CompletionFlag, sr.VerificationFlag, sr.PreliminaryFlag)
    assert flags == ("PARTIAL", "UNVERIFIED", "PRELIMINARY")
    assert not sr.get("VerifyingObserverSequence")
    assert [str(a.PersonName) for a in sr.AuthorObserverSequence] == [WRITER]
    assert _observers(sr) == [(WRITER, None)]


def test_a_reviewer_on_a_preliminary_report_verifies_nothing(tmp_path):
    """Released before review: even with a reviewer already assigned, nobody verified it."""
    doc = sample(preliminary=True, reviewer_name="王强", reviewed_at=REVIEWED_AT)
    done = signed(doc, tmp_path)
    sr = report_sr(doc, done.canonical, done.signature, reference())
    assert (sr.CompletionFlag, sr.VerificationFlag) == ("PARTIAL", "UNVERIFIED")
    assert _observers(sr) == [(WRITER, None)]


def test_a_single_signer_report_is_unchanged(tmp_path):
    doc = sample()
    done = signed(doc, tmp_path)
    sr = report_sr(doc, done.canonical, done.signature, reference())
    assert (sr.CompletionFlag, sr.VerificationFlag, sr.PreliminaryFlag) == (
        "COMPLETE",
        "VERIFIED",
        "FINAL",
    )
    assert str(sr.VerifyingObserverSequence[0].VerifyingObserverName) == WRITER
    assert _observers(sr) == [(WRITER, None)]
    assert dataclasses.replace(doc).reviewer_name == ""
