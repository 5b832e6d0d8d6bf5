"""Audit records as DICOM audit messages (PS3.15 Annex A.5, the format of IHE ATNA).

One teleread record becomes one ``AuditMessage`` (PS3.15 A.5.1, "DICOM Audit Message Schema"):

* ``EventIdentification`` -- ``EventID`` from CID 400 (PS3.16) by the record's action, an
  ``EventActionCode`` (C/R/U/D/E), ``EventDateTime`` in UTC and ``EventOutcomeIndicator``
  (0 success, 4 minor failure = refused, 8 serious failure), per the General Message Format
  (A.5.2). ``EventTypeCode`` carries the Login/Logout codes of CID 401 for User Authentication
  (A.5.3.12), and always the teleread action itself as a local code (``99TELEREAD``), so a
  collector can still tell ``study.upload`` from ``study.stow``.
* ``ActiveParticipant`` -- the user (``UserIsRequestor`` true, ``UserID`` = login name, the
  client address as ``NetworkAccessPointID`` with ``NetworkAccessPointTypeCode`` 2 = IP address,
  ``RoleIDCode``: the CID 402 role the specific message asks for, plus the teleread role as a
  local code) and teleread itself (the Destination of queries, imports and logins).
* ``AuditSourceIdentification`` -- ``AuditSourceID`` as configured (``teleread@<host>``) and
  ``AuditSourceTypeCode`` 4, "application server process" (A.5.1.2.1).
* ``ParticipantObjectIdentification`` -- patients (type 1 Person, role 1 Patient, ID type
  (2, RFC-3881, "Patient Number")), studies (type 2 System Object, role 3 Report, ID type
  (110180, DCM, "Study Instance UID")), the query of a worklist search (role 24 Query, the
  filters base64-encoded in ``ParticipantObjectQuery``), the audit log itself for
  Audit Log Used (A.5.3.2) and Export, the user's facility (type 3 Organization, role 2
  Location), and other resources by their teleread type as a local code.

Where teleread is not DICOM the messages extend, as A.5 allows: the worklist query is an HTTP
query, so its object is identified by URI (12, RFC-3881) rather than the SOP Class UID of a
C-FIND (A.5.3.10); an upload comes from a user's browser, not from media, so Data Import
(A.5.3.5) names the uploader as Source (110153) instead of a Source Media participant.

The schema wants every ParticipantObjectIdentification to carry exactly one of
``ParticipantObjectName`` or ``ParticipantObjectQuery``: the worklist query has its query, every
other object a name -- the patient's name when it is known for sure, else the patient id again;
a study's name is its UID (DICOM does not name studies); the facility's name; a teleread
resource as "<type> <id>". ``ParticipantObjectDescription`` is optional in the schema and what
A.5.3 puts there (SOP classes, instance counts) is not in teleread's records, so it is left out.

Coded values use the attribute names of A.5.1: ``csd-code``, ``codeSystemName``,
``originalText``. Text is escaped by ElementTree; characters XML 1.0 cannot carry (C0 controls,
unpaired surrogates) are replaced by U+FFFD, and line breaks in element text by spaces (the
elements are xsd:token), so each serialised message is one line: one document per line in the
export, one syslog message when forwarded (:mod:`.forwarding`). tests/data/dicom-audit-message.rnc
holds the schema, and tests/test_audit_atna.py validates a message of every action against it.
"""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..storage.audit_search import Names

DCM = "DCM"
RFC_3881 = "RFC-3881"
LOCAL = "99TELEREAD"

OUTCOME_INDICATORS = {"success": "0", "denied": "4", "failed": "8"}

