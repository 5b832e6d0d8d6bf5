"""A ServiceRequest a hospital system posts, read as the fields of a consultation request.

The resource is first validated by the R4B model (any error there is the caller's 400, with the
model's message); then what teleread needs is read from where FHIR puts it:

- ``subject``: ``Patient/<id>`` of a patient teleread knows, or a reference by ``identifier``
  (the HIS's patient ID) with ``display`` as the name; a ``contained`` Patient the subject
  points to (``#id``) gives the name, birth date and sex, and its identifiers of the national
  systems (``urn:oid:2.16.156.10011.1.3`` resident identity number, ``…1.19`` health card) the
  identifiers that link the patient across facilities;
- ``identifier``: the placer order number (type ``PLAC``, or any identifier without a type) and
  the accession number (type ``ACSN``), which links the images when they arrive;
- ``code``: the requested procedure (its first coding's code and display, or its text); a coding
  of the DICOM system (DCM) gives the modality, as may ``orderDetail``; ``bodySite`` the body
  part; ``priority`` routine, urgent or stat (asap counts as urgent);
- ``reasonCode`` (text) the clinical question, ``note`` the clinical history;
- ``supportingInfo``: an ImagingStudy by identifier (``urn:dicom:uid``, ``urn:oid:<UID>``) for a
  study already sent.

The requesting facility is always the caller's own (its token's), whatever ``requester`` says.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from ..identity_numbers import HEALTH_CARD, OIDS, RESIDENT_ID, checked
from .identity import (
    DCM,
    DICOM_UID_SYSTEM,
    parse_patient_logical_id,
)

PRIORITIES = {"routine": "routine", "urgent": "urgent", "asap": "urgent", "stat": "stat"}
GENDER_TO_SEX = {"male": "M", "female": "F", "other": "O"}


class InvalidOrder(ValueError):
    """The resource is valid FHIR but not an order teleread can file; says where and why."""

    def __init__(self, message: str, expression: str) -> None:
        super().__init__(message)
        self.expression = expression


def parse_service_request(body: Any) -> ServiceRequest:
    """The posted JSON as a validated R4B ServiceRequest (raises pydantic's ValidationError)."""
    if not isinstance(body, dict) or body.get("resourceType") != "ServiceRequest":
        raise InvalidOrder("the body must be a ServiceRequest resource", "resourceType")
    try:
        return ServiceRequest.model_validate(body)
    except ValidationError:
        raise
    except (TypeError, ValueError, AttributeError) as exc:  # a model's own check, not pydantic's
        raise InvalidOrder(f"not a valid ServiceRequest: {exc}", "ServiceRequest") from exc


def order_fields(resource: ServiceRequest, facility_id: int) -> dict[str, Any]:
    """The consultation request's fields (the JSON API's body names), from a new order."""
    if resource.status != "active":
        raise InvalidOrder("a new order's status is active", "ServiceRequest.status")
    if resource.intent not in ("order", "original-order", "instance-order"):
        raise InvalidOrder("intent must be order", "ServiceRequest.intent")
    if resource.doNotPerform:
        raise InvalidOrder("doNotPerform orders are not filed", "ServiceRequest.doNotPerform")
    fields: dict[str, Any] = {"priority": _priority(resource.priority)}
    fields |= _patient(resource, facility_id)
    fields |= _identifiers(resource)
    fields |= _procedure(resource)
    if resource.bodySite:
        site = resource.bodySite[0]
        fields["body_part"] = (site.coding[0].code if site.coding else None) or site.text
    fields["clinical_question"] = _join(r.text for r in resource.reasonCode or [])
    fields["clinical_history"] = _join(n.text for n in resource.note or [])
    fields["study_instance_uid"] = _study_uid(resource)
    return {k: v for k, v in fields.items() if v}


def _priority(priority: str | None) -> str:
    if priority is None:
        return "routine"
    if priority not in PRIORITIES:
        raise InvalidOrder(f"unknown priority {priority!r}", "ServiceRequest.priority")
    return PRIORITIES[priority]


def _join(texts: Any) -> str | None:
    found = [t.strip() for t in texts if t and t.strip()]
    return "\n".join(found) or None


def _patient(resource: ServiceRequest, facility_id: int) -> dict[str, Any]:
    subject = resource.subject
    if subject is None:
        raise InvalidOrder("subject is required (the patient)", "ServiceRequest.subject")
    fields: dict[str, Any] = {"patient_name": subject.display}
    reference = subject.reference or ""
    if reference.startswith("Patient/"):
        named = parse_patient_logical_id(reference.removeprefix("Patient/"))
        if named is None or named[0] != facility_id:
            raise InvalidOrder("no such patient of your facility", "ServiceRequest.subject")
        fields["patient_id"] = named[1]
    elif reference.startswith("#"):
        fields |= _contained_patient(resource, reference[1:])
    elif reference:
        raise InvalidOrder(
            "subject must be Patient/<id>, #<contained Patient> or an identifier",
            "ServiceRequest.subject",
        )
    if subject.identifier is not None and subject.identifier.value:
        fields.setdefault("patient_id", subject.identifier.value)
    if not fields.get("patient_id"):
        raise InvalidOrder("the subject needs the patient's ID", "ServiceRequest.subject")
    return fields


def _contained_patient(resource: ServiceRequest, local_id: str) -> dict[str, Any]:
    for contained in resource.contained or []:
        if contained.get_resource_type() == "Patient" and contained.id == local_id:
            fields: dict[str, Any] = national_identifiers(contained.identifier or [])
            local = [i for i in contained.identifier or [] if i.system not in NATIONAL_SYSTEMS]
            if local:
                fields["patient_id"] = local[0].value
            if contained.name:
                name = contained.name[0]
                given = " ".join(name.given or [])
                fields["patient_name"] = f"{name.family or ''}^{given}".strip("^") or name.text
            if contained.birthDate:
                fields["patient_birth_date"] = str(contained.birthDate).replace("-", "")
            if contained.gender:
                fields["patient_sex"] = GENDER_TO_SEX.get(contained.gender)
            return fields
    raise InvalidOrder(f"no contained Patient {local_id!r}", "ServiceRequest.subject")


NATIONAL_SYSTEMS = {f"urn:oid:{oid}": system for system, oid in OIDS.items()}
"""Patient.identifier systems that are national identifiers, not the HIS's patient ID."""
_FIELDS = {RESIDENT_ID: "patient_identity_number", HEALTH_CARD: "patient_health_card_number"}


def national_identifiers(identifiers: list[Any]) -> dict[str, str]:
    """The request's identity-number fields from a Patient's identifiers of the resident
    identity number (``urn:oid:2.16.156.10011.1.3``) and health card
    (``urn:oid:2.16.156.10011.1.19``) systems; a value that fails its check is left out (the
    order is still filed, the patient just not linked by it)."""
    fields: dict[str, str] = {}
    for identifier in identifiers:
        system = NATIONAL_SYSTEMS.get(identifier.system or "")
        found = checked(system, identifier.value or "") if system else None
        if found is not None:
            fields.setdefault(_FIELDS[system], found.value)
    return fields


def _identifiers(resource: ServiceRequest) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for identifier in resource.identifier or []:
        codes = {c.code for c in (identifier.type.coding or [])} if identifier.type else set()
        if "ACSN" in codes:
            fields.setdefault("accession_number", identifier.value)
        elif "PLAC" in codes or not codes:
            fields.setdefault("placer_order_number", identifier.value)
    return fields


def _procedure(resource: ServiceRequest) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    concepts = [resource.code] if resource.code else []
    concepts += resource.orderDetail or []
    for concept in concepts:
        for coding in concept.coding or []:
            if coding.system == DCM:
                fields.setdefault("modality", coding.code)
            elif concept is resource.code:
                fields.setdefault("requested_procedure_code", coding.code)
                fields.setdefault("requested_procedure", coding.display)
    if resource.code and resource.code.text:
        fields["requested_procedure"] = fields.get("requested_procedure") or resource.code.text
    return fields


def _study_uid(resource: ServiceRequest) -> str | None:
    for info in resource.supportingInfo or []:
        identifier = info.identifier
        if identifier is not None and identifier.system == DICOM_UID_SYSTEM and identifier.value:
            return identifier.value.removeprefix("urn:oid:")
    return None
