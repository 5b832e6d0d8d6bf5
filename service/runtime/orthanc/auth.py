"""HTTP Basic credentials for Orthanc as a header (aiohttp's BasicAuth helper is deprecated)."""

from __future__ import annotations

from base64 import b64encode


def basic_auth_header(username: str, password: str) -> dict[str, str]:
    token = b64encode(f"{username}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}