# PS3.16 CID 400 Audit Event ID, CID 401 Audit Event Type Code, CID 402 Role ID.
APPLICATION_ACTIVITY = ("110100", "Application Activity")
AUDIT_LOG_USED = ("110101", "Audit Log Used")
INSTANCES_ACCESSED = ("110103", "DICOM Instances Accessed")
EXPORT = ("110106", "Export")
IMPORT = ("110107", "Import")
ORDER_RECORD = ("110109", "Order Record")
PATIENT_RECORD = ("110110", "Patient Record")
QUERY = ("110112", "Query")
SECURITY_ALERT = ("110113", "Security Alert")
USER_AUTHENTICATION = ("110114", "User Authentication")
LOGIN = ("110122", "Login")
LOGOUT = ("110123", "Logout")
USER_SECURITY_ATTRIBUTES_CHANGED = ("110137", "User security Attributes Changed")
DESTINATION_ROLE = ("110152", "Destination Role ID")
SOURCE_ROLE = ("110153", "Source Role ID")


@dataclass(frozen=True)
class EventKind:
    """How one teleread action reads as a DICOM audit event."""

    event_id: tuple[str, str]
    action_code: str
    event_type: tuple[str, str] | None = None
    #: CID 402 role of the requesting user and of teleread, when the message defines them.
    user_role: tuple[str, str] | None = None
    service_role: tuple[str, str] | None = None
    #: What the record is about beyond patients and studies: "query" or "audit_log".
    subject: str = ""


_AUTH = {"user_role": SOURCE_ROLE, "service_role": DESTINATION_ROLE}

#: The actions teleread records, each mapped to its message (PS3.15 A.5.3).
ACTIONS: dict[str, EventKind] = {
    "auth.login": EventKind(USER_AUTHENTICATION, "E", LOGIN, **_AUTH),  # A.5.3.12
    "auth.logout": EventKind(USER_AUTHENTICATION, "E", LOGOUT, **_AUTH),
    "worklist.query": EventKind(QUERY, "E", subject="query", **_AUTH),  # A.5.3.10
    "consultation.view": EventKind(PATIENT_RECORD, "R"),  # A.5.3.14
    "consultation.request": EventKind(ORDER_RECORD, "C"),  # A.5.3.13
    "study.upload": EventKind(IMPORT, "C", **_AUTH),  # A.5.3.5 Data Import
    "study.stow": EventKind(IMPORT, "C", **_AUTH),
    "quarantine.view": EventKind(INSTANCES_ACCESSED, "R"),  # A.5.3.6
    # an HIS merging two patient ids (HL7 ADT^A40), and an administrator undoing it
    "patient.merged": EventKind(PATIENT_RECORD, "U"),
    "patient.merge_reversed": EventKind(PATIENT_RECORD, "U"),
    "audit.search": EventKind(AUDIT_LOG_USED, "R", subject="audit_log"),  # A.5.3.2
    "audit.export": EventKind(EXPORT, "R", subject="audit_log"),  # A.5.3.4 Data Export
    # A report leaving for a hospital's HIS as HL7 (sent, or tried and refused): an export.
    "hl7.result_sent": EventKind(EXPORT, "R"),
    "hl7.result_failed": EventKind(EXPORT, "R"),
    "token.create": EventKind(SECURITY_ALERT, "E", USER_SECURITY_ATTRIBUTES_CHANGED),  # A.5.3.11
    "token.revoke": EventKind(SECURITY_ALERT, "E", USER_SECURITY_ATTRIBUTES_CHANGED),
}

_VERB_ACTION_CODES = {
    **dict.fromkeys(("view", "open", "read", "get", "list", "query", "search"), "R"),
    **dict.fromkeys(("download", "print", "export"), "R"),
    **dict.fromkeys(("create", "add", "request", "upload", "import", "stow"), "C"),
    **dict.fromkeys(("update", "edit", "sign", "amend", "claim", "assign", "release"), "U"),
    **dict.fromkeys(("acknowledge", "disable", "enable", "reset"), "U"),
    **dict.fromkeys(("delete", "remove", "revoke", "cancel"), "D"),
}
_IMAGE_RESOURCES = {"study", "series", "image", "instance", "report"}
_SECURITY_RESOURCES = {"user", "api_token", "facility", "session", "role"}


