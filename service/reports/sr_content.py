"""The report's SR content tree, as PS3.16 TID 2000 "Basic Diagnostic Imaging Report" lays it out.

Root CONTAINER (LOINC 18748-4, CID 7000) declaring TID 2000 / DCMR; language of content
(TID 1204); observation context (TID 1001/1002/1003: the signer as person observer); then one
section CONTAINER per heading of CID 7001 holding TID 2002 narrative items of CID 7002. Every
code is DCM, LOINC or SNOMED CT: dciodvfy (and any PACS) knows them, where a private coding
scheme is an unrecognised term (and a private data element an unrecognised tag). What has no
standard code (the verification code, the signed form and its signature) is a Comment whose
text says what it is; docs/reports.md has the table.
"""

from __future__ import annotations

import base64
import re
from functools import cache

import highdicom as hd
from pydicom.sr.codedict import Code, Collection, codes

from .document import ReportDocument

CONTAINS = hd.sr.RelationshipTypeValues.CONTAINS
CONCEPT_MOD = hd.sr.RelationshipTypeValues.HAS_CONCEPT_MOD
TEMPLATE = "2000"
REPORT_TITLE = codes.LN.DiagnosticImagingReport  # 18748-4, CID 7000
CRITICAL = codes.LN.CommunicationOfCriticalResults  # 73568-8
REFERRAL = hd.sr.CodedConcept("3457005", "SCT", "Patient referral")
STUDY_QUALITY = codes.DCM.OverallStudyQuality  # 122739
LANGUAGES = {
    "zh_CN": (
        hd.sr.CodedConcept("zh", "RFC5646", "Chinese"),
        hd.sr.CodedConcept("CN", "ISO3166_1", "China"),
    ),
    "en": (hd.sr.CodedConcept("en", "RFC5646", "English"), None),
}
# Acquisition Device Type (CID 29: the modality's DCM code) and Target Region (CID 4031: the
# SNOMED code PS3.16 Annex L gives a Body Part Examined term), looked up in pydicom's tables.
REGION_TERMS = {  # Body Part Examined terms that are not the region's meaning run together
    "CSPINE": "CERVICALSPINE",
    "TSPINE": "THORACICSPINE",
    "LSPINE": "LUMBARSPINE",
    "ABDOMENPELVIS": "ABDOMENANDPELVIS",
    "CHESTABDOMEN": "CHESTANDABDOMEN",
}
# The signed form rides in two Comment items, told apart by these prefixes (files.py reads them).
CANONICAL_PREFIX = "teleread signed form, canonical JSON: "
SIGNATURE_PREFIX = "teleread signed form, detached CMS signature (base64): "


def _yes_no(flag: bool) -> hd.sr.CodedConcept:
    return codes.SCT.Yes if flag else codes.SCT.No


def _language(language: str) -> list:
    """TID 1204, with the country as its concept modifier where it says more (zh -> CN)."""
    name, country = LANGUAGES.get(language, LANGUAGES["zh_CN"])
    items = hd.sr.LanguageOfContentItemAndDescendants(name)
    if country is not None:
        items[0].ContentSequence = [
            hd.sr.CodeContentItem(codes.DCM.CountryOfLanguage, country, CONCEPT_MOD)
        ]
    return list(items)


def _person(person_name: str, organisation: str, role: Code | None = None):
    """TID 1002 for one physician (TID 1003), with their role in the report where two are."""
    person = hd.sr.PersonObserverIdentifyingAttributes(
        name=person_name,
        organization_name=organisation or None,
        role_in_organization=codes.SCT.Physician,
        role_in_procedure=role,
    )
    return hd.sr.ObserverContext(
        observer_type=codes.DCM.Person, observer_identifying_attributes=person
    )


def _observer(person_name: str, organisation: str, reviewer_name: str | None = None) -> list:
    """TID 1001 with the person observers (TID 1002, 1-n): the physician who signed; with a
    reviewer (审核医师, issue 19), the writer as "Recording" and the reviewer as "Verifying"
    (CID 7453)."""
    if reviewer_name is None:
        context = _person(person_name, organisation)
        return list(hd.sr.ObservationContext(observer_person_context=context))
    writer = _person(person_name, organisation, codes.DCM.Recording)
    reviewer = _person(reviewer_name, organisation, codes.DCM.Verifying)
    return [*hd.sr.ObservationContext(observer_person_context=writer), *reviewer]


