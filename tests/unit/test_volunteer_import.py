"""Reading a CSV of volunteers as county offices export it from Excel: pure, no I/O."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.registry.importing import ImportRefused, parse_volunteers
from tests.helpers import to_csv

FIELDS = ["name", "phone", "kind", "county_code", "township", "capacity", "skills", "languages", "availability"]
LABELS = dict(
    zip(FIELDS, ["姓名", "电话", "类型", "县区代码", "乡镇", "可结对人数", "特长", "语言", "可服务时间"], strict=True)
)
KINDS = [
    ("爱心家长", "caring_parent"),
    ("儿童主任", "child_director"),
    ("社工", "social_worker"),
    ("协会志愿者", "association_volunteer"),
    ("义工", "association_volunteer"),
    ("企业志愿者", "enterprise_volunteer"),
    ("干部", "cadre"),
]


def volunteer(**change: str) -> dict[str, str]:
    row = {
        "name": "黄丽华",
        "phone": "13977123456",
        "kind": "social_worker",
        "county_code": "450325",
        "township": "兴安镇",
        "capacity": "3",
        "skills": "tutoring;companionship",
        "languages": "zh;zhuang",
        "availability": "周末下午",
    }
    return row | change


def english(*rows: dict[str, str], encoding: str = "utf-8") -> bytes:
    return to_csv(FIELDS, ([row[field] for field in FIELDS] for row in rows), encoding)


def chinese(*rows: dict[str, str], encoding: str = "gb18030") -> bytes:
    return to_csv(LABELS.values(), ([row[field] for field in FIELDS] for row in rows), encoding)


def only_errors(raw: bytes) -> list[str]:
    parsed = parse_volunteers(raw)
    assert not parsed.accepted
    assert len(parsed.rejected) == 1
    return parsed.rejected[0].errors


def test_english_headers_in_utf8() -> None:
    raw = english(volunteer(), volunteer(phone="0773-6221234", capacity="", skills="", languages="", availability=""))
    parsed = parse_volunteers(raw)
    assert parsed.rejected == []
    assert [line for line, _ in parsed.accepted] == [2, 3]
    first, second = (v for _, v in parsed.accepted)
    assert (first.name, first.phone, first.kind, first.county_code, first.township) == (
        "黄丽华",
        "13977123456",
        "social_worker",
        "450325",
        "兴安镇",
    )
    assert (first.capacity, first.skills, first.languages, first.availability) == (
        3,
        ["tutoring", "companionship"],
        ["zh", "zhuang"],
        "周末下午",
    )
    # Empty cells are values not given: the model's defaults.
    assert (second.phone, second.capacity, second.skills, second.languages, second.availability) == (
        "0773-6221234",
        1,
        [],
        ["zh"],
        None,
    )


def test_chinese_headers_and_values_in_gb18030() -> None:
    row = volunteer(kind="儿童主任", capacity="5", skills="学业辅导、心理疏导；亲情连线", languages="壮语 普通话")
    raw = chinese(row)
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # really GB18030, as Excel on a Chinese Windows writes it
    [(line, person)] = parse_volunteers(raw).accepted
    assert line == 2
    assert (person.name, person.township, person.availability) == ("黄丽华", "兴安镇", "周末下午")
    assert (person.kind, person.capacity) == ("child_director", 5)
    assert person.skills == ["tutoring", "psychological", "family_calls"]
    assert person.languages == ["zhuang", "zh"]


def test_utf8_with_bom_and_the_other_name_for_the_phone_column() -> None:
    header = [("手机" if field == "phone" else label) for field, label in LABELS.items()]
    raw = to_csv(header, [volunteer(phone="'13977123456").values()], "utf-8-sig")
    assert raw.startswith(b"\xef\xbb\xbf")
    [(line, person)] = parse_volunteers(raw).accepted
    assert (line, person.phone) == (2, "13977123456")  # the apostrophe Excel users type to keep digits as text


def test_header_mixing_both_languages_in_any_order_with_optional_columns_left_out() -> None:
    fields = ["township", " KIND ", "姓名", "\t电话", "county_code", "语言"]
    raw = to_csv(fields, [["兴安镇", "干部", "黄丽华", "13977123456", "450325", "瑶语"]])
    [(_, person)] = parse_volunteers(raw).accepted
    assert (person.kind, person.capacity, person.skills, person.languages) == ("cadre", 1, [], ["yao"])


@pytest.mark.parametrize(("written", "read"), [*KINDS, ("cadre", "cadre"), ("Social_Worker", "social_worker")])
def test_each_kind_in_either_language(written: str, read: str) -> None:
    [(_, person)] = parse_volunteers(chinese(volunteer(kind=written))).accepted
    assert person.kind == read


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("学业辅导", "tutoring"),
        ("心理疏导", "psychological"),
        ("陪伴", "companionship"),
        ("物资", "material"),
        ("安全", "safety"),
        ("亲情连线", "family_calls"),
        ("Safety", "safety"),
    ],
)
def test_skills_use_the_words_of_childrens_needs(written: str, read: str) -> None:
    [(_, person)] = parse_volunteers(chinese(volunteer(skills=written))).accepted
    assert person.skills == [read]


REFUSALS = [
    ("empty", b"", "empty"),
    ("no header", to_csv(volunteer().values(), []), "line 1 is not a header"),
    ("missing columns", to_csv(["姓名", "电话", "乡镇"], []), "missing columns: kind, county_code"),
    ("child columns", to_csv([*FIELDS, "身份证号"], []), "column 10 has an unknown name"),
    ("both phone columns", to_csv([*LABELS.values(), "手机"], []), "columns given more than once: phone"),
    ("header only", to_csv(FIELDS, []), "a header but no rows"),
]


@pytest.mark.parametrize(
    ("raw", "message"), [(raw, message) for _, raw, message in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_whole_file_refusals(raw: bytes, message: str) -> None:
    with pytest.raises(ImportRefused, match=message) as refusal:
        parse_volunteers(raw)
    assert "黄丽华" not in str(refusal.value)  # a data row taken for a header is not echoed
    assert "13977123456" not in str(refusal.value)


def test_a_refusal_names_the_columns_in_both_languages() -> None:
    with pytest.raises(ImportRefused, match=r"the columns are name \(姓名\), phone \(电话 or 手机\), kind \(类型\)"):
        parse_volunteers(to_csv(["姓名"], [["黄丽华"]]))


def test_more_rows_than_allowed_are_refused() -> None:
    rows = [volunteer(phone=f"1397712345{i}") for i in range(4)]
    assert len(parse_volunteers(english(*rows[:3]), max_rows=3).accepted) == 3
    with pytest.raises(ImportRefused, match="more than 3 rows"):
        parse_volunteers(english(*rows), max_rows=3)


def test_a_later_row_with_the_same_phone_is_rejected() -> None:
    raw = english(
        volunteer(),
        volunteer(phone="0773-6221234", name="陈明"),
        volunteer(phone="139 7712 3456", name="黄丽"),  # the same number, spaced
        volunteer(phone="07736221234", name="周强"),  # the same landline without its hyphen
        volunteer(phone="13977123457"),
        volunteer(phone="'13977123456", kind="干部"),
    )
    parsed = parse_volunteers(raw)
    assert [line for line, _ in parsed.accepted] == [2, 3, 6]
    assert [(r.line, r.errors) for r in parsed.rejected] == [
        (4, ["phone: duplicate phone in this file, first on line 2"]),
        (5, ["phone: duplicate phone in this file, first on line 3"]),
        (7, ["phone: duplicate phone in this file, first on line 2"]),
    ]


@pytest.mark.parametrize("phone", ["1234567", "23977123456", "139771234567", "139-7712-3456x", "电话不详"])
def test_a_bad_phone_is_a_row_error_without_the_number(phone: str) -> None:
    [error] = only_errors(english(volunteer(phone=phone)))
    assert error.startswith("phone: a phone number is a mobile")
    assert phone not in error


def test_an_unknown_kind_is_named_with_the_words_allowed() -> None:
    [error] = only_errors(chinese(volunteer(kind="热心群众")))
    assert error.startswith("kind: Input should be 'caring_parent'")
    assert error.endswith("or in Chinese 爱心家长, 儿童主任, 社工, 协会志愿者, 义工, 企业志愿者, 干部")
    assert "热心群众" not in error


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("0", "capacity: Input should be greater than or equal to 1"),
        ("-2", "capacity: Input should be greater than or equal to 1"),
        ("21", "capacity: Input should be less than or equal to 20"),
        ("300", "capacity: Input should be less than or equal to 20"),
        ("2.5", "capacity: Input should be a valid integer"),
        ("两个", "capacity: Input should be a valid integer"),
        ("3人", "capacity: Input should be a valid integer"),
    ],
)
def test_capacity_out_of_range_or_not_a_number(written: str, reason: str) -> None:
    [error] = only_errors(english(volunteer(capacity=written)))
    assert error.startswith(reason)
    assert written not in error


def test_capacity_as_an_integer_cell() -> None:
    parsed = parse_volunteers(english(volunteer(capacity=" 20 "), volunteer(phone="13977123457", capacity="1")))
    assert [v.capacity for _, v in parsed.accepted] == [20, 1]


def test_a_row_reports_all_its_errors_without_echoing_its_values() -> None:
    row = volunteer(name="", kind="热心群众", county_code="450399", capacity="几个", skills="陪伴、跳舞", phone="12345")
    errors = only_errors(chinese(row))
    assert [error.split(":")[0] for error in errors] == [
        "name",
        "phone",
        "kind",
        "county_code",
        "capacity",
        "skills (item 2)",
    ]
    assert errors[0] == "name: no value given"
    for value in ("热心群众", "450399", "几个", "跳舞", "12345"):
        assert not any(value in error for error in errors)


# The acceptance case: 2,000 rows, 11 bad in different ways, at known lines.
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ("丽华", "建军", "秀兰", "志强", "桂英", "海燕", "国平", "春梅", "德明", "玉珍", "永红", "少华")
CHINESE_KINDS = ("爱心家长", "儿童主任", "社工", "协会志愿者", "义工", "企业志愿者", "干部")
ENGLISH_KINDS = ("caring_parent", "child_director", "social_worker", "association_volunteer", "enterprise_volunteer")
COUNTIES = ("450325", "450721", "450521", "450981")  # 兴安县, 灵山县, 合浦县, 北流市


def generated(i: int) -> dict[str, str]:
    kinds = CHINESE_KINDS if i % 3 else ENGLISH_KINDS
    return {
        "name": SURNAMES[i % 20] + GIVEN[i // 20 % 12],
        "phone": f"0771-{5_000_000 + i}" if i % 10 == 9 else f"1{3 + i % 7}{i:09d}",
        "kind": kinds[i % len(kinds)],
        "county_code": COUNTIES[i % 4],
        "township": "城关镇",
        "capacity": ("", "1", "2", "5", "20")[i % 5],
        "skills": ("学业辅导、陪伴", "psychological", "物资；安全", "", "family_calls|tutoring")[i % 5],
        "languages": ("汉语", "zh;zhuang", "壮语、汉语", "", "瑶语")[i % 5],
        "availability": ("周末", "", "工作日晚上", "每月一次")[i % 4],
    }


# line → how a good row is spoilt, and what its errors must mention
BAD_LINES: dict[int, tuple[Callable[[dict[str, str]], None], str]] = {
    3: (lambda row: row.update(phone="1234567"), "phone: a phone number is"),
    58: (lambda row: row.update(kind="热心群众"), "kind: Input should be"),
    211: (lambda row: row.update(capacity="0"), "capacity: Input should be greater than or equal to 1"),
    400: (lambda row: row.update(capacity="两个"), "capacity: Input should be a valid integer"),
    777: (lambda row: row.update(phone=generated(0)["phone"]), "duplicate phone in this file, first on line 2"),
    1001: (lambda row: row.update(county_code="450399"), "county_code: "),
    1002: (lambda row: row.update(name=""), "name: no value given"),
    1500: (lambda row: row.update(skills="学业辅导、跳舞"), "skills (item 2): "),
    1789: (lambda row: row.update(availability="周末" * 101), "availability: String should have at most 200"),
    1999: (lambda row: row.update(extra="备注"), "more cells than the header"),
    2001: (lambda row: row.update(township=""), "township: no value given"),  # the last row
}


@pytest.mark.parametrize(("header", "encoding"), [(list(LABELS.values()), "gb18030"), (FIELDS, "utf-8-sig")])
def test_two_thousand_rows_with_11_bad_ones(header: list[str], encoding: str) -> None:
    rows = [generated(i) for i in range(2_000)]
    for line, (spoil, _) in BAD_LINES.items():
        spoil(rows[line - 2])  # the header is line 1
    assert len({reason for _, reason in BAD_LINES.values()}) == 11
    cells = ([*(row[f] for f in FIELDS), *([row["extra"]] if "extra" in row else [])] for row in rows)
    raw = to_csv(header, cells, encoding)

    parsed = parse_volunteers(raw)

    assert [r.line for r in parsed.rejected] == list(BAD_LINES)
    for rejected in parsed.rejected:
        reason = BAD_LINES[rejected.line][1]
        assert any(reason in error for error in rejected.errors), (rejected.line, rejected.errors)
    assert [line for line, _ in parsed.accepted] == [i + 2 for i in range(2_000) if i + 2 not in BAD_LINES]
    assert len({v.phone for _, v in parsed.accepted}) == 1_989
    assert {v.kind for _, v in parsed.accepted} == {*ENGLISH_KINDS, "cadre"}
    secrets = {row[f] for row in rows for f in ("name", "phone") if row[f]}
    everything = "\n".join(error for rejected in parsed.rejected for error in rejected.errors)
    assert not [secret for secret in secrets if secret in everything]
