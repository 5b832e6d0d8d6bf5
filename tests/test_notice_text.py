"""Notices are stored as a code and parameters and read in each reader's language."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.i18n import PageRenderer
from service.worklist.notice_text import MESSAGES, render_notice

SERVICE = Path(__file__).resolve().parents[1] / "service"


@pytest.fixture(scope="module")
def renderer() -> PageRenderer:
    return PageRenderer(SERVICE / "templates", SERVICE / "locale")


def stored(message: str, params: dict, **extra) -> dict:
    """A row as ``notifications_of`` returns it."""
    return {
        "id": 1,
        "kind": message or "stat",
        "message": message,
        "params": params,
        "consultation_id": 8,
        "title": "stored English title",
        "body": "stored English body",
        "created_at": "2026-03-01T08:00:00Z",
        "read_at": None,
        "patient_name": "李^四",
        "patient_id": "P-CRIT",
        "modality": "CT",
        "body_part": "HEAD",
        "study_description": "CT HEAD",
        **extra,
    }


class TestRenderNotice:
    def test_a_critical_finding_names_patient_id_and_study_in_each_language(self, renderer):
        """The same row reads in English and in Chinese; the link opens the consultation."""
        row = stored("critical_finding", {"version": 1})
        english = render_notice(row, renderer.gettext("en"))
        chinese = render_notice(row, renderer.gettext("zh_CN"))
        assert english["title"] == "Critical finding: 李 四, ID P-CRIT"
        assert chinese["title"] == "危急值：李 四，ID P-CRIT"
        assert english["body"].startswith("CT HEAD: a critical finding")
        assert chinese["body"].startswith("CT HEAD：报告含危急值")
        assert english["link"] == chinese["link"] == "/consultations/8"

    def test_an_escalation_shows_the_due_time_in_the_readers_zone(self, renderer):
        """Due 08:30 UTC reads 16:30 in Asia/Shanghai, with the priority translated."""
        params = {
            "reason": "overdue",
            "priority": "stat",
            "facility": "县医院",
            "queue": "neuro",
            "due_at": "2026-03-01T08:30:00.000000Z",
        }
        notice = render_notice(
            stored("escalation", params), renderer.gettext("zh_CN"), "Asia/Shanghai"
        )
        assert notice["title"] == "已升级（已超时）：急诊 CT HEAD，来自 县医院"
        assert notice["body"] == "队列 neuro，截止 2026-03-01 16:30"

    def test_a_notice_stored_before_codes_is_shown_as_stored(self, renderer):
        """No code: the stored text, and the patient and study beside it."""
        notice = render_notice(stored("", {}), renderer.gettext("zh_CN"))
        assert (notice["title"], notice["body"]) == ("stored English title", "stored English body")
        assert (notice["patient_name"], notice["study"]) == ("李^四", "CT HEAD")

    @pytest.mark.parametrize("code", sorted(MESSAGES))
    def test_every_code_renders_in_chinese_without_english_left(self, renderer, code):
        """Each known code, with every parameter filled, leaves no placeholder or English."""
        params = {
            "reason": "unclaimed",
            "priority": "urgent",
            "facility": "县医院",
            "queue": "chest",
            "due_at": "2026-03-01T08:30:00Z",
            "minutes": "15",
            "channel": "dicom",
            "reason_text": "",
            "version": 1,
        }
        notice = render_notice(stored(code, params), renderer.gettext("zh_CN"), "Asia/Shanghai")
        text = notice["title"] + notice["body"]
        assert "{" not in text and "stored" not in text
        assert not any(word in text for word in ("from", "Queue", "due", "Critical", "Report"))
