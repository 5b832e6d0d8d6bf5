"""Which clients get gzipped values (service/http/compression.py)."""

from __future__ import annotations

import gzip

import pytest
from aiohttp.test_utils import make_mocked_request

from service.http.compression import accepts_gzip, gzip_fast


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip, deflate", True),
        ("br;q=1.0, GZIP;q=0.5", True),
        ("*", True),
        ("identity", False),
        ("gzip;q=0", False),
        ("", False),
    ],
)
def test_accepts_gzip_reads_accept_encoding_with_its_q_values(header, expected):
    """gzip or ``*`` without ``q=0``, in any case."""
    request = make_mocked_request("GET", "/", headers={"Accept-Encoding": header})
    assert accepts_gzip(request) is expected


def test_gzip_fast_is_gzip_any_client_inflates():
    """A standard gzip member (RFC 1952), not a raw zlib stream."""
    body = bytes(range(256)) * 64
    assert gzip.decompress(gzip_fast(body)) == body
