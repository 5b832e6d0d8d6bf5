"""Logging set-up shared by the command and every web process it starts.

It lives here, below both ``service.cli`` and ``service.app``, because a secondary web process
(started by ``service.app.run_secondary``) must configure logging exactly as the command did
without importing the command-line layer.
"""

from __future__ import annotations

import logging


def configure_logging() -> None:
    """INFO to standard error, for the command and for every web process it starts."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # highdicom narrates every module it copies into a report object at INFO.
    logging.getLogger("highdicom").setLevel(logging.WARNING)
