"""Whether two records name the same patient: a Patient ID alone never decides it.

A Patient ID is only unique inside the facility that issued it, and township clinics reuse
short numbers, so two people can share one. Records are paired only when the issuing facility
and the Patient ID agree AND the birth date or the name agrees, with neither contradicting
((0010,0030) *Patient's Birth Date*, (0010,0010) *Patient's Name*).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PatientKey:
    """What a record says about its patient."""

    facility_id: int
    patient_id: str
    birth_date: str = ""
    name: str = ""
    sex: str = ""


def _name(text: str) -> str:
    """A person name compared without case, spaces or DICOM's ``^`` component separators."""
    return "".join(text.replace("^", " ").split()).casefold()


def same_patient(a: PatientKey, b: PatientKey) -> bool:
    """True only when facility and ID match, and birth date or name confirm without conflict."""
    if a.facility_id != b.facility_id:
        return False
    return same_person_by_id(a, b)


def same_person_by_id(a: PatientKey, b: PatientKey) -> bool:
    """True when the Patient IDs match and birth date or name confirm without conflict, whichever
    facility issued them: for the regional reader's comparison with a county hospital's study of
    the same ID, where the ID alone once paired two patients of different birth dates."""
    if not a.patient_id.strip() or a.patient_id.strip() != b.patient_id.strip():
        return False
    dates = (a.birth_date.strip(), b.birth_date.strip())
    names = (_name(a.name), _name(b.name))
    if all(dates) and dates[0] != dates[1]:
        return False
    if all(names) and names[0] != names[1]:
        return False
    return (all(dates) and dates[0] == dates[1]) or (all(names) and names[0] == names[1])


DEMOGRAPHICS = ("name", "birth_date", "sex")
"""What two records of one person may disagree on, in the order a warning names them."""


def disagreements(a: PatientKey, b: PatientKey) -> tuple[str, ...]:
    """Which of name, birth date and sex ((0010,0040) *Patient's Sex*) both records give and
    give differently: what the viewer's Compare warns about."""
    pairs = {
        "name": (_name(a.name), _name(b.name)),
        "birth_date": (a.birth_date.strip(), b.birth_date.strip()),
        "sex": (a.sex.strip().upper(), b.sex.strip().upper()),
    }
    return tuple(k for k in DEMOGRAPHICS if all(pairs[k]) and pairs[k][0] != pairs[k][1])


def same_person_linked(current: PatientKey, other: PatientKey) -> bool:
    """Whether a record of a local identity linked to the current one (service/storage/
    patients.py) is the current patient's.

    The link decides across identities: a record under another facility's or another Patient ID
    is the person's unless both its name and birth date contradict the current record's (then
    it is someone else the issuing clinic gave that local ID). Under the very same facility and
    Patient ID the index cannot tell two people apart, so the old confirmation holds
    (:func:`same_patient`)."""
    same_pair = current.facility_id == other.facility_id and (
        current.patient_id.strip() == other.patient_id.strip()
    )
    if same_pair:
        return same_patient(current, other)
    return not {"name", "birth_date"} <= set(disagreements(current, other))
