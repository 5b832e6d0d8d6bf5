"""Comparing names for the review list of likely matches (service/patients/names.py): pure."""

from __future__ import annotations

import pytest

from service.patients.names import name_agreement


@pytest.mark.parametrize(
    ("one", "other", "agreement"),
    [
        ("Chen^Guoqiang=陈^国强", "陈国强", "ideographic_name"),  # a DICOM PN's ideographic group
        ("陈^国强", "CHEN^GUOQIANG", "phonetic_name"),  # pinyin typed in capitals
        ("陈国强", "Guoqiang Chen", "phonetic_name"),  # given name first, no separator
        ("Wáng^Fāng", "Wang Fang", "phonetic_name"),  # tone marks folded
        ("单^雄信", "Shan^Xiongxin", "phonetic_name"),  # the surname's reading, not the word's
        ("欧阳^娜", "Ouyang Na", "phonetic_name"),  # a compound surname
    ],
)
def test_names_that_may_be_one_persons_agree(one: str, other: str, agreement: str):
    assert name_agreement(one, other) == agreement
    assert name_agreement(other, one) == agreement


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("陈国强", "程国强"),  # other Han characters, even when they sound alike
        ("Li^Ming", "Wang^Fang"),
        ("陈国强", ""),
    ],
)
def test_different_names_do_not_agree(one: str, other: str):
    assert name_agreement(one, other) is None
