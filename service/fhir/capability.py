"""What teleread's FHIR server does, said once: the CapabilityStatement and the search rules.

The routes check a search's parameters against :data:`SEARCH_PARAMS` and ``metadata`` lists the
same table, so the statement describes exactly what is implemented.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import __fhir_version__ as FHIR_VERSION
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from .resources import validated

FHIR_JSON = "application/fhir+json"
COMMON_PARAMS = ("_format", "_count")
DEFAULT_COUNT = 50
MAX_COUNT = 200

SEARCH_PARAMS: dict[str, dict[str, tuple[str, str]]] = {
    "Patient": {
        "_id": ("token", "The logical id (f<facility>-<encoded patient ID>)"),
        "identifier": ("token", "system|value: urn:teleread:patient-id:<AE title>|<patient ID>"),
    },
    "ServiceRequest": {
        "_id": ("token", "The consultation's id"),
        "patient": ("reference", "Patient/<id>"),
        "status": ("token", "draft | active | completed | revoked (comma for several)"),
        "requester": ("reference", "Organization/<facility id>: the requesting facility"),
        "identifier": ("token", "[system|]placer order or accession number"),
    },
    "ImagingStudy": {
        "_id": ("token", "The consultation's id"),
        "patient": ("reference", "Patient/<id>"),
        "based-on": ("reference", "ServiceRequest/<id>"),
    },
    "DiagnosticReport": {
        "_id": ("token", "The consultation's id"),
        "patient": ("reference", "Patient/<id>"),
        "based-on": ("reference", "ServiceRequest/<id>"),
    },
}
INTERACTIONS = {
    "Patient": ("read", "search-type"),
    "ServiceRequest": ("read", "search-type", "create", "update"),
    "ImagingStudy": ("read", "search-type"),
    "DiagnosticReport": ("read", "search-type"),
}
DOCUMENTATION = {
    "ServiceRequest": (
        "create files a consultation request for the caller's facility; update changes only"
        " status, to revoked (cancels the open request). status tells the consultation's state:"
        " draft (images, no request), active (waiting for images or the reading), completed"
        " (report signed), revoked (cancelled)."
    ),
    "ImagingStudy": "Received studies; images through the contained DICOMweb (WADO-RS) Endpoint.",
    "DiagnosticReport": (
        "The latest signed version: final, or amended after a correction; presentedForm links"
        " the signed PDF (same bearer token)."
    ),
}


def capability_statement(base: str, software_version: str, date: str) -> dict[str, Any]:
    resources = [
        {
            "type": name,
            "documentation": DOCUMENTATION.get(name),
            "interaction": [{"code": code} for code in INTERACTIONS[name]],
            "searchParam": [
                {"name": param, "type": kind, "documentation": text}
                for param, (kind, text) in params.items()
            ],
        }
        for name, params in SEARCH_PARAMS.items()
    ]
    return validated(
        CapabilityStatement,
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": date,
            "publisher": "teleread",
            "kind": "instance",
            "software": {"name": "teleread", "version": software_version},
            "implementation": {"description": "teleread FHIR API", "url": base},
            "fhirVersion": FHIR_VERSION,
            "format": ["json", FHIR_JSON],
            "rest": [
                {
                    "mode": "server",
                    "security": {
                        "description": (
                            "Authorization: Bearer <token>: an API token or a session token from"
                            " POST /api/login. Every call is scoped to the caller's facility and"
                            " role, and audited."
                        )
                    },
                    "resource": resources,
                }
            ],
        },
    )