def event_kind(action: str, resource_type: str = "", has_patient: bool = False) -> EventKind:
    """The message for an action: from :data:`ACTIONS`, else by its verb and resource.

    Unknown actions keep a sensible reading: printing and downloading are Exports (A.5.3.4);
    other reads of images or reports are DICOM Instances Accessed (A.5.3.6); anything touching
    a patient is a Patient Record event (A.5.3.14); changes to users, tokens or facilities are
    Security Alerts (A.5.3.11); the rest is Application Activity with the verb's action code.
    """
    if action in ACTIONS:
        return ACTIONS[action]
    verb = action.rsplit(".", 1)[-1]
    code = _VERB_ACTION_CODES.get(verb, "E")
    if verb in ("download", "print", "export"):
        return EventKind(EXPORT, "R")
    if resource_type in _IMAGE_RESOURCES:
        return EventKind(INSTANCES_ACCESSED, code)
    if has_patient:
        return EventKind(PATIENT_RECORD, code)
    if resource_type in _SECURITY_RESOURCES:
        return EventKind(SECURITY_ALERT, "E", USER_SECURITY_ATTRIBUTES_CHANGED)
    return EventKind(APPLICATION_ACTIVITY, code)


@dataclass(frozen=True)
class AuditSource:
    """Who reports the events (A.5.2 AuditSourceIdentification)."""

    source_id: str
    enterprise_site_id: str = ""


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_LINE_BREAKS = re.compile("[\r\n\t]")


def _clean(value: object) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


def _token(value: object) -> str:
    return _LINE_BREAKS.sub(" ", _clean(value))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "replace")).decode("ascii")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: _clean(v) for k, v in attributes.items()})
    if text is not None:
        element.text = _token(text)
    return element


def _code(parent: ET.Element, tag: str, code: tuple[str, str], system: str = DCM) -> None:
    _sub(parent, tag, **{"csd-code": code[0], "codeSystemName": system, "originalText": code[1]})


def audit_message(
    row: Mapping[str, Any], source: AuditSource, names: Names | None = None
) -> ET.Element:
    """One stored audit_log row as an ``AuditMessage`` element (PS3.15 A.5.1)."""
    names = names or Names()
    detail = row["detail"]
    detail = json.loads(detail) if isinstance(detail, str) else dict(detail)
    patients = _patients(row["patient_id"], detail)
    kind = event_kind(row["action"], row["resource_type"], bool(patients))
    message = ET.Element("AuditMessage")
    _event(message, row, kind, detail)
    _requestor(message, row, kind, detail, names)
    service = _sub(message, "ActiveParticipant", UserID=source.source_id, UserIsRequestor="false")
    if kind.service_role:
        _code(service, "RoleIDCode", kind.service_role)
    site = {"AuditEnterpriseSiteID": source.enterprise_site_id} if source.enterprise_site_id else {}
    audit_source = _sub(
        message, "AuditSourceIdentification", AuditSourceID=source.source_id, **site
    )
    _sub(audit_source, "AuditSourceTypeCode", **{"csd-code": "4"})
    for patient_id in patients:
        _patient(message, patient_id, names.patients.get(patient_id, ""))
    for study_uid in filter(None, row["study_instance_uid"].split(",")):
        _study(message, study_uid.strip())
    _subject(message, row, kind, detail)
    if row["facility_id"] is not None:
        _facility(message, row["facility_id"], names.facilities.get(row["facility_id"], ""))
    return message


def _patients(patient_id: str, detail: dict) -> list[str]:
    """The patients a record concerns; a comma-joined ``patient_id`` (uploads) is several."""
    listed = detail.get("patients")
    found = set(listed if isinstance(listed, list) else []) | set(patient_id.split(","))
    return sorted(p.strip() for p in found if isinstance(p, str) and p.strip())


def _event(message: ET.Element, row: Mapping[str, Any], kind: EventKind, detail: dict) -> None:
    event = _sub(
        message,
        "EventIdentification",
        EventActionCode=kind.action_code,
        EventDateTime=row["at"],
        EventOutcomeIndicator=OUTCOME_INDICATORS.get(row["outcome"], "8"),
    )
    _code(event, "EventID", kind.event_id)
    if kind.event_type:
        _code(event, "EventTypeCode", kind.event_type)
    _code(event, "EventTypeCode", (row["action"], row["action"]), LOCAL)
    if row["outcome"] != "success":
        status = detail.get("status")
        suffix = f" (HTTP {status})" if status else ""
        _sub(event, "EventOutcomeDescription", f"{row['outcome']}{suffix}")


