"""The pure rules behind DICOMweb answers: Accept negotiation (PS3.18 8.7.3), QIDO query parsing
(PS3.18 8.3.4) and attribute matching (PS3.4 C.2.2.2). No server: the round trips are in
tests/test_dicomweb_client.py."""

from __future__ import annotations

import pytest

from service.viewing.dicomweb_attributes import element, matches
from service.viewing.dicomweb_media import (
    EXPLICIT_LE,
    OCTETS,
    choose_frame_syntax,
    choose_instance_syntax,
    parse_accept,
)
from service.viewing.dicomweb_query import MAX_RESULTS, BadQuery, parse_query

JPEG_LS = "1.2.840.10008.1.2.4.80"
OHIF = "multipart/related; type=application/octet-stream; transfer-syntax=*"


class TestFrameNegotiation:
    def test_ohif_gets_a_compressed_frame_as_stored(self):
        choice = choose_frame_syntax(parse_accept(OHIF), JPEG_LS)
        assert (choice.part_type, choice.syntax, choice.decode) == ("image/jls", JPEG_LS, False)

    def test_plain_octet_stream_decodes_a_compressed_frame(self):
        choice = choose_frame_syntax(
            parse_accept('multipart/related; type="application/octet-stream"'), JPEG_LS
        )
        assert (choice.part_type, choice.syntax, choice.decode) == (OCTETS, EXPLICIT_LE, True)

    def test_an_uncompressed_frame_is_octets_whatever_syntax_is_allowed(self):
        choice = choose_frame_syntax(parse_accept(OHIF), EXPLICIT_LE)
        assert (choice.part_type, choice.decode) == (OCTETS, False)

    def test_nothing_acceptable_is_none(self):
        assert (
            choose_frame_syntax(parse_accept('multipart/related; type="image/png"'), JPEG_LS)
            is None
        )
        assert choose_frame_syntax(parse_accept("application/json"), EXPLICIT_LE) is None

    def test_a_list_of_ranges_is_tried_in_order(self):
        accept = (
            'multipart/related; type="image/jp2", '
            f'multipart/related; type="image/jls"; transfer-syntax={JPEG_LS}'
        )
        assert choose_frame_syntax(parse_accept(accept), JPEG_LS).part_type == "image/jls"


class TestInstanceNegotiation:
    def test_no_syntax_named_means_explicit_little_endian(self):
        assert (
            choose_instance_syntax(
                parse_accept('multipart/related; type="application/dicom"')
            ).syntax
            == EXPLICIT_LE
        )

    def test_star_sends_as_stored_and_an_unknown_syntax_is_refused(self):
        assert (
            choose_instance_syntax(
                parse_accept('multipart/related; type="application/dicom"; transfer-syntax=*')
            ).syntax
            == "*"
        )
        assert (
            choose_instance_syntax(
                parse_accept('multipart/related; type="application/dicom"; transfer-syntax=1.2.3')
            )
            is None
        )


class TestQueryParsing:
    def test_keywords_and_tags_name_the_same_attribute(self):
        assert parse_query([("PatientID", "A")]).keys == parse_query([("00100020", "A")]).keys

    def test_includefield_all_limit_offset_and_fuzzy(self):
        query = parse_query(
            [
                ("includefield", "all"),
                ("includefield", "00080060,StudyTime"),
                ("limit", "5000"),
                ("offset", "3"),
                ("fuzzymatching", "true"),
            ]
        )
        assert query.include_all and query.include == {"00080060", "00080030"}
        assert (query.limit, query.offset, query.fuzzy) == (MAX_RESULTS, 3, True)

    @pytest.mark.parametrize(
        "pair",
        [
            ("NoSuchKeyword", "x"),
            ("limit", "0"),
            ("offset", "-1"),
            ("fuzzymatching", "yes"),
            ("00400275.00400009", "x"),
        ],
    )
    def test_bad_keys_and_values_are_refused(self, pair):
        with pytest.raises(BadQuery):
            parse_query([pair])


class TestMatching:
    ITEM = {
        "00100010": element("00100010", "Wang^Fang=王^芳"),
        "00080020": element("00080020", "20260304"),
        "00080060": element("00080060", "CT"),
        "0020000E": element("0020000E", "1.2.3"),
    }

    @pytest.mark.parametrize(
        ("tag", "wanted", "fuzzy", "expected"),
        [
            ("00100010", "Wang*", False, True),
            ("00100010", "wang", False, False),
            ("00100010", "wang*", False, True),
            ("00100010", "wang", True, True),
            ("00100010", "王^芳", False, True),
            ("00080020", "20260301-20260331", False, True),
            ("00080020", "-20260303", False, False),
            ("00080060", "MR,CT", False, True),
            ("0020000E", "9.9,1.2.3", False, True),
            ("00080060", "", False, True),
            ("00081030", "HEAD", False, False),
        ],
    )
    def test_matching_follows_ps3_4(self, tag, wanted, fuzzy, expected):
        assert matches(self.ITEM, tag, wanted, fuzzy) is expected
