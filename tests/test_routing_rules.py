"""Routing consultations to subspecialty queues, and the rules at work in the running service."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from service.app import load_worklist_rules
from service.clock import from_iso
from service.settings import Settings, SettingsError
from worklists.routing import QueueRule, RoutingPolicy, age_in_years, subspecialties
from worklists.rules import DEFAULT_RULES_PATH, RulesError, parse_rules


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


@pytest.fixture(scope="module")
def routing() -> RoutingPolicy:
    return parse_rules(DEFAULT_RULES_PATH.read_text(encoding="utf-8")).routing


class TestShippedQueues:
    @pytest.mark.parametrize(
        ("modality", "body_part", "age", "queue"),
        [
            ("CT", "HEAD", 67, "neuro"),
            ("CT", "BRAIN", None, "neuro"),
            ("CT", "SKULL", None, "neuro"),
            ("MR", "BRAIN", 40, "neuro"),
            ("MR", "LSPINE", 50, "neuro"),
            ("CT", "CSPINE", 30, "neuro"),
            ("DX", "CHEST", 60, "chest"),
            ("CR", "CHEST", None, "chest"),
            ("CT", "CHEST", 55, "chest"),
            ("DX", "KNEE", 45, "msk"),
            ("MR", "KNEE", 30, "msk"),
            ("CR", "HIP", 80, "msk"),
            ("DX", "PELVIS", 70, "msk"),
            ("DX", "LSPINE", 50, "msk"),
            ("CT", "ABDOMEN", 50, "abdomen"),
            ("US", "ABDOMEN", None, "abdomen"),
            ("CT", "PELVIS", 50, "abdomen"),
            ("CT", "HEAD", 8, "paediatrics"),
            ("DX", "CHEST", 14, "paediatrics"),
            ("DX", "CHEST", 15, "chest"),
            ("MG", "BREAST", 50, "general"),
            ("CT", "", None, "general"),
            ("", "", None, "general"),
        ],
    )
    def test_queue_table(self, routing, modality, body_part, age, queue):
        """Each study lands on the queue a regional centre would read it from."""
        assert routing.queue_for(modality, body_part, age) == queue

    def test_unknown_age_never_matches_an_age_rule(self, routing):
        """Without a birth date a child's head CT goes by body part (neuro)."""
        assert routing.queue_for("CT", "HEAD", None) == "neuro"

    def test_every_queue_is_listed_with_general_last(self, routing):
        """Managers see every queue, even empty ones."""
        assert routing.queue_names == (
            "paediatrics",
            "neuro",
            "chest",
            "abdomen",
            "msk",
            "general",
        )


class TestRoutingRules:
    def test_first_matching_queue_wins(self):
        """Queues are tried in order."""
        policy = RoutingPolicy(
            (
                QueueRule("trauma", modalities=frozenset({"CT"})),
                QueueRule("neuro", body_parts=frozenset({"HEAD"})),
            )
        )
        assert policy.queue_for("CT", "HEAD") == "trauma"
        assert policy.queue_for("MR", "head") == "neuro"

    def test_default_queue_is_configurable(self):
        """[routing] default_queue names the fallback."""
        policy = parse_rules('[routing]\ndefault_queue = "Other"').routing
        assert policy.queue_for("XA", "HEART") == "other"

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            (
                '[[routing.queues]]\nname = "neuro"\nbodypart = "HEAD"',
                "[[routing.queues]] #1 ('neuro'): unknown key 'bodypart'",
            ),
            (
                '[[routing.queues]]\nname = "kids"\nmax_age_years = -1',
                "('kids'): max_age_years must be a whole number >= 0",
            ),
            (
                "[[routing.queues]]\nmodality = 'CT'",
                "[[routing.queues]] #1: every rule needs a name",
            ),
            ("[routing]\ndefault_queue = ''", "default_queue must be a non-empty string"),
        ],
    )
    def test_error_names_the_offending_queue(self, text, message):
        with pytest.raises(RulesError, match=None) as raised:
            parse_rules(text, "q.toml")
        assert message in str(raised.value)


class TestHelpers:
    @pytest.mark.parametrize(
        ("birth", "on", "years"),
        [
            ("20120601", date(2026, 5, 31), 13),
            ("20120601", date(2026, 6, 1), 14),
            ("", date(2026, 1, 1), None),
            ("2012", date(2026, 1, 1), None),
            ("20121340", date(2026, 1, 1), None),
            ("20300101", date(2026, 1, 1), None),
        ],
    )
    def test_age_in_years(self, birth, on, years):
        """Whole years from a DICOM DA birth date; unknown or nonsense gives None."""
        assert age_in_years(birth, on) == years

    def test_subspecialties_from_the_users_column(self):
        """users.subspecialties is comma-separated text."""
        assert subspecialties(" Neuro, chest ,,") == ["neuro", "chest"]
        assert subspecialties(None) == []


class TestLoadingAtStartUp:
    def test_default_is_the_shipped_file(self, tmp_path: Path):
        """No TELEREAD_WORKLIST_RULES: the shipped rules, with the stroke protocol."""
        rules = load_worklist_rules(Settings(data_dir=tmp_path))
        assert [rule.name for rule in rules.rules] == ["stroke protocol"]

    def test_a_bad_file_stops_start_up_with_the_reason(self, tmp_path: Path):
        """An operator sees which file and which rule is wrong."""
        path = tmp_path / "rules.toml"
        path.write_text('[[sla.rules]]\nname = "fast"\npriority = "asap"\nminutes = 5\n')
        with pytest.raises(SettingsError, match=r"rules.toml \[\[sla.rules\]\] #1 \('fast'\)"):
            load_worklist_rules(Settings(data_dir=tmp_path, worklist_rules=path))

    def test_a_missing_file_stops_start_up(self, tmp_path: Path):
        with pytest.raises(SettingsError, match="cannot read"):
            load_worklist_rules(Settings(worklist_rules=tmp_path / "nope.toml"))


async def test_county_stat_head_ct_is_due_in_20_minutes_on_the_neuro_queue(service):
    """A county hospital's stat head CT request is due 20 min after it was filed (the stroke
    protocol, named in the event), sits on the neuro queue, and the queue filter finds it."""
    county = await service.add_facility("Xian County Hospital", "county", "XIAN_CT")
    await service.add_user("dr.zhao", "clinician", county)
    headers = await service.login("dr.zhao")

    response = await service.client.post(
        "/api/consultations",
        json={
            "accession_number": "ACC-STROKE-1",
            "patient_id": "P900",
            "modality": "CT",
            "body_part": "HEAD",
            "priority": "stat",
            "clinical_question": "Haemorrhage? Thrombolysis candidate?",
        },
        headers=headers,
    )
    assert response.status == 201, await response.text()
    consultation_id = (await response.json())["id"]

    neuro = await service.worklist(headers, queue="neuro")
    assert [item["id"] for item in neuro["items"]] == [consultation_id]
    item = neuro["items"][0]
    assert item["queue"] == "neuro"
    assert from_iso(item["due_at"]) - from_iso(item["requested_at"]) == timedelta(minutes=20)
    assert neuro["counts"]["total"] == 1
    assert (await service.worklist(headers, queue="chest,general"))["items"] == []

    detail = await (
        await service.client.get(f"/api/consultations/{consultation_id}", headers=headers)
    ).json()
    assert detail["events"][0]["detail"]["sla_rule"] == "stroke protocol"