def _requestor(
    message: ET.Element, row: Mapping[str, Any], kind: EventKind, detail: dict, names: Names
) -> None:
    """The person who acted; for a failed login, the name they tried (there is no user)."""
    attempted = detail.get("username") if isinstance(detail.get("username"), str) else ""
    user_id = row["username"] or attempted or row["client_ip"] or "unknown"
    attributes = {"UserID": user_id, "UserIsRequestor": "true"}
    if row["user_id"] is not None:
        attributes["AlternativeUserID"] = str(row["user_id"])
        attributes["UserName"] = names.users.get(row["user_id"]) or row["username"]
    if row["client_ip"]:
        attributes |= {"NetworkAccessPointID": row["client_ip"], "NetworkAccessPointTypeCode": "2"}
    participant = _sub(message, "ActiveParticipant", **attributes)
    if kind.user_role:
        _code(participant, "RoleIDCode", kind.user_role)
    if row["role"]:
        _code(participant, "RoleIDCode", (row["role"], row["role"]), LOCAL)


def _object(
    message: ET.Element,
    object_id: str,
    id_type: tuple[str, str],
    system: str,
    type_code: str,
    role: str | None,
    name: str | None,
    query: str | None = None,
) -> ET.Element:
    """A ParticipantObjectIdentification: the schema wants exactly one of a name or a query."""
    attributes = {"ParticipantObjectID": object_id, "ParticipantObjectTypeCode": type_code}
    if role:
        attributes["ParticipantObjectTypeCodeRole"] = role
    element = _sub(message, "ParticipantObjectIdentification", **attributes)
    _code(element, "ParticipantObjectIDTypeCode", id_type, system)
    if query is not None:
        _sub(element, "ParticipantObjectQuery", query)
    else:
        _sub(element, "ParticipantObjectName", name or object_id)
    return element


def _patient(message: ET.Element, patient_id: str, name: str) -> None:
    """A patient, named when the name is known for sure; else the name repeats the id."""
    _object(message, patient_id, ("2", "Patient Number"), RFC_3881, "1", "1", name)


def _study(message: ET.Element, study_uid: str) -> None:
    """A study. DICOM gives studies no name, and the schema wants one: the UID is its name."""
    _object(message, study_uid, ("110180", "Study Instance UID"), DCM, "2", "3", study_uid)


def _facility(message: ET.Element, facility_id: int, name: str) -> None:
    name = name or f"facility {facility_id}"
    _object(message, str(facility_id), ("facility", "Facility"), LOCAL, "3", "2", name)


def _subject(message: ET.Element, row: Mapping[str, Any], kind: EventKind, detail: dict) -> None:
    """The query, the audit log, or the teleread resource the record is about."""
    if kind.subject == "query":
        query = json.dumps(detail.get("filters", {}), sort_keys=True, ensure_ascii=False)
        uri = ("12", "URI")
        _object(message, "/api/worklist", uri, RFC_3881, "2", "24", None, _b64(query))
    elif kind.subject == "audit_log":
        log = "Security Audit Log"
        element = _object(message, "/api/audit", ("12", "URI"), RFC_3881, "2", "13", log)
        filters = json.dumps(detail.get("filters", {}), sort_keys=True, ensure_ascii=False)
        _sub(element, "ParticipantObjectDetail", type="filters", value=_b64(filters))
    elif row["resource_id"] and row["resource_type"] not in ("study", "worklist"):
        resource = row["resource_type"] or "resource"
        name = f"{resource} {row['resource_id']}"
        _object(message, row["resource_id"], (resource, resource), LOCAL, "2", None, name)


def to_xml(message: ET.Element) -> str:
    """One message as one line: a whole XML document (UTF-8, so no declaration is needed)."""
    return ET.tostring(message, encoding="unicode")
