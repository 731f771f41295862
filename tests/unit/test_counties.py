"""The packaged GB/T 2260 list of Guangxi's county-level divisions and its loader."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from contracts.counties import COUNTIES, County, counties_of_prefecture, county

PREFECTURES = {
    "450100": "南宁市",
    "450200": "柳州市",
    "450300": "桂林市",
    "450400": "梧州市",
    "450500": "北海市",
    "450600": "防城港市",
    "450700": "钦州市",
    "450800": "贵港市",
    "450900": "玉林市",
    "451000": "百色市",
    "451100": "贺州市",
    "451200": "河池市",
    "451300": "来宾市",
    "451400": "崇左市",
}

PINYIN = re.compile(r"[A-Za-z' ]+")


def kind(c: County) -> str:
    if c.name_zh.endswith("自治县"):
        return "autonomous county"
    return {"区": "district", "市": "city", "县": "county"}[c.name_zh[-1]]


def test_there_are_111_unique_guangxi_codes() -> None:
    assert len(COUNTIES) == 111
    for code, c in COUNTIES.items():
        assert code == c.code
        assert re.fullmatch(r"45\d{4}", code), code


def test_each_prefecture_code_is_the_code_prefix_and_a_known_prefecture() -> None:
    for c in COUNTIES.values():
        assert c.prefecture_code == c.code[:4] + "00"
        assert PREFECTURES.get(c.prefecture_code) == c.prefecture_zh
        assert PINYIN.fullmatch(c.prefecture_pinyin), c.prefecture_pinyin
    assert {c.prefecture_code for c in COUNTIES.values()} == set(PREFECTURES)


@pytest.mark.parametrize(
    ("code", "name_zh"),
    [
        ("450325", "兴安县"),
        ("450721", "灵山县"),
        ("450521", "合浦县"),
        ("450981", "北流市"),
        ("450226", "三江侗族自治县"),
        ("450225", "融水苗族自治县"),
        ("451081", "靖西市"),
        ("450332", "恭城瑶族自治县"),
        ("451022", "田东县"),
    ],
)
def test_the_seed_counties_are_present(code: str, name_zh: str) -> None:
    found = county(code)
    assert found is not None
    assert found.name_zh == name_zh


def test_names_end_in_a_county_level_generic_and_pinyin_is_plain() -> None:
    for c in COUNTIES.values():
        assert c.name_zh[-1] in "区县市", c.name_zh
        assert PINYIN.fullmatch(c.name_pinyin), c.name_pinyin
        if "自治" in c.name_zh:
            assert c.name_zh.endswith("自治县"), c.name_zh
            assert c.name_pinyin.endswith(" Zizhixian"), c.name_pinyin
    assert county("450325") == County("450325", "兴安县", "Xing'an Xian", "450300", "桂林市", "Guilin Shi")


def test_counts_per_kind() -> None:
    counts = Counter(kind(c) for c in COUNTIES.values())
    assert counts == {"district": 41, "city": 10, "county": 48, "autonomous county": 12}


def test_lookups() -> None:
    assert county("999999") is None
    assert county("450127") is None  # 横县 became 横州市 (450181) in 2021
    guilin = counties_of_prefecture("450300")
    assert len(guilin) == 17
    assert [c.code for c in guilin] == sorted(c.code for c in guilin)
    assert sum(len(counties_of_prefecture(p)) for p in PREFECTURES) == 111
    assert counties_of_prefecture("4503") == []
