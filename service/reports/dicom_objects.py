"""The signed report as DICOM, stored into the study so any PACS shows it beside the images.

Two objects in two new series of the same study: an Encapsulated PDF (PS3.3 A.45.1, the signed
PDF as the clinic reads it) and a Comprehensive SR (highdicom) whose text any SR viewer shows and
which carries the canonical form and its detached signature, so the DICOM copy can be verified
on its own (its TID 2000 content tree: sr_content.py). The signer is the author, and the
verifying observer unless a reviewer co-signed (issue 19), each as a DICOM person name with Han
and pinyin groups (person_names.py). Patient and
study modules are copied from an image of the study; text is UTF-8 (ISO_IR 192).
"""

from __future__ import annotations

from collections.abc import Sequence
from copy import deepcopy

import highdicom as hd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import EncapsulatedPDFStorage, ExplicitVRLittleEndian, generate_uid

from .document import ReportDocument
from .person_names import dicom_person_name, explicit_family_name
from .sr_content import REPORT_TITLE, report_content

MANUFACTURER = "teleread"
# Content items of SRs stored before the TID 2000 tree (read back by files.py, never written).
LEGACY_SCHEME = "99TELEREAD"
CANONICAL = hd.sr.CodedConcept("CANONICAL", LEGACY_SCHEME, "Canonical signed report")
SIGNATURE = hd.sr.CodedConcept("CMSSIG", LEGACY_SCHEME, "Detached CMS signature (base64)")
PATIENT_MODULE = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
)
STUDY_MODULE = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
)

TYPE_2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    *("StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName"),
)


def _copy_modules(target: Dataset, reference: Dataset) -> None:
    for keyword in (*PATIENT_MODULE, *STUDY_MODULE):
        if keyword in reference:
            element = reference.data_element(keyword)
            # Person names are re-made from text, so they are written in UTF-8, not the
            # reference's character set.
            value = str(element.value) if element.VR == "PN" else element.value
            setattr(target, keyword, value)
    for keyword in ("StudyDate", "StudyTime", "StudyID", "AccessionNumber"):
        if keyword not in target:
            setattr(target, keyword, "")
    if "ReferringPhysicianName" not in target:
        target.ReferringPhysicianName = ""


def utf8_reference(reference: Dataset) -> Dataset:
    """The reference with its text decoded (GB18030, GBK...) and re-labelled UTF-8, and the
    type 2 patient and study attributes a careless modality left out present but empty (the
    report's objects must carry them, and highdicom reads them)."""
    copy = deepcopy(reference)
    copy.decode()  # text values become str, decoded with the reference's own charset
    for element in copy:
        if element.VR == "PN" and element.value is not None and element.VM == 1:
            element.value = explicit_family_name(str(element.value))
    for keyword in TYPE_2:
        if keyword not in copy:
            setattr(copy, keyword, "")
    copy.SpecificCharacterSet = "ISO_IR 192"
    return copy


def _dicom_datetime(doc: ReportDocument) -> tuple[str, str]:
    return doc.signed_at.strftime("%Y%m%d"), doc.signed_at.strftime("%H%M%S")


def encapsulated_pdf(signed_pdf: bytes, doc: ReportDocument, reference: Dataset) -> Dataset:
    """The signed PDF wrapped as an Encapsulated PDF instance of the study (modality DOC)."""
    reference = utf8_reference(reference)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    _copy_modules(ds, reference)
    date, time = _dicom_datetime(doc)
    ds.SOPClassUID = EncapsulatedPDFStorage
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "DOC"
    ds.SeriesNumber = 9900 + doc.version
    ds.InstanceNumber = 1
    ds.SeriesDescription = f"teleread report v{doc.version}"
    ds.Manufacturer = MANUFACTURER
    ds.ConversionType = "WSD"
    ds.ContentDate, ds.ContentTime = date, time
    ds.AcquisitionDateTime = date + time
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = f"Imaging report {doc.verification_code} v{doc.version}"
    ds.ConceptNameCodeSequence = [_code_item(REPORT_TITLE)]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = signed_pdf + (b"\0" if len(signed_pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(signed_pdf)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _code_item(concept: hd.sr.CodedConcept) -> Dataset:
    item = Dataset()
    item.CodeValue = concept.value
    item.CodingSchemeDesignator = concept.scheme_designator
    item.CodeMeaning = concept.meaning
    return item


def _author(person_name: str, organisation: str) -> Dataset:
    """The signer as the document's author (PS3.3 C.17.2.2, Author Observer Sequence)."""
    author = Dataset()
    author.ObserverType = "PSN"
    author.PersonName = person_name
    author.PersonIdentificationCodeSequence = []
    author.InstitutionName = organisation
    author.InstitutionCodeSequence = []
    return author


def report_sr(
    doc: ReportDocument,
    canonical: bytes,
    signature: bytes,
    reference: Dataset,
    evidence: Sequence[Dataset] = (),
    previous: Dataset | None = None,
) -> Dataset:
    """A Comprehensive SR with the report's text, the canonical form and its signature.

    Completion and verification follow the two-level sign-off (issue 19): a preliminary report
    (初步报告) is PARTIAL, UNVERIFIED and PRELIMINARY with no verifying observer; a reviewed one
    is verified by the reviewer (Verifying Observer Sequence, at ``reviewed_at``) and authored
    by the writer (Author Observer Sequence), both named in the content tree; a report with
    one signer is verified and authored by that signer, as before.

    ``previous`` (the SR of the version this one corrects) fills the Predecessor Documents
    Sequence, so a PACS links the versions.
    """
    reference = utf8_reference(reference)
    observer = doc.signer_dicom_name or dicom_person_name(doc.signer_name)
    reviewer = _reviewer(doc)
    final = not doc.preliminary
    verifier = reviewer or observer
    sr = hd.sr.ComprehensiveSR(
        evidence=[reference, *evidence],
        content=report_content(doc, observer, canonical, signature, reviewer),
        series_instance_uid=generate_uid(),
        series_number=9800 + doc.version,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=final,
        is_final=final,
        is_verified=final,
        institution_name=doc.centre_name,
        verifying_observer_name=verifier if final else None,
        verifying_organization=doc.centre_name if final else None,
        previous_versions=[previous] if previous is not None else None,
        record_evidence=True,
    )
    sr.SpecificCharacterSet = "ISO_IR 192"
    for keyword in ("PatientName", "ReferringPhysicianName"):
        if keyword in sr and sr.data_element(keyword).value is not None:
            setattr(sr, keyword, str(sr.data_element(keyword).value))
    sr.SeriesDescription = f"teleread report v{doc.version}"
    date, time = _dicom_datetime(doc)
    sr.ContentDate, sr.ContentTime = date, time
    if final:
        verified_at = doc.reviewed_at if reviewer and doc.reviewed_at else doc.signed_at
        sr.VerifyingObserverSequence[0].VerificationDateTime = verified_at.strftime(
            "%Y%m%d%H%M%S%z"
        )
    sr.AuthorObserverSequence = [_author(observer, doc.centre_name)]
    return sr


def _reviewer(doc: ReportDocument) -> str | None:
    """The reviewer's DICOM PN once the report was reviewed (issue 19); None before, and on
    a preliminary report (released before review: nobody verified it)."""
    if not doc.reviewer_name or doc.preliminary:
        return None
    return doc.reviewer_dicom_name or dicom_person_name(doc.reviewer_name)
