"""The import rules of pyproject.toml's [tool.importlinter] hold, and they bite: a copy of the
code with planted violations is refused with the offending imports named.

``make test`` runs ``lint-imports`` on the tree itself; these tests show the contracts catch
what they are meant to (a contract that can never fail protects nothing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))

PLANTS = {
    # a domain module reaching into the web layer
    "service/worklist/claims.py": "from ..http import keys as _planted_web",
    # storage importing a domain package
    "service/storage/consultations.py": "from ..reports import signing as _planted_domain",
    # dashboard and mwl importing each other: a circle inside one layer (a pair that names
    # itself first whichever way the cycle breaker picks: both sort before the other breakers,
    # where intake <-> worklist flipped with any new domain edge and fell out of the listing)
    "service/dashboard/charts.py": "from ..mwl import items as _planted_circle",
    "service/mwl/items.py": "from ..dashboard import charts as _planted_circle",
    # the pure rules importing the service
    "worklists/sla.py": "from service import clock as _planted_pure",
}


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--no-logo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> str:
    """lint-imports' report on a copy of the code with every plant above."""
    root = tmp_path_factory.mktemp("planted")
    ignore = shutil.ignore_patterns("__pycache__", "static", "templates", "locale")
    for package in ("service", "worklists", "viewer"):
        shutil.copytree(ROOT / package, root / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", root)
    for path, line in PLANTS.items():
        with (root / path).open("a", encoding="utf-8") as source:
            source.write(f"\n{line}  # noqa: E402, F401\n")
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stdout


def test_the_code_keeps_every_import_rule():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_domain_module_importing_the_web_layer_is_named(planted):
    assert "service.worklist is not allowed to import service.http" in planted
    assert "service.worklist.claims -> service.http.keys" in planted


def test_storage_importing_a_domain_module_is_named(planted):
    assert "service.storage is not allowed to import service.reports" in planted
    assert "service.storage.consultations -> service.reports.signing" in planted


def test_a_new_circle_between_sibling_packages_is_named(planted):
    assert "No cycles are allowed in service." in planted
    assert ".dashboard -> .mwl" in planted or ".mwl -> .dashboard" in planted


def test_the_pure_rules_importing_the_service_are_named(planted):
    assert "worklists is not allowed to import service" in planted
    assert "worklists.sla -> service.clock" in planted
