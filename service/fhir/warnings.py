"""An OperationOutcome that warns about an order teleread filed anyway (a repeat exam).

FHIR's create answers the resource, an OperationOutcome or nothing, as the client prefers
(``Prefer: return=``, FHIR R4 §3.1.0.8.6); when a ServiceRequest repeats an exam the person had
within the item's window, teleread answers the OperationOutcome unless the client asked for
the representation: the warning is the news, the filed order is at the Location.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.operationoutcome import OperationOutcome

from .resources import validated

REPEAT_EXAM = "repeat_exam"


def repeat_outcome(diagnostics: str, alert_id: int, filed: str) -> dict[str, Any]:
    """A warning (``business-rule``, teleread's code ``repeat_exam``) and the information that
    the order was filed as ``filed`` (``ServiceRequest/<id>``)."""
    warning = {
        "severity": "warning",
        "code": "business-rule",
        "details": {
            "coding": [{"system": "urn:teleread:error", "code": REPEAT_EXAM}],
            "text": f"repeat alert {alert_id}",
        },
        "diagnostics": diagnostics,
        "expression": ["ServiceRequest.code"],
    }
    created = {"severity": "information", "code": "informational", "diagnostics": f"{filed} filed"}
    return validated(
        OperationOutcome, {"resourceType": "OperationOutcome", "issue": [warning, created]}
    )