@cache
def _device_types() -> dict[str, Code]:
    """CID 29 by modality (built on first use: pydicom's context groups take ~0.5 s)."""
    return {code.value: code for code in Collection("CID29").concepts.values()}


@cache
def _regions() -> dict[str, Code]:
    """CID 4031 by meaning in capitals without spaces, as Body Part Examined terms read."""
    concepts = Collection("CID4031").concepts.values()
    return {re.sub(r"[^A-Z]", "", code.meaning.upper()): code for code in concepts}


def _procedure_modifiers(doc: ReportDocument) -> list:
    """TID 2000's optional Acquisition Device Type and Target Region, where a code exists."""
    items = []
    device = _device_types().get(doc.modality.strip().upper())
    if device is not None:
        items.append(hd.sr.CodeContentItem(codes.DCM.AcquisitionDeviceType, device, CONCEPT_MOD))
    term = re.sub(r"[^A-Z]", "", doc.body_part.upper())
    region = _regions().get(REGION_TERMS.get(term, term))
    if region is not None:
        items.append(hd.sr.CodeContentItem(codes.DCM.TargetRegion, region, CONCEPT_MOD))
    return items


def _section(heading, items: list) -> list:
    """A CID 7001 heading with its narrative, or nothing when the narrative is empty."""
    if not items:
        return []
    section = hd.sr.ContainerContentItem(name=heading, relationship_type=CONTAINS)
    section.ContentSequence = items
    return [section]


def _text(name, text: str) -> list:
    text = text.strip()
    return (
        [hd.sr.TextContentItem(name=name, value=text, relationship_type=CONTAINS)] if text else []
    )


def _procedure(doc: ReportDocument) -> list:
    described = " ".join(p for p in (doc.modality, doc.body_part, doc.study_description) if p)
    items = _text(codes.DCM.ProcedureDescription, described)
    if doc.quality:
        reason = f" ({doc.quality_reason.strip()})" if doc.quality_reason.strip() else ""
        items += _text(STUDY_QUALITY, f"{doc.quality}{reason}")
    return items


def _recommendations(doc: ReportDocument) -> list:
    referral = hd.sr.CodeContentItem(REFERRAL, _yes_no(doc.refer), CONTAINS)
    return [*_text(codes.DCM.Recommendation, doc.recommendation), referral]


def _signed_form(doc: ReportDocument, canonical: bytes, signature: bytes) -> list:
    """How to check this report: its verification code and URL, then the exact bytes its
    detached signature covers and that signature, so the SR can be verified on its own."""
    return [
        *_text(
            codes.DCM.Comment, f"Verification code {doc.verification_code}: {doc.verification_url}"
        ),
        *_text(codes.DCM.Comment, CANONICAL_PREFIX + canonical.decode("utf-8")),
        *_text(codes.DCM.Comment, SIGNATURE_PREFIX + base64.b64encode(signature).decode("ascii")),
    ]


def report_content(
    doc: ReportDocument,
    observer_name: str,
    canonical: bytes,
    signature: bytes,
    reviewer_name: str | None = None,
) -> hd.sr.ContainerContentItem:
    """The TID 2000 tree of one signed report version; ``observer_name`` (the signer) and
    ``reviewer_name`` (the reviewer who co-signed, if any) are DICOM PNs."""
    root = hd.sr.ContainerContentItem(name=REPORT_TITLE, template_id=TEMPLATE)
    root.ContentSequence = [
        *_language(doc.language),
        *_observer(observer_name, doc.centre_name, reviewer_name),
        *_procedure_modifiers(doc),
        *_section(codes.LN.ClinicalInformation, _text(codes.LN.Request, doc.clinical_question)),
        *_section(codes.LN.CurrentProcedureDescriptions, _procedure(doc)),
        *_section(codes.LN.Findings, _text(codes.DCM.Finding, doc.findings)),
        *_section(codes.LN.Impressions, _text(codes.DCM.Impression, doc.impression)),
        *_section(codes.LN.Recommendations, _recommendations(doc)),
        hd.sr.CodeContentItem(CRITICAL, _yes_no(doc.critical), CONTAINS),
        *_signed_form(doc, canonical, signature),
    ]
    return root
