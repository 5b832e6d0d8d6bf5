"""The demo runs with repeat-exam windows (service/demo/rules.py): the shipped rules leave them
unset, so without this `make run` would never show a requester the alert. A rules file of the
operator's own is never replaced."""

from __future__ import annotations

from pathlib import Path

from service.demo.rules import with_repeat_windows
from service.settings import Settings
from worklists.rules import DEFAULT_RULES_PATH, parse_rules


def test_the_demo_adds_the_suggested_windows_to_the_shipped_rules(tmp_path: Path):
    settings = with_repeat_windows(Settings(data_dir=tmp_path))
    assert settings.worklist_rules == tmp_path / "demo-worklist-rules.toml"
    demo = parse_rules(settings.worklist_rules.read_text(encoding="utf-8"))
    shipped = parse_rules(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    assert shipped.repeat_exams.days("CT", "HEAD") == 0
    assert demo.repeat_exams.days("CT", "HEAD") == 7
    assert demo.repeat_exams.days("CR", "CHEST") == 30
    assert demo.repeat_exams.days("MR", "KNEE") == 0
    assert demo.sla == shipped.sla  # everything else as shipped
    assert with_repeat_windows(Settings(data_dir=tmp_path)) == settings  # a restart: same file


def test_an_operators_own_rules_are_left_alone(tmp_path: Path):
    own = tmp_path / "own.toml"
    own.write_text("", encoding="utf-8")
    settings = Settings(data_dir=tmp_path, worklist_rules=own)
    assert with_repeat_windows(settings) is settings
    assert not (tmp_path / "demo-worklist-rules.toml").exists()
