"""The signed report as DICOM, stored into the study so any PACS shows it beside the images.

Two objects in two new series of the same study: an Encapsulated PDF (PS3.3 A.45.1, the signed
PDF as the clinic reads it) and a Comprehensive SR (highdicom) whose text any SR viewer shows and
which carries the canonical form and its detached signature, so the DICOM copy can be verified
on its own. Patient and study modules are copied from an image of the study; text is UTF-8.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from copy import deepcopy

import highdicom as hd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import EncapsulatedPDFStorage, ExplicitVRLittleEndian, generate_uid

from .document import ReportDocument

MANUFACTURER = "teleread"
SCHEME = "99TELEREAD"
CANONICAL = hd.sr.CodedConcept("CANONICAL", SCHEME, "Canonical signed report")
SIGNATURE = hd.sr.CodedConcept("CMSSIG", SCHEME, "Detached CMS signature (base64)")
VERIFY_CODE = hd.sr.CodedConcept("VERIFYCODE", SCHEME, "Verification code")
CRITICAL = hd.sr.CodedConcept("CRITICAL", SCHEME, "Critical finding")
REFER = hd.sr.CodedConcept("REFER", SCHEME, "Referral to a higher-level hospital recommended")
QUALITY = hd.sr.CodedConcept("QUALITY", SCHEME, "Image quality")
REPORT_TITLE = hd.sr.CodedConcept("18748-4", "LN", "Diagnostic imaging report")
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


def _utf8_reference(reference: Dataset) -> Dataset:
    """The reference with its text decoded (GB18030, GBK...) and re-labelled UTF-8."""
    copy = deepcopy(reference)
    copy.decode()  # text values become str, decoded with the reference's own charset
    for element in copy:
        if element.VR == "PN" and element.value is not None and element.VM == 1:
            element.value = str(element.value)
    copy.SpecificCharacterSet = "ISO_IR 192"
    return copy


def _person_name(name: str) -> str:
    """A DICOM person name: "Li Ming" -> "Li^Ming"; a one-part name gets its trailing caret."""
    name = name.strip().replace(" ", "^")
    return name if "^" in name else f"{name}^"


def _dicom_datetime(doc: ReportDocument) -> tuple[str, str]:
    return doc.signed_at.strftime("%Y%m%d"), doc.signed_at.strftime("%H%M%S")


def encapsulated_pdf(signed_pdf: bytes, doc: ReportDocument, reference: Dataset) -> Dataset:
    """The signed PDF wrapped as an Encapsulated PDF instance of the study (modality DOC)."""
    reference = _utf8_reference(reference)
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


def _text_items(doc: ReportDocument, canonical: bytes, signature: bytes) -> list:
    contains = hd.sr.RelationshipTypeValues.CONTAINS
    items = []
    for name, text in (
        (codes.DCM.Finding, doc.findings),
        (codes.DCM.Impression, doc.impression),
        (codes.DCM.Recommendation, doc.recommendation),
    ):
        if text.strip():
            items.append(
                hd.sr.TextContentItem(name=name, value=text.strip(), relationship_type=contains)
            )
    items += _flag_items(doc)
    items += [
        hd.sr.TextContentItem(VERIFY_CODE, doc.verification_code, contains),
        hd.sr.TextContentItem(CANONICAL, canonical.decode("utf-8"), contains),
        hd.sr.TextContentItem(SIGNATURE, base64.b64encode(signature).decode("ascii"), contains),
    ]
    return items


def _flag_items(doc: ReportDocument) -> list:
    """Critical finding and referral as coded yes/no (a viewer shows them; a PACS can query
    them), image quality as text with its reason."""
    contains = hd.sr.RelationshipTypeValues.CONTAINS
    items: list = [
        hd.sr.CodeContentItem(concept, codes.SCT.Yes if flag else codes.SCT.No, contains)
        for concept, flag in ((CRITICAL, doc.critical), (REFER, doc.refer))
    ]
    if doc.quality:
        reason = f" ({doc.quality_reason.strip()})" if doc.quality_reason.strip() else ""
        items.append(hd.sr.TextContentItem(QUALITY, f"{doc.quality}{reason}", contains))
    return items


def report_sr(
    doc: ReportDocument,
    canonical: bytes,
    signature: bytes,
    reference: Dataset,
    evidence: Sequence[Dataset] = (),
    previous: Dataset | None = None,
) -> Dataset:
    """A Comprehensive SR with the report's text, the canonical form and its signature.

    ``previous`` (the SR of the version this one corrects) fills the Predecessor Documents
    Sequence, so a PACS links the versions.
    """
    reference = _utf8_reference(reference)
    container = hd.sr.ContainerContentItem(name=REPORT_TITLE)
    container.ContentSequence = _text_items(doc, canonical, signature)
    sr = hd.sr.ComprehensiveSR(
        evidence=[reference, *evidence],
        content=container,
        series_instance_uid=generate_uid(),
        series_number=9800 + doc.version,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=True,
        is_verified=True,
        institution_name=doc.centre_name,
        verifying_observer_name=_person_name(doc.signer_name),
        verifying_organization=doc.centre_name,
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
    return sr
