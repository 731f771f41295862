"""GB/T 2260 county-level divisions of Guangxi (as of 2023), read once from the packaged CSV; shared reference data:
the registry validates county codes with it, matching names the areas of its figures.

Pinyin convention (GB/T 16159 style, no tone marks): the specific name is one capitalised word, the generic
term a separate capitalised word (Qu, Xian, Shi; autonomous counties "<Name> <Ethnic>zu Zizhixian", Ge-zu for
各族); an apostrophe precedes a syllable starting with a, o or e ("Xing'an Xian", "Tian'e Xian").
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources

_DATA_FILE = "gbt2260-guangxi.csv"


@dataclass(frozen=True)
class County:
    code: str
    name_zh: str
    name_pinyin: str
    prefecture_code: str
    prefecture_zh: str
    prefecture_pinyin: str


def _load() -> dict[str, County]:
    text = resources.files("contracts").joinpath("data").joinpath(_DATA_FILE).read_text(encoding="utf-8")
    counties: dict[str, County] = {}
    for row in csv.DictReader(io.StringIO(text)):
        county = County(
            code=row["code"],
            name_zh=row["name_zh"],
            name_pinyin=row["name_pinyin"],
            prefecture_code=row["prefecture_code"],
            prefecture_zh=row["prefecture_zh"],
            prefecture_pinyin=row["prefecture_pinyin"],
        )
        if county.code in counties:
            raise ValueError(f"duplicate county code {county.code} in {_DATA_FILE}")
        counties[county.code] = county
    return counties


COUNTIES: dict[str, County] = _load()


def county(code: str) -> County | None:
    """The county-level division with this six-digit GB/T 2260 code, or None if Guangxi has none."""
    return COUNTIES.get(code)


def counties_of_prefecture(prefecture_code: str) -> list[County]:
    """The prefecture's divisions in code order; `prefecture_code` is six digits, e.g. "450300"."""
    return sorted((c for c in COUNTIES.values() if c.prefecture_code == prefecture_code), key=lambda c: c.code)


REGIONS = {"45": ("广西壮族自治区", "Guangxi Zhuangzu Zizhiqu")}


def area_name(code: str) -> tuple[str, str] | None:
    """The Chinese and pinyin name of a region (2 digits), city (4) or county (6), or None if not shipped."""
    if len(code) == 2:
        return REGIONS.get(code)
    if len(code) == 4:
        city = next((c for c in COUNTIES.values() if c.prefecture_code == f"{code}00"), None)
        return (city.prefecture_zh, city.prefecture_pinyin) if city else None
    found = COUNTIES.get(code)
    return (found.name_zh, found.name_pinyin) if found else None
