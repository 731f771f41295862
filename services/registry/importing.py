"""Reads a CSV of children, as civil-affairs offices export it from Excel, into `ChildIn`s or per-row errors.
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

from services.registry.models import ChildIn


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


REQUIRED = tuple(field for field, info in ChildIn.model_fields.items() if info.is_required())
LABELS = {
    "姓名": "name", "身份证号": "id_number", "出生日期": "birth_date", "性别": "gender", "类别": "category",
    "县区代码": "county_code", "乡镇": "township", "村": "village", "风险等级": "risk_level",
    "监护情况": "guardianship", "监护人": "guardian_name", "监护人电话": "guardian_phone", "需求": "needs",
    "语言": "languages", "标记": "flags",
}  # fmt: skip
# The Chinese words for each coded field's values; the codes themselves are read as they are.
WORDS: dict[str, dict[str, str]] = {
    "gender": {"女": "female", "男": "male"},
    "category": {
        "孤儿": "orphan", "事实无人抚养儿童": "de_facto_unsupported", "事实无人抚养": "de_facto_unsupported",
        "农村留守儿童": "left_behind", "留守儿童": "left_behind",
        "其他困境儿童": "in_difficulty", "困境儿童": "in_difficulty",
    },
    "risk_level": {"高": "high", "中": "medium", "低": "low"},
    "guardianship": {
        "父母": "parents", "祖父母": "grandparents", "亲属": "relative", "机构": "institution",
        "临时监护": "temporary_state",
    },
    "needs": {
        "学业辅导": "tutoring", "心理疏导": "psychological", "陪伴": "companionship", "物资": "material",
        "安全": "safety", "亲情连线": "family_calls",
    },
    "languages": {"汉语": "zh", "普通话": "zh", "壮语": "zhuang", "瑶语": "yao", "苗语": "miao", "侗语": "dong"},
    "flags": {"涉毒家庭": "drug_involved_family", "跨境婚姻家庭": "cross_border_marriage_family"},
}  # fmt: skip
NAMES = {**LABELS, **{field: field for field in ChildIn.model_fields}}  # English names in any case
LISTS = frozenset({"needs", "languages", "flags"})
_SEPARATORS = re.compile(r"[;；、,，|\s]+")
# Excel writes dates as the sheet's locale shows them; a time trails (and is dropped) when the cell held a date-time.
_DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?")
_DATE_FORMS = "2015-03-02, 2015/3/2, 2015.3.2 or 2015年3月2日"


def parse_children(raw: bytes, *, max_rows: int = 20_000) -> Parsed:
    """Every non-blank row below the header, accepted or rejected with its line number (the header's line is 1)."""
    columns: list[str | None] | None = None
    accepted: list[tuple[int, ChildIn]] = []
    rejected: list[Rejected] = []
    first_line_of_id: dict[str, int] = {}
    for line, cells in _records(_decode(raw)):
        if not any(cell.strip() for cell in cells):
            continue  # Excel writes an empty sheet row as a blank line or as a run of commas
        if columns is None:
            columns = _columns(line, cells)
            continue
        if len(accepted) + len(rejected) == max_rows:
            raise ImportRefused(f"the file has more than {max_rows} rows; split it into several files")
        data, errors, unread = _row(columns, cells)
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
            # A cell that could not be read was left out; pydantic calling it missing would only repeat its error.
            errors += [_message(e) for e in error.errors() if not (e["loc"] and e["loc"][0] in unread)]
        if errors:
            rejected.append(Rejected(line, errors))
        else:
            accepted.append((line, child))
    if columns is None:
        raise ImportRefused("the file is empty")
    if not accepted and not rejected:
        raise ImportRefused("the file has a header but no rows")
    return Parsed(accepted, rejected)


def _decode(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("gb18030")  # what Excel's "CSV (comma delimited)" writes on a Chinese Windows
        except UnicodeDecodeError:
            raise ImportRefused("the file is neither UTF-8 nor GB18030 text; save it from Excel as CSV") from None
    return text.removeprefix("\ufeff")  # GB18030 has a BOM too


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """Rows with their numbers as a spreadsheet shows them: blank lines count, a quoted line break does not."""
    line = 0
    try:
        for line, cells in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            yield line, cells
    except csv.Error as error:  # its messages name the problem, never the cell's text
        raise ImportRefused(f"line {line + 1} cannot be read as CSV: {error}") from None


def _columns(line: int, cells: list[str]) -> list[str | None]:
    """The field each column holds (None for a column without a name), or the file's refusal."""
    columns = [NAMES.get(cell.strip().lower()) for cell in cells]
    known = ", ".join(f"{field} ({label})" for label, field in LABELS.items())
    if not any(columns):
        # The first row may well be data: name none of its cells, they may be a child's name or ID number.
        raise ImportRefused(f"line {line} is not a header: none of its cells is a column name; the columns are {known}")
    problems = []
    unknown = [cell.strip()[:40] for cell, field in zip(cells, columns, strict=True) if cell.strip() and not field]
    if unknown:
        problems.append(f"unknown columns: {', '.join(unknown)}")
    missing = [field for field in REQUIRED if field not in columns]
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    twice = sorted({field for field in columns if field and columns.count(field) > 1})
    if twice:
        problems.append(f"columns given more than once: {', '.join(twice)}")
    if problems:
        raise ImportRefused(f"line {line}: {'; '.join(problems)}; the columns are {known}")
    return columns


def _row(columns: list[str | None], cells: list[str]) -> tuple[dict[str, Any], list[str], set[str]]:
    """The row's values as ChildIn reads them, the errors found reading them, and the fields that could not be read."""
    data: dict[str, Any] = {}
    errors: list[str] = []
    unread: set[str] = set()
    for index, cell in enumerate(cells):
        value = cell.strip()
        if not value:
            continue  # an empty cell is a value not given: ChildIn's default, or its "missing" error
        if index >= len(columns):
            errors.append(f"column {index + 1}: the row has more cells than the header has columns")
            continue
        field = columns[index]
        if field is None:
            errors.append(f"column {index + 1}: a value in a column without a name in the header")
        elif field == "birth_date":
            try:
                data[field] = _date(value)
            except ValueError as error:
                errors.append(f"birth_date: {error}")
                unread.add(field)
        elif field in LISTS:
            words = WORDS[field]
            data[field] = list(
                dict.fromkeys(words.get(item, item.lower()) for item in _SEPARATORS.split(value) if item)
            )
        elif field in WORDS:
            data[field] = WORDS[field].get(value, value.lower())
        elif field in ("id_number", "guardian_phone"):
            data[field] = value.lstrip("'")  # typed in Excel with a leading apostrophe to keep the digits as text
        else:
            data[field] = value
    return data, errors, unread


def _date(value: str) -> date:
    match = _DATE.fullmatch(value)
    if match is None:
        raise ValueError(f"a date is written {_DATE_FORMS}")
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise ValueError("no such day in the calendar") from None


def _message(error: ErrorDetails) -> str:
    """A pydantic error as "field: reason"; never with the input, which may be a child's name or ID number."""
    reason = "no value given" if error["type"] == "missing" else error["msg"].removeprefix("Value error, ")
    loc = error["loc"]
    if not loc:
        return reason  # a check across fields
    where = str(loc[0]) + (f" (item {loc[1] + 1})" if len(loc) > 1 and isinstance(loc[1], int) else "")
    if error["type"] == "literal_error" and str(loc[0]) in WORDS:
        reason += f", or in Chinese {', '.join(WORDS[str(loc[0])])}"
    return f"{where}: {reason}"
