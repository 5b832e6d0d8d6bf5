"""The target of a secondary web process that dies as soon as it starts, in a module of its own:
each start spawns a new interpreter that imports the target's module, and the test module's
imports (the whole app, pytest, the browser helpers) cost that start seconds on a busy machine,
in a test that counts starts (tests/test_web_processes.py)."""

from __future__ import annotations

from typing import Any


def exit_at_once(settings: Any, role: Any) -> None:
    """A secondary that dies as soon as it starts (a broken setting, a port taken)."""
    with (settings.data_dir / "starts").open("a") as log:
        log.write(f"{role.index}\n")
    raise SystemExit(3)
