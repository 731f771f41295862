"""Reads a CSV of children, as civil-affairs offices export it from Excel, into `ChildIn` rows or per-row errors.

Pure: bytes in, `Parsed` out; the route decides what to store."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from services.registry.api import ChildIn


class ImportRefused(ValueError):
    """The file as a whole cannot be read; no row of it is looked at."""


@dataclass(frozen=True)
class Rejected:
    line: int
    errors: list[str]


@dataclass(frozen=True)
class Parsed:
    accepted: list[tuple[int, ChildIn]]
    rejected: list[Rejected]


FIELDS = tuple(ChildIn.model_fields)
REQUIRED = tuple(field for field, info in ChildIn.model_fields.items() if info.is_required())
LABELS = {
    "姓名": "name", "身份证号": "id_number", "出生日期": "birth_date", "性别": "gender", "类别": "category",
    "县区代码": "county_code", "乡镇": "township", "村": "village", "风险等级": "risk_level", "监护情况": "guardianship",
    "监护人": "guardian_name", "监护人电话": "guardian_phone", "需求": "needs", "语言": "languages", "标记": "flags",
}  # fmt: skip
# Chinese words for each coded field's values; the codes themselves are accepted as they are.
WORDS: dict[str, dict[str, str]] = {
    "gender": {"女": "female", "男": "male"},
    "category": {
        "孤儿": "orphan", "事实无人抚养儿童": "de_facto_unsupported", "事实无人抚养": "de_facto_unsupported",
        "农村留守儿童": "left_behind", "留守儿童": "left_behind", "其他困境儿童": "in_difficulty", "困境儿童": "in_difficulty",
    },
    "risk_level": {"高": "high", "中": "medium", "低": "low"},
    "guardianship": {
        "父母": "parents", "祖父母": "grandparents", "亲属": "relative", "机构": "institution", "临时监护": "temporary_state",
    },
    "needs": {
        "学业辅导": "tutoring", "心理疏导": "psychological", "陪伴": "companionship", "物资": "material", "安全": "safety",
        "亲情连线": "family_calls",
    },
    "languages": {"汉语": "zh", "普通话": "zh", "壮语": "zhuang", "瑶语": "yao", "苗语": "miao", "侗语": "dong"},
    "flags": {"涉毒家庭": "drug_involved_family", "跨境婚姻家庭": "cross_border_marriage_family"},
}  # fmt: skip
LISTS = frozenset({"needs", "languages", "flags"})
_SEPARATORS = re.compile(r"[;；、,，|\s]+")
# Excel writes dates as the sheet's locale shows them; a midnight time may trail when the cell held a date-time.
_DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?")
_DATE_FORMS = "2015-03-02, 2015/3/2, 2015.3.2 or 2015年3月2日"


def parse_children(raw: bytes, *, max_rows: int = 20_000) -> Parsed:
    """Every non-blank row below the header, accepted or rejected with its line number (the header's line is 1)."""
    records = _records(_decode(raw))
    columns: list[str | None] | None = None
    accepted: list[tuple[int, ChildIn]] = []
    rejected: list[Rejected] = []
    first_line_of_id: dict[str, int] = {}
    for line, cells in records:
        if not any(cell.strip() for cell in cells):
            continue  # Excel writes an empty sheet row as a blank line or a run of commas
        if columns is None:
            columns = _columns(line, cells)
            continue
        if len(accepted) + len(rejected) == max_rows:
            raise ImportRefused(f"the file has more than {max_rows} rows; split it into several files")
        data, errors = _row(columns, cells)
        id_number = data.get("id_number")
        if isinstance(id_number, str):
            key = id_number.upper()
            if key in first_line_of_id:
                errors.append(f"id_number: duplicate ID number in this file, first on line {first_line_of_id[key]}")
            else:
                first_line_of_id[key] = line
        try:
            child = ChildIn.model_validate(data)
        except ValidationError as error:
            # A field that could not be read was left out; pydantic's "missing" for it would only repeat the error.
            errors += [_message(e) for e in error.errors() if not (e["type"] == "missing" and e["loc"][0] in data)]
            errors += [_message(e) for e in error.errors() if e["type"] != "missing" or e["loc"][0] not in data]
        if errors:
            rejected.append(Rejected(line, errors))
        else:
            accepted.append((line, child))
    if columns is None:
        raise ImportRefused("the file is empty")
    return Parsed(accepted, rejected)
