"""Reading a CSV of children as civil-affairs offices export it from Excel: pure, no I/O."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta

import pytest

from services.registry.importing import ImportRefused, parse_children
from tests.helpers import to_csv

FIELDS = [
    "name", "id_number", "birth_date", "gender", "category", "county_code", "township", "village", "risk_level",
    "guardianship", "guardian_name", "guardian_phone", "needs", "languages", "flags",
]  # fmt: skip
LABELS = dict(
    zip(
        FIELDS,
        ["姓名", "身份证号", "出生日期", "性别", "类别", "县区代码", "乡镇", "村", "风险等级", "监护情况", "监护人",
         "监护人电话", "需求", "语言", "标记"],
        strict=True,
    )
)  # fmt: skip
COUNTIES = ("450325", "450721", "450521", "450981")  # 兴安县, 灵山县, 合浦县, 北流市
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # GB 11643-1999
CHECK = "10X98765432"


def id_number(county: str, born: date, serial: int) -> str:
    body = f"{county}{born:%Y%m%d}{serial:03d}"
    return body + CHECK[sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True)) % 11]


def child(**change: str) -> dict[str, str]:
    row = {
        "name": "李小梅",
        "id_number": id_number("450325", date(2015, 3, 2), 12),
        "birth_date": "2015-03-02",
        "gender": "female",
        "category": "left_behind",
        "county_code": "450325",
        "township": "兴安镇",
        "village": "黄家村",
        "risk_level": "high",
        "guardianship": "grandparents",
        "guardian_name": "李大山",
        "guardian_phone": "13800138000",
        "needs": "tutoring;companionship",
        "languages": "zh",
        "flags": "",
    }
    return row | change


def english(*rows: dict[str, str], encoding: str = "utf-8") -> bytes:
    return to_csv(FIELDS, ([row[field] for field in FIELDS] for row in rows), encoding)


def chinese(*rows: dict[str, str], encoding: str = "gb18030") -> bytes:
    return to_csv(LABELS.values(), ([row[field] for field in FIELDS] for row in rows), encoding)


def only_errors(raw: bytes) -> list[str]:
    parsed = parse_children(raw)
    assert not parsed.accepted
    assert len(parsed.rejected) == 1
    return parsed.rejected[0].errors


def test_english_headers_in_utf8() -> None:
    parsed = parse_children(english(child(), child(id_number="", name="王浩然")))
    assert parsed.rejected == []
    assert [line for line, _ in parsed.accepted] == [2, 3]
    first = parsed.accepted[0][1]
    assert first.name == "李小梅"
    assert first.id_number == id_number("450325", date(2015, 3, 2), 12)
    assert first.birth_date == date(2015, 3, 2)
    assert (first.gender, first.category, first.risk_level, first.guardianship) == (
        "female",
        "left_behind",
        "high",
        "grandparents",
    )
    assert first.needs == ["tutoring", "companionship"]
    assert first.languages == ["zh"]
    assert first.flags == []
    assert parsed.accepted[1][1].id_number is None


def test_chinese_headers_and_values_in_gb18030() -> None:
    row = child(
        gender="男",
        category="事实无人抚养儿童",
        risk_level="中",
        guardianship="亲属",
        birth_date="2015年3月2日",
        needs="心理疏导、物资",
        languages="壮语、普通话",
        flags="涉毒家庭",
    )
    raw = chinese(row)
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # really GB18030, as Excel on a Chinese Windows writes it
    [(line, kid)] = parse_children(raw).accepted
    assert line == 2
    assert kid.name == "李小梅"
    assert kid.village == "黄家村"
    assert (kid.gender, kid.category, kid.risk_level, kid.guardianship) == (
        "male",
        "de_facto_unsupported",
        "medium",
        "relative",
    )
    assert kid.birth_date == date(2015, 3, 2)
    assert kid.needs == ["psychological", "material"]
    assert kid.languages == ["zhuang", "zh"]
    assert kid.flags == ["drug_involved_family"]


@pytest.mark.parametrize("make", [english, chinese])
def test_utf8_with_bom(make: Callable[..., bytes]) -> None:
    raw = make(child(), encoding="utf-8-sig")
    assert raw.startswith(b"\xef\xbb\xbf")
    [(line, kid)] = parse_children(raw).accepted
    assert (line, kid.name) == (2, "李小梅")


def test_header_mixing_both_languages_with_whitespace_and_any_case() -> None:
    header = [f"  {LABELS[field]} " if i % 2 else f" {field.upper()}\t" for i, field in enumerate(FIELDS)]
    raw = to_csv(header, [[child()[field] for field in FIELDS]])
    [(line, kid)] = parse_children(raw).accepted
    assert (line, kid.guardian_phone, kid.county_code) == (2, "13800138000", "450325")


def test_columns_may_come_in_any_order_and_optional_ones_may_be_left_out() -> None:
    fields = ["village", "township", "county_code", "category", "gender", "birth_date", "name", "risk_level"]
    raw = to_csv([*fields, "guardianship"], [[child()[field] for field in fields] + ["临时监护"]])
    [(_, kid)] = parse_children(raw).accepted
    assert (kid.id_number, kid.guardian_name, kid.needs, kid.languages) == (None, None, [], ["zh"])


REFUSALS = [
    ("not decodable", "\ufeff姓名,身份证号".encode("utf-16-le"), "neither UTF-8 nor GB18030"),
    ("empty", b"", "empty"),
    ("only blank lines", b"\r\n\r\n,,,\r\n", "empty"),
    ("no header", to_csv([child()[field] for field in FIELDS], []), "line 1 is not a header"),
    ("unknown columns", to_csv([*FIELDS, "备注", "remarks"], []), "columns 16, 17 have unknown names"),
    ("missing columns", to_csv([f for f in FIELDS if f not in ("village", "category")], []), "missing columns"),
    ("duplicate columns", to_csv([*FIELDS, " 姓名"], []), "columns given more than once: name"),
    ("header only", to_csv(FIELDS, []), "a header but no rows"),
    ("unreadable CSV", english(child(township="镇" * 200_000)), "line 2 cannot be read as CSV"),
]


@pytest.mark.parametrize(
    ("raw", "message"), [(raw, message) for _, raw, message in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_whole_file_refusals(raw: bytes, message: str) -> None:
    with pytest.raises(ImportRefused, match=message) as refusal:
        parse_children(raw)
    assert "李小梅" not in str(refusal.value)  # a data row taken for a header is not echoed


def test_missing_columns_are_all_named() -> None:
    raw = to_csv([f for f in FIELDS if f not in ("village", "category")], [])
    with pytest.raises(ImportRefused, match="missing columns: category, village"):
        parse_children(raw)


def test_more_rows_than_allowed_are_refused() -> None:
    rows = [child(id_number="", name=f"王{chr(0x4E00 + i)}") for i in range(4)]
    assert len(parse_children(english(*rows[:3]), max_rows=3).accepted) == 3
    with pytest.raises(ImportRefused, match="more than 3 rows"):
        parse_children(english(*rows), max_rows=3)


TRANSLATIONS = [
    ("gender", "女", "female"),
    ("gender", "男", "male"),
    ("gender", "Male", "male"),
    ("category", "孤儿", "orphan"),
    ("category", "事实无人抚养儿童", "de_facto_unsupported"),
    ("category", "事实无人抚养", "de_facto_unsupported"),
    ("category", "农村留守儿童", "left_behind"),
    ("category", "留守儿童", "left_behind"),
    ("category", "其他困境儿童", "in_difficulty"),
    ("category", "困境儿童", "in_difficulty"),
    ("category", "orphan", "orphan"),
    ("risk_level", "高", "high"),
    ("risk_level", "中", "medium"),
    ("risk_level", "低", "low"),
    ("risk_level", "LOW", "low"),
    ("guardianship", "父母", "parents"),
    ("guardianship", "祖父母", "grandparents"),
    ("guardianship", "亲属", "relative"),
    ("guardianship", "机构", "institution"),
    ("guardianship", "临时监护", "temporary_state"),
    ("guardianship", "institution", "institution"),
    ("needs", "学业辅导", ["tutoring"]),
    ("needs", "心理疏导", ["psychological"]),
    ("needs", "陪伴", ["companionship"]),
    ("needs", "物资", ["material"]),
    ("needs", "安全", ["safety"]),
    ("needs", "亲情连线", ["family_calls"]),
    ("needs", "family_calls", ["family_calls"]),
    ("languages", "汉语", ["zh"]),
    ("languages", "普通话", ["zh"]),
    ("languages", "壮语", ["zhuang"]),
    ("languages", "瑶语", ["yao"]),
    ("languages", "苗语", ["miao"]),
    ("languages", "侗语", ["dong"]),
    ("languages", "dong", ["dong"]),
    ("flags", "涉毒家庭", ["drug_involved_family"]),
    ("flags", "跨境婚姻家庭", ["cross_border_marriage_family"]),
    ("flags", "cross_border_marriage_family", ["cross_border_marriage_family"]),
]


@pytest.mark.parametrize(("field", "written", "read"), TRANSLATIONS)
def test_values_in_either_language(field: str, written: str, read: object) -> None:
    [(_, kid)] = parse_children(chinese(child(**{field: written}))).accepted
    assert getattr(kid, field) == read


@pytest.mark.parametrize(
    ("field", "written", "read"),
    [
        ("needs", "学业辅导；陪伴、物资,安全，心理疏导|亲情连线", ["tutoring", "companionship", "material", "safety",
                                                              "psychological", "family_calls"]),
        ("needs", " 陪伴 ; companionship ;; 陪伴 ", ["companionship"]),
        ("languages", "汉语 壮语\u3000瑶语", ["zh", "zhuang", "yao"]),
        ("languages", "zh;zhuang", ["zh", "zhuang"]),
        ("flags", "涉毒家庭、跨境婚姻家庭", ["drug_involved_family", "cross_border_marriage_family"]),
    ],
)  # fmt: skip
def test_list_cells_take_any_separator(field: str, written: str, read: list[str]) -> None:
    [(_, kid)] = parse_children(english(child(**{field: written}))).accepted
    assert getattr(kid, field) == read


def test_empty_optional_cells_are_not_given() -> None:
    row = child(id_number="", guardianship="临时监护", guardian_name="", guardian_phone=" ", needs="", languages="")
    [(_, kid)] = parse_children(english(row)).accepted
    assert (kid.id_number, kid.guardian_name, kid.guardian_phone) == (None, None, None)
    assert (kid.needs, kid.languages, kid.flags) == ([], ["zh"], [])


@pytest.mark.parametrize(
    "written",
    [
        "2015-03-02",
        "2015-3-2",
        "2015/3/2",
        "2015/03/02",
        "2015.3.2",
        "2015年3月2日",
        "2015/3/2 0:00",
        " 2015年03月02日 ",
    ],
)
def test_dates_as_excel_writes_them(written: str) -> None:
    [(_, kid)] = parse_children(english(child(birth_date=written))).accepted
    assert kid.birth_date == date(2015, 3, 2)


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("3/2/2015", "a date is written 2015-03-02"),
        ("去年春天", "a date is written 2015-03-02"),
        ("2015-03", "a date is written 2015-03-02"),
        ("2015-02-30", "no such day"),
        ("2015年13月1日", "no such day"),
    ],
)
def test_an_unreadable_date_is_a_row_error_reported_with_the_others(written: str, reason: str) -> None:
    errors = only_errors(english(child(birth_date=written, guardian_phone="12345")))
    assert len(errors) == 2
    assert errors[0].startswith("birth_date: ")
    assert reason in errors[0]
    assert errors[1].startswith("guardian_phone: a phone number is")


def test_a_row_reports_all_its_errors_without_echoing_its_values() -> None:
    row = child(gender="未知", category="流浪儿童", county_code="450399", guardian_phone="12345", needs="跳舞、陪伴")
    errors = only_errors(english(row))
    assert [error.split(":")[0] for error in errors] == [
        "gender",
        "category",
        "county_code",
        "guardian_phone",
        "needs (item 1)",
    ]
    assert "or in Chinese 孤儿, 事实无人抚养儿童" in errors[1]
    for value in ("未知", "流浪儿童", "12345", "跳舞"):
        assert not any(value in error for error in errors)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"name": ""}, "name: no value given"),
        ({"id_number": id_number("450325", date(2015, 3, 2), 12)[:-1] + "0"}, "id_number: the ID number's check digit"),
        ({"birth_date": "2015-03-03"}, "the birth date differs from the one in the ID number"),
        ({"guardian_phone": ""}, "a guardian's name and phone are needed"),
        ({"risk_level": "极高"}, "risk_level: Input should be"),
        ({"village": "黄家\n村"}, "village: String should match pattern"),
    ],
)
def test_row_errors(change: dict[str, str], reason: str) -> None:
    errors = only_errors(english(child(**change)))
    assert any(reason in error for error in errors), errors


def test_extra_cells_are_a_row_error_unless_empty() -> None:
    header = [*FIELDS, ""]  # Excel leaves a trailing comma when a column to the right was once used
    raw = to_csv(
        header,
        [[*child().values(), ""], [*child(id_number="").values(), "", "备注"], [*child(id_number="").values(), "x"]],
    )
    parsed = parse_children(raw)
    assert [line for line, _ in parsed.accepted] == [2]
    assert [(r.line, r.errors) for r in parsed.rejected] == [
        (3, ["column 17: the row has more cells than the header has columns"]),
        (4, ["column 16: a value in a column without a name in the header"]),
    ]


def test_a_second_row_with_the_same_id_number_is_rejected() -> None:
    same = child(name="李小兰")
    same["id_number"] = same["id_number"].lower()  # the same X check digit either way
    raw = english(child(), child(id_number=""), child(id_number=""), same, same)
    parsed = parse_children(raw)
    assert [line for line, _ in parsed.accepted] == [2, 3, 4]
    assert [(r.line, r.errors) for r in parsed.rejected] == [
        (5, ["id_number: duplicate ID number in this file, first on line 2"]),
        (6, ["id_number: duplicate ID number in this file, first on line 2"]),
    ]


def test_blank_lines_are_skipped_and_lines_are_counted_as_in_the_file() -> None:
    good = english(child(id_number="")).decode().splitlines()[1]
    bad = english(child(id_number="", guardian_phone="123")).decode().splitlines()[1]
    header = ",".join(FIELDS)
    text = "\r\n".join(["", header, good, "", ",,,,", good, bad, "  ", good, ""])
    parsed = parse_children(text.encode())
    assert [line for line, _ in parsed.accepted] == [3, 6, 9]
    assert [r.line for r in parsed.rejected] == [7]


def test_a_line_break_inside_a_quoted_cell_is_one_spreadsheet_row() -> None:
    raw = english(child(id_number="", township="兴安\r\n镇"), child(id_number=""))
    parsed = parse_children(raw)
    assert [r.line for r in parsed.rejected] == [2]
    assert [line for line, _ in parsed.accepted] == [3]


# The acceptance case: 10,000 rows, 37 bad in different ways, at known lines.
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ("小梅", "子轩", "雨涵", "浩然", "欣怡", "宇航", "思琪", "俊杰", "佳怡", "梓涵", "秀英", "建国")
CHINESE_VALUES = {
    "category": ("孤儿", "事实无人抚养儿童", "农村留守儿童", "其他困境儿童"),
    "risk_level": ("高", "中", "低"),
    "guardianship": ("父母", "祖父母", "亲属", "机构"),
    "needs": ("学业辅导、陪伴", "心理疏导", "物资；安全", ""),
}
ENGLISH_VALUES = {
    "category": ("orphan", "de_facto_unsupported", "left_behind", "in_difficulty"),
    "risk_level": ("high", "medium", "low"),
    "guardianship": ("parents", "grandparents", "relative", "institution"),
    "needs": ("tutoring;companionship", "psychological", "material|safety", ""),
}
DATE_FORMS = (
    "{0:%Y-%m-%d}",
    "{0.year}/{0.month}/{0.day}",
    "{0.year}.{0.month}.{0.day}",
    "{0.year}年{0.month}月{0.day}日",
)


def generated(i: int) -> dict[str, str]:
    born = date(2008, 1, 1) + timedelta(days=i % 3000)
    county = COUNTIES[i % len(COUNTIES)]
    male = i % 2 == 1
    values = ENGLISH_VALUES if i % 3 else CHINESE_VALUES
    return {
        "name": SURNAMES[i % 20] + GIVEN[i // 20 % 12] + ("", "儿")[i % 2],
        "id_number": id_number(county, born, 100 + 2 * (i // 3000) + male),  # odd sequence digit: a boy
        "birth_date": DATE_FORMS[i % 4].format(born),
        "gender": ("男" if male else "女") if i % 5 else ("male" if male else "female"),
        "category": values["category"][i % 4],
        "county_code": county,
        "township": "城关镇",
        "village": f"第{i % 30 + 1}村",
        "risk_level": values["risk_level"][i % 3],
        "guardianship": values["guardianship"][i % 4],
        "guardian_name": SURNAMES[(i + 7) % 20] + ("建国", "秀英", "大山")[i % 3],
        "guardian_phone": f"1{3 + i % 7}{i:09d}",
        "needs": values["needs"][i % 4],
        "languages": ("汉语", "zh;zhuang", "壮语、汉语", "瑶语")[i % 4],
        "flags": ("", "", "", "跨境婚姻家庭", "")[i % 5],
    }


def shift_check_digit(row: dict[str, str]) -> None:
    row["id_number"] = row["id_number"][:17] + CHECK[(CHECK.index(row["id_number"][17]) + 1) % 11]


def shift_birth_date(row: dict[str, str]) -> None:
    i = row["id_number"]
    row["birth_date"] = f"{date(int(i[6:10]), int(i[10:12]), int(i[12:14])) + timedelta(days=1):%Y-%m-%d}"


def copy_first_id(row: dict[str, str]) -> None:
    first = generated(0)
    row["id_number"], row["birth_date"] = first["id_number"], first["birth_date"]


# kind → how a good row is spoilt, and what its errors must mention
BAD_KINDS: dict[str, tuple[Callable[[dict[str, str]], None], str]] = {
    "bad county code": (lambda row: row.update(county_code="450399"), "county_code: "),
    "unknown category": (lambda row: row.update(category="流浪儿童"), "category: "),
    "bad phone": (lambda row: row.update(guardian_phone="1234567"), "guardian_phone: a phone number"),
    "bad ID check digit": (shift_check_digit, "id_number: the ID number's check digit"),
    "ID and birth date differ": (shift_birth_date, "the birth date differs from the one in the ID number"),
    "missing guardian": (lambda row: row.update(guardian_name=""), "a guardian's name and phone are needed"),
    "unknown risk level": (lambda row: row.update(risk_level="极高"), "risk_level: "),
    "unreadable date": (lambda row: row.update(birth_date="2015年13月1日"), "birth_date: no such day"),
    "extra cell": (lambda row: row.update(extra="备注"), "more cells than the header"),
    "duplicate ID number": (copy_first_id, "duplicate ID number in this file, first on line 2"),
    "missing name": (lambda row: row.update(name=""), "name: no value given"),
    "unknown need": (lambda row: row.update(needs="陪伴、跳舞"), "needs (item 2): "),
    "short ID number": (lambda row: row.update(id_number=row["id_number"][:17]), "id_number: an ID number has 17"),
    "unknown gender": (lambda row: row.update(gender="未知"), "gender: "),
}


@pytest.mark.parametrize(("header", "encoding"), [(list(LABELS.values()), "gb18030"), (FIELDS, "utf-8-sig")])
def test_ten_thousand_rows_with_37_bad_ones(header: list[str], encoding: str) -> None:
    bad_rows = sorted(random.Random(37).sample(range(1, 10_000), 37))  # row 0 stays good: its ID is copied
    kinds = list(BAD_KINDS)
    expected: dict[int, str] = {}
    rows = [generated(i) for i in range(10_000)]
    for n, i in enumerate(bad_rows):
        spoil, reason = BAD_KINDS[kinds[n % len(kinds)]]
        spoil(rows[i])
        expected[i + 2] = reason  # the header is line 1
    assert len(set(expected.values())) == len(BAD_KINDS) >= 8
    cells = ([*(row[f] for f in FIELDS), *([row["extra"]] if "extra" in row else [])] for row in rows)
    raw = to_csv(header, cells, encoding)

    parsed = parse_children(raw)

    assert {r.line for r in parsed.rejected} == set(expected)
    assert len(parsed.rejected) == 37
    for rejected in parsed.rejected:
        assert rejected.errors
        assert any(expected[rejected.line] in error for error in rejected.errors), (rejected.line, rejected.errors)
    assert len(parsed.accepted) == 9_963
    assert [line for line, _ in parsed.accepted] == [i + 2 for i in range(10_000) if i + 2 not in expected]
    assert len({kid.id_number for _, kid in parsed.accepted}) == 9_963
    secrets = {row[f] for row in rows for f in ("name", "guardian_name", "id_number", "guardian_phone") if row[f]}
    everything = "\n".join(error for rejected in parsed.rejected for error in rejected.errors)
    assert not [secret for secret in secrets if secret in everything]
