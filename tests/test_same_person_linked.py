"""service.dicom.patient_identity.same_person_linked and disagreements: who is the current
patient among the records of linked local identities (issue 21 item 2), and what the viewer
warns about when the records of one person disagree."""

from __future__ import annotations

from service.dicom.patient_identity import PatientKey, disagreements, same_person_linked

BORN = "19580312"
ZHANG = PatientKey(1, "T-100", BORN, "ZHANG^SAN", "M")


class TestSamePersonLinked:
    def test_another_facilitys_identity_is_the_person_by_its_link(self) -> None:
        """Another facility, another local ID, nothing known beyond the link: the link decides."""
        assert same_person_linked(ZHANG, PatientKey(2, "C-900"))

    def test_one_disagreement_does_not_undo_the_link(self) -> None:
        """Linked by a card number, registered with another birth date: still offered (and
        warned about)."""
        assert same_person_linked(ZHANG, PatientKey(2, "C-901", "19580313", "ZHANG^SAN", "M"))

    def test_name_and_birth_date_both_contradicting_is_someone_else(self) -> None:
        """A record under a linked local ID whose name and birth date both differ is another
        person the issuing clinic gave that ID."""
        assert not same_person_linked(ZHANG, PatientKey(2, "C-900", "19900505", "LIU^MING"))

    def test_the_same_pair_needs_the_old_confirmation(self) -> None:
        """Under the very same facility and Patient ID one differing birth date is enough to
        keep two people apart, and nothing confirming is not enough to pair them."""
        assert not same_person_linked(ZHANG, PatientKey(1, "T-100", "19900101", "ZHANG^SAN"))
        assert not same_person_linked(ZHANG, PatientKey(1, "T-100"))
        assert same_person_linked(ZHANG, PatientKey(1, " T-100 ", BORN, "Zhang San"))


class TestDisagreements:
    def test_only_what_both_records_give_can_disagree(self) -> None:
        assert disagreements(ZHANG, PatientKey(2, "C-900", "", "", "")) == ()

    def test_names_compare_without_case_spaces_or_carets(self) -> None:
        assert disagreements(ZHANG, PatientKey(2, "C-900", BORN, "zhang san", "m")) == ()

    def test_each_difference_is_named_in_order(self) -> None:
        other = PatientKey(2, "C-901", "19580313", "ZHANG^SHAN", "F")
        assert disagreements(ZHANG, other) == ("name", "birth_date", "sex")
