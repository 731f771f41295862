"""Reads a CSV of children or of volunteers, as county offices export it from Excel, into models or per-row errors.
Pure: bytes in, `Parsed` out; the route decides what to store."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from backbone.csvexport import read_back
from services.registry.models import ChildIn

if TYPE_CHECKING:
    from services.registry.volunteer_api import VolunteerIn

T = TypeVar("T", bound=BaseModel)


class ImportRefused(ValueError):
    """The file as a whole cannot be read; no row of it is looked at."""


@dataclass(frozen=True)
class Rejected:
    line: int
    errors: list[str]


@dataclass(frozen=True)
class Parsed(Generic[T]):
    accepted: list[tuple[int, T]]
    rejected: list[Rejected]


@dataclass(frozen=True)
class RowSpec(Generic[T]):
    """A kind of row: the model it becomes, and how people write its columns and values in Excel."""

    model: type[T]
    labels: Mapping[str, str]  # Chinese column name → field; a field may have several
    words: Mapping[str, Mapping[str, str]]  # field → Chinese word → value; the values themselves are read as they are
    unique: tuple[str, str]  # a field no two rows of a file may share, and what its values are called in errors
    lists: frozenset[str] = frozenset()  # fields whose cell holds several values
    dates: frozenset[str] = frozenset()
    digits: frozenset[str] = frozenset()  # typed in Excel with a leading apostrophe to keep the digits as text


NEEDS = {
    "学业辅导": "tutoring", "心理疏导": "psychological", "陪伴": "companionship", "物资": "material", "安全": "safety",
    "亲情连线": "family_calls",
}  # fmt: skip
LANGUAGES = {"汉语": "zh", "普通话": "zh", "壮语": "zhuang", "瑶语": "yao", "苗语": "miao", "侗语": "dong"}
CHILDREN = RowSpec(
    ChildIn,
    labels={
        "姓名": "name", "身份证号": "id_number", "出生日期": "birth_date", "性别": "gender", "类别": "category",
        "县区代码": "county_code", "乡镇": "township", "村": "village", "风险等级": "risk_level",
        "监护情况": "guardianship", "监护人": "guardian_name", "监护人电话": "guardian_phone", "需求": "needs",
        "语言": "languages", "标记": "flags",
    },
    words={
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
        "needs": NEEDS,
        "languages": LANGUAGES,
        "flags": {"涉毒家庭": "drug_involved_family", "跨境婚姻家庭": "cross_border_marriage_family"},
    },
    unique=("id_number", "ID number"),
    lists=frozenset({"needs", "languages", "flags"}),
    dates=frozenset({"birth_date"}),
    digits=frozenset({"id_number", "guardian_phone"}),
)  # fmt: skip
VOLUNTEER_LABELS = {
    "姓名": "name", "电话": "phone", "手机": "phone", "类型": "kind", "县区代码": "county_code", "乡镇": "township",
    "村": "village", "可结对人数": "capacity", "特长": "skills", "语言": "languages", "可服务时间": "availability",
}  # fmt: skip
VOLUNTEER_WORDS = {
    "kind": {
        "爱心家长": "caring_parent", "儿童主任": "child_director", "社工": "social_worker",
        "协会志愿者": "association_volunteer", "义工": "association_volunteer", "企业志愿者": "enterprise_volunteer",
        "干部": "cadre",
    },
    "skills": NEEDS,  # what a volunteer can help with is what a child may need
    "languages": LANGUAGES,
}  # fmt: skip

_SEPARATORS = re.compile(r"[;；、,，|\s]+")
_SPACING = re.compile(r"[\s-]+")
# Excel writes dates as the sheet's locale shows them; a time trails (and is dropped) when the cell held a date-time.
_DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?")
_DATE_FORMS = "2015-03-02, 2015/3/2, 2015.3.2 or 2015年3月2日"


def parse_children(raw: bytes, *, max_rows: int = 20_000) -> Parsed[ChildIn]:
    """A file of children (姓名, 身份证号, …); see `parse`."""
    return parse(raw, CHILDREN, max_rows=max_rows)


def parse_volunteers(raw: bytes, *, max_rows: int = 20_000) -> Parsed[VolunteerIn]:
    """A file of volunteers (姓名, 电话, 类型, …); see `parse`."""
    # Imported here, not above: volunteer_api may well import this module for its own import route.
    from services.registry.volunteer_api import VolunteerIn

    spec = RowSpec(
        VolunteerIn,
        labels=VOLUNTEER_LABELS,
        words=VOLUNTEER_WORDS,
        unique=("phone", "phone"),
        lists=frozenset({"skills", "languages"}),
        digits=frozenset({"phone"}),
    )
    return parse(raw, spec, max_rows=max_rows)


def parse(raw: bytes, spec: RowSpec[T], *, max_rows: int = 20_000) -> Parsed[T]:
    """Every non-blank row below the header, accepted or rejected with its line number (the header's line is 1)."""
    columns: list[str | None] | None = None
    accepted: list[tuple[int, T]] = []
    rejected: list[Rejected] = []
    unique, called = spec.unique
    first_line_of: dict[str, int] = {}
    for line, cells in _records(_decode(raw)):
        if not any(cell.strip() for cell in cells):
            continue  # Excel writes an empty sheet row as a blank line or as a run of commas
        if columns is None:
            columns = _columns(line, cells, spec)
            continue
        if len(accepted) + len(rejected) == max_rows:
            raise ImportRefused(f"the file has more than {max_rows} rows; split it into several files")
        data, errors, unread = _row(columns, cells, spec)
        if isinstance(value := data.get(unique), str):
            key = _SPACING.sub("", value).upper()  # the same number however it is spaced, hyphenated or cased
            if key in first_line_of:
                errors.append(f"{unique}: duplicate {called} in this file, first on line {first_line_of[key]}")
            else:
                first_line_of[key] = line
        try:
            row = spec.model.model_validate(data)
        except ValidationError as error:
            # A cell that could not be read was left out; pydantic calling it missing would only repeat its error.
            errors += [_message(e, spec) for e in error.errors() if not (e["loc"] and e["loc"][0] in unread)]
        if errors:
            rejected.append(Rejected(line, errors))
        else:
            accepted.append((line, row))
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


def _columns(line: int, cells: list[str], spec: RowSpec[Any]) -> list[str | None]:
    """The field each column holds (None for a column without a name), or the file's refusal."""
    names = {**spec.labels, **{field: field for field in spec.model.model_fields}}  # English names in any case
    columns = [names.get(cell.strip().lower()) for cell in cells]
    labels: dict[str, list[str]] = {}
    for label, field in spec.labels.items():
        labels.setdefault(field, []).append(label)
    known = ", ".join(f"{field} ({' or '.join(them)})" for field, them in labels.items())
    if not any(columns):
        # The first row may well be data: name none of its cells, they may be a person's name or phone number.
        raise ImportRefused(f"line {line} is not a header: none of its cells is a column name; the columns are {known}")
    problems = []
    # Named by position only: once one cell is a column name, the others may still be a name or an ID number.
    unknown = [
        str(n) for n, (cell, field) in enumerate(zip(cells, columns, strict=True), 1) if cell.strip() and not field
    ]
    if unknown:
        problems.append(
            f"column {unknown[0]} has an unknown name"
            if len(unknown) == 1
            else f"columns {', '.join(unknown)} have unknown names"
        )
    required = [field for field, info in spec.model.model_fields.items() if info.is_required()]
    missing = [field for field in required if field not in columns]
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    twice = sorted({field for field in columns if field and columns.count(field) > 1})
    if twice:
        problems.append(f"columns given more than once: {', '.join(twice)}")
    if problems:
        raise ImportRefused(f"line {line}: {'; '.join(problems)}; the columns are {known}")
    return columns


def _row(columns: list[str | None], cells: list[str], spec: RowSpec[Any]) -> tuple[dict[str, Any], list[str], set[str]]:
    """The row's values as the model reads them, the errors found reading them, and the fields left unread."""
    data: dict[str, Any] = {}
    errors: list[str] = []
    unread: set[str] = set()
    for index, cell in enumerate(cells):
        value = read_back(cell.strip())  # a file this service exported, edited and sent back
        if not value:
            continue  # an empty cell is a value not given: the model's default, or its "missing" error
        if index >= len(columns):
            errors.append(f"column {index + 1}: the row has more cells than the header has columns")
            continue
        field = columns[index]
        if field is None:
            errors.append(f"column {index + 1}: a value in a column without a name in the header")
            continue
        words = spec.words.get(field, {})
        if field in spec.dates:
            try:
                data[field] = _date(value)
            except ValueError as error:
                errors.append(f"{field}: {error}")
                unread.add(field)
        elif field in spec.lists:
            data[field] = list(
                dict.fromkeys(words.get(item, item.lower()) for item in _SEPARATORS.split(value) if item)
            )
        elif words:
            data[field] = words.get(value, value.lower())
        elif field in spec.digits:
            data[field] = value.lstrip("'")
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


def _message(error: ErrorDetails, spec: RowSpec[Any]) -> str:
    """A pydantic error as "field: reason"; never with the input, which may be a person's name or phone number."""
    reason = "no value given" if error["type"] == "missing" else error["msg"].removeprefix("Value error, ")
    loc = error["loc"]
    if not loc:
        return reason  # a check across fields
    where = str(loc[0]) + (f" (item {loc[1] + 1})" if len(loc) > 1 and isinstance(loc[1], int) else "")
    if error["type"] == "literal_error" and str(loc[0]) in spec.words:
        reason += f", or in Chinese {', '.join(spec.words[str(loc[0])])}"
    return f"{where}: {reason}"
