"""Who may reach what: scopes that become SQL conditions, and the domain's role rules.

The per-route declarations (``allow``, ``public``) are the web layer's: service/http/access.py.
"""

from __future__ import annotations

from ..storage.scope import EVERYTHING, NO_ACCESS, Scope
from .sessions import CurrentUser

# Roles whose reach is their own facility's consultations.
FACILITY_ROLES = {"radiographer", "clinician"}
# Roles that read for the region when they belong to the regional centre.
READER_ROLES = {"specialist", "manager"}
# The facility kind whose staff act for the whole consortium.
REGIONAL = "regional"


def may_revoke_certificate_of(user: CurrentUser, signer_facility_id: int) -> bool:
    """Administrators revoke any signer's certificate; the regional centre's managers only their
    own centre's signers (a compromised key elsewhere goes through an administrator)."""
    if user.role == "admin":
        return True
    return (
        user.role == "manager"
        and user.facility_kind == REGIONAL
        and user.facility_id == signer_facility_id
    )


def manages_readers_of(user: CurrentUser, facility_id: int) -> bool:
    """Whether ``user`` directs the work of ``facility_id``'s readers (releasing their claims,
    handing them consultations): a manager their own facility's, the regional centre's managers
    everyone's (the centre runs the consortium's reading). A county or township manager must not
    take a consultation from the centre's reader, nor hand the centre's readers work."""
    if user.role != "manager":
        return False
    return user.facility_kind == REGIONAL or user.facility_id == facility_id


def may_correct_report_signed_at(user: CurrentUser, signer_facility_id: int) -> bool:
    """A signed report is corrected by a reader of the facility whose reader signed it: the
    clinic that asked (or another hospital) must not supersede the centre's signed report with a
    version of its own."""
    return user.role in READER_ROLES and user.facility_id == signer_facility_id


def consultation_scope(user: CurrentUser) -> Scope:
    """Which consultations a user may see, by role and facility."""
    if user.role in FACILITY_ROLES:
        return Scope(facility_ids=(user.facility_id,))
    if user.role == "requester":
        return Scope(facility_ids=(user.facility_id,), requested_by=user.id)
    if user.role in READER_ROLES:
        return EVERYTHING if user.facility_kind == "regional" else Scope((user.facility_id,))
    return NO_ACCESS
