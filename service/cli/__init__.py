"""The ``teleread`` command: serve, seed the demo, manage facilities, users, the audit trail
and signed reports. It wires the same app factory the tests use; it holds no business rules.

``main`` is imported here only because the console entry point is ``service.cli:main``.
"""

from .main import main

__all__ = ["main"]
