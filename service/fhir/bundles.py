"""Search results and errors in FHIR's own shapes: a searchset Bundle and an OperationOutcome."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from .resources import validated

ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    413: "too-costly",
    415: "not-supported",
    429: "throttled",
}
"""HTTP status -> OperationOutcome.issue.code (http://hl7.org/fhir/issue-type)."""


def searchset(
    base: str, resource_type: str, query: list[tuple[str, str]], resources: list[dict[str, Any]]
) -> dict[str, Any]:
    """The matches as one page: searches are bounded by ``_count`` (no paging links), and
    ``total`` counts what the page holds."""
    self_url = f"{base}/{resource_type}" + (f"?{urlencode(query)}" if query else "")
    return validated(
        Bundle,
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(resources),
            "link": [{"relation": "self", "url": self_url}],
            "entry": [
                {
                    "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in resources
            ]
            or None,
        },
    )


def operation_outcome(
    status: int, diagnostics: str, code: str = "", expression: list[str] | None = None
) -> dict[str, Any]:
    """One error issue: its type from the HTTP status, teleread's error code in ``details``."""
    issue: dict[str, Any] = {
        "severity": "error" if status < 500 else "fatal",
        "code": ISSUE_CODES.get(status, "exception"),
        "diagnostics": diagnostics,
    }
    if code:
        issue["details"] = {"coding": [{"system": "urn:teleread:error", "code": code}]}
    if expression:
        issue["expression"] = expression
    return validated(OperationOutcome, {"resourceType": "OperationOutcome", "issue": [issue]})
