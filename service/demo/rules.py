"""The demo's worklist rules: the shipped ones plus repeat-exam windows.

The shipped rules leave ``[repeat_exams]`` unset (a consortium chooses its own windows), so a
demo started with them would never show the alert a requester sees before repeating an exam.
The demo writes the shipped rules with the windows the rules file suggests into its data
directory and runs with that file; a ``TELEREAD_WORKLIST_RULES`` of one's own is left alone.
"""

from __future__ import annotations

import re
from dataclasses import replace

from worklists.rules import DEFAULT_RULES_PATH

from ..settings import Settings

REPEAT_WINDOWS = """
# Added by `teleread serve --demo` (service/demo/rules.py): the windows the comment above suggests.
[repeat_exams]
CT.HEAD = 7
CR.CHEST = 30
DX.CHEST = 30
"""


def with_repeat_windows(settings: Settings) -> Settings:
    """Settings whose worklist rules are the shipped ones plus :data:`REPEAT_WINDOWS`."""
    if settings.worklist_rules is not None:
        return settings
    path = settings.data_dir / "demo-worklist-rules.toml"
    text = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    if not re.search(r"^\[repeat_exams\]", text, re.MULTILINE):  # not set in the shipped file
        text += REPEAT_WINDOWS
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return replace(settings, worklist_rules=path)
