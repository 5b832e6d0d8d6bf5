"""Rows become FHIR resources: pure functions, each answer validated by the R4B models.

Every resource teleread answers goes through its ``fhir.resources`` model before it leaves, so a
mapping that drifts from the specification fails in the tests rather than in a hospital's system.
The consultation's state is told by ``ServiceRequest.status`` (no Task resources): a request
waiting for its images or its reading is ``active``, images without a request are ``draft``,
signed or acknowledged is ``completed``, withdrawn is ``revoked``.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest

from .identity import (
    ACCESSION_SYSTEM,
    DCM,
    DICOM_UID_SYSTEM,
    FACILITY_SYSTEM,
    PATIENT_ID_SYSTEM,
    PLACER_SYSTEM,
    V2_0203,
    VERIFICATION_SYSTEM,
    patient_logical_id,
    system_for,
)

ORDER_STATUS = {
    "awaiting_images": "active",
    "ready": "active",
    "awaiting_review": "active",
    "awaiting_request": "draft",
    "signed": "completed",
    "closed": "completed",
    "cancelled": "revoked",
}
"""Consultation status -> ServiceRequest.status (http://hl7.org/fhir/request-status)."""
STATUSES_OF = {
    status: tuple(k for k, v in ORDER_STATUS.items() if v == status)
    for status in set(ORDER_STATUS.values())
}
GENDER = {"M": "male", "F": "female", "O": "other"}
ENDPOINT_ID = "dicomweb"


def validated(model: Any, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` checked by its ``fhir.resources`` model, as the JSON it serialises to."""
    return model.model_validate(data).model_dump(mode="json", exclude_none=True)


def fhir_date(dicom_date: str) -> str | None:
    """A DICOM DA (``YYYYMMDD``) as a FHIR date; None when it is not one."""
    text = dicom_date.strip()
    if len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return None


def human_names(person_name: str) -> list[dict[str, Any]]:
    """A DICOM PN as HumanNames, one per component group (alphabetic, ideographic, phonetic)."""
    names = []
    for group in person_name.split("="):
        parts = [p.strip() for p in group.split("^")] + [""] * 5
        family, given, middle, prefix, suffix = parts[:5]
        if not any((family, given, middle, prefix, suffix)):
            continue
        name: dict[str, Any] = {"use": "official", "text": " ".join(p for p in parts[:3] if p)}
        if family:
            name["family"] = family
        if given or middle:
            name["given"] = [p for p in (given, middle) if p]
        if prefix:
            name["prefix"] = [prefix]
        if suffix:
            name["suffix"] = [suffix]
        names.append(name)
    return names


def patient_reference(row: dict[str, Any]) -> dict[str, Any]:
    """The order's subject: the Patient when the facility's patient ID is known."""
    display = row["patient_name"].replace("^", " ").strip() or None
    if not row["patient_id"]:
        return {"display": display or "unidentified patient"}
    reference = f"Patient/{patient_logical_id(row['facility_id'], row['patient_id'])}"
    return {"reference": reference, "display": display}


def patient(row: dict[str, Any]) -> dict[str, Any]:
    gender = GENDER.get(row["patient_sex"].strip().upper(), "unknown")
    return validated(
        Patient,
        {
            "resourceType": "Patient",
            "id": patient_logical_id(row["facility_id"], row["patient_id"]),
            "identifier": [
                {
                    "use": "usual",
                    "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                    "system": system_for(PATIENT_ID_SYSTEM, row["facility_aet"]),
                    "value": row["patient_id"],
                    "assigner": _facility(row),
                }
            ],
            "name": human_names(row["patient_name"]) or None,
            "gender": gender,
            "birthDate": fhir_date(row["patient_birth_date"]),
            "managingOrganization": _facility(row),
        },
    )


def _facility(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Organization",
        "identifier": {"system": FACILITY_SYSTEM, "value": row["facility_aet"]},
        "display": row["facility_name"],
    }


def _identifier(code: str, system: str, value: str) -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": V2_0203, "code": code}]},
        "system": system,
        "value": value,
    }


def _order_identifiers(row: dict[str, Any]) -> list[dict[str, Any]]:
    aet = row["facility_aet"]
    found = []
    if row["placer_order_number"]:
        found.append(
            _identifier("PLAC", system_for(PLACER_SYSTEM, aet), row["placer_order_number"])
        )
    if row["accession_number"]:
        found.append(
            _identifier("ACSN", system_for(ACCESSION_SYSTEM, aet), row["accession_number"])
        )
    return found


def _procedure(row: dict[str, Any]) -> dict[str, Any] | None:
    codings = []
    if row["requested_procedure_code"] or row["requested_procedure"]:
        codings.append(
            {
                "code": row["requested_procedure_code"] or None,
                "display": row["requested_procedure"] or None,
            }
        )
    if row["modality"]:
        codings.append({"system": DCM, "code": row["modality"]})
    if not codings:
        return None
    return {"coding": codings, "text": row["requested_procedure"] or row["modality"] or None}


def _study_identifier(uid: str) -> dict[str, Any]:
    return {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{uid}"}


def service_request(row: dict[str, Any]) -> dict[str, Any]:
    cid = row["id"]
    requester = _facility(row) | {"reference": f"Organization/{row['facility_id']}"}
    if row.get("requester_name"):
        requester["display"] = f"{row['requester_name']}, {row['facility_name']}"
    data: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": str(cid),
        "meta": {"lastUpdated": row["updated_at"]},
        "identifier": _order_identifiers(row) or None,
        "status": ORDER_STATUS.get(row["status"], "unknown"),
        "intent": "order",
        "priority": row["priority"],
        "code": _procedure(row),
        "subject": patient_reference(row),
        "authoredOn": row["requested_at"] or row["created_at"],
        "requester": requester,
        "bodySite": [{"text": row["body_part"]}] if row["body_part"] else None,
        "reasonCode": [{"text": row["clinical_question"]}] if row["clinical_question"] else None,
        "note": [{"text": row["clinical_history"]}] if row["clinical_history"] else None,
    }
    if row["study_instance_uid"]:
        data["supportingInfo"] = [
            {"type": "ImagingStudy", "identifier": _study_identifier(row["study_instance_uid"])}
        ]
    return validated(ServiceRequest, data)


def imaging_study(
    row: dict[str, Any], series: list[dict[str, Any]], dicomweb_base: str
) -> dict[str, Any]:
    """A received study of a consultation; ``series`` as Orthanc lists them (MainDicomTags and
    Instances); its images are reached through teleread's own DICOMweb service."""
    modalities = [m for m in (row["study_modalities"] or "").split("\\") if m]
    data: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "id": str(row["id"]),
        "contained": [
            {
                "resourceType": "Endpoint",
                "id": ENDPOINT_ID,
                "status": "active",
                "connectionType": {
                    "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                    "code": "dicom-wado-rs",
                },
                "payloadType": [{"text": "DICOM"}],
                "payloadMimeType": ["application/dicom"],
                "address": dicomweb_base,
            }
        ],
        "identifier": [_study_identifier(row["study_instance_uid"])]
        + [i for i in _order_identifiers(row) if i["type"]["coding"][0]["code"] == "ACSN"],
        "status": "available",
        "modality": [{"system": DCM, "code": m} for m in modalities] or None,
        "subject": patient_reference(row),
        "started": fhir_date(row["study_date"] or ""),
        "basedOn": [{"reference": f"ServiceRequest/{row['id']}"}],
        "endpoint": [{"reference": f"#{ENDPOINT_ID}"}],
        "numberOfSeries": len(series),
        "numberOfInstances": sum(len(s.get("Instances", [])) for s in series),
        "description": row["study_description"] or None,
        "series": [_series(s) for s in series] or None,
    }
    return validated(ImagingStudy, data)


def _series(series: dict[str, Any]) -> dict[str, Any]:
    tags = series.get("MainDicomTags", {})
    number = tags.get("SeriesNumber", "").strip()
    body_part = tags.get("BodyPartExamined", "").strip()
    return {
        "uid": tags.get("SeriesInstanceUID", ""),
        "number": int(number) if number.isdigit() else None,
        "modality": {"system": DCM, "code": tags.get("Modality", "").strip() or "OT"},
        "description": tags.get("SeriesDescription", "").strip() or None,
        "numberOfInstances": len(series.get("Instances", [])),
        "bodySite": {"display": body_part} if body_part else None,
    }


def diagnostic_report(row: dict[str, Any], base_url: str) -> dict[str, Any]:
    """The latest signed version of a consultation's report; its signed PDF is an attachment by
    URL (teleread's report PDF route, with the same bearer token), never inline."""
    cid, version = row["consultation_id"], row["version"]
    pdf_url = f"{base_url}/api/consultations/{cid}/report/versions/{version}/pdf"
    data: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": str(cid),
        "identifier": [{"system": VERIFICATION_SYSTEM, "value": row["verification_code"]}],
        "basedOn": [{"reference": f"ServiceRequest/{cid}"}],
        "status": "final" if version == 1 else "amended",
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"}]}
        ],
        "code": {
            "coding": [
                {
                    "system": "http://loinc.org",
                    "code": "18748-4",
                    "display": "Diagnostic imaging study",
                }
            ]
        },
        "subject": patient_reference(row | {"patient_name": ""}),
        "issued": row["signed_at"],
        "resultsInterpreter": [{"display": row["signer_name"]}],
        "imagingStudy": [{"reference": f"ImagingStudy/{cid}"}]
        if row["study_instance_uid"]
        else None,
        "conclusion": row["impression"] or row["findings"] or None,
        "presentedForm": [
            {
                "contentType": "application/pdf",
                "url": pdf_url,
                "size": row["pdf_size"],
                "title": f"Signed report, version {version}",
                "creation": row["signed_at"],
            }
        ],
    }
    return validated(DiagnosticReport, data)
