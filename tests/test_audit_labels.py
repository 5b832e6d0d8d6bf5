"""Every action a route records, and every resource type it names, has a label on the audit page
in both shipped languages: a manager reads "Prior reports listed", never "report.priors"."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.audit.labels import action_labels, resource_labels
from service.http.auditing import audit_declaration
from service.i18n import catalogue_path, load_translations

LOCALE_DIR = Path(__file__).resolve().parents[1] / "service" / "locale"
ZH = load_translations(catalogue_path(LOCALE_DIR, "zh_CN"), "zh_CN")


@pytest.fixture
def app_orthanc() -> None:
    """No test here stores or shows an image: the app runs without Orthanc (conftest)."""
    return None


def _declarations(app) -> set[tuple[str, str]]:
    """(action, resource type) of every audited route of the running app."""
    found = (audit_declaration(route.handler) for route in app.router.routes())
    return {d for d in found if isinstance(d, tuple)}


async def test_every_audited_action_and_resource_has_a_label(service):
    declared = _declarations(service.app)
    assert len(declared) > 40, "the router lost its audited routes"
    actions = action_labels(lambda text: text)
    resources = resource_labels(lambda text: text)
    assert sorted(a for a, _ in declared if a not in actions) == []
    assert sorted(r for _, r in declared if r and r not in resources) == []


@pytest.mark.parametrize("labels", [action_labels, resource_labels])
def test_every_label_is_translated_to_chinese(labels):
    untranslated = sorted(
        text for text in labels(lambda text: text).values() if ZH.gettext(text) == text
    )
    assert untranslated == []
