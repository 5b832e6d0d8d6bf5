"""Which clients get zstd, gzip or identity values (service/http/compression.py)."""

from __future__ import annotations

import gzip

import pytest
import zstandard
from aiohttp.test_utils import make_mocked_request

from service.http.compression import accepts_gzip, coding_for, gzip_fast, zstd_fast


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


@pytest.mark.parametrize(
    ("header", "coding"),
    [
        (None, "identity"),
        ("", "identity"),
        ("gzip, deflate, br, zstd", "zstd"),
        ("ZSTD", "zstd"),
        ("*", "zstd"),
        ("gzip, deflate", "gzip"),
        ("zstd;q=0, gzip", "gzip"),
        ("zstd;q=0.5, gzip", "gzip"),
        ("zstd;q=0.5, gzip;q=0.4", "zstd"),
        ("zstd;q=nonsense, gzip", "gzip"),
        ("zstd;q=2, gzip", "gzip"),
        ("*, zstd;q=0", "gzip"),
        ("*;q=0", "identity"),
        ("gzip;q=0", "identity"),
        ("identity;q=1, zstd;q=0.5", "identity"),
        ("identity;q=0, zstd;q=0, gzip;q=0", "identity"),
    ],
)
def test_coding_for_weighs_accept_encoding_and_breaks_ties_zstd_gzip_identity(header, coding):
    """RFC 9110 12.5.3: the highest q wins; a coding not named takes ``*``'s weight; identity
    not named is the last resort; a malformed or out-of-range q turns a coding off."""
    assert coding_for(header) == coding


def test_zstd_fast_is_a_zstd_frame_any_decoder_reads():
    """One frame with its content size, which a decoder without a size hint reads whole."""
    body = bytes(range(256)) * 64
    frame = zstd_fast(body)
    assert zstandard.frame_content_size(frame) == len(body)
    assert zstandard.ZstdDecompressor().decompress(frame) == body


def test_zstd_fast_keeps_its_window_within_what_browsers_decode():
    """RFC 9659: a decoder of HTTP content may refuse windows over 8 MiB; a CR of 3000x3000
    int16 values (18 MB) must not need one."""
    body = bytes(range(256)) * (18_000_000 // 256)
    assert zstandard.get_frame_parameters(zstd_fast(body)).window_size <= 8 * 1024 * 1024
