"""Bulk imports over HTTP: the file as the body (text/csv) or as the one file part of a multipart upload
(`curl -F file=@children.csv`), the same limits for both, and answers that never repeat what the file held."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.helpers import auth, to_csv
from tests.unit.test_child_import import FIELDS as CHILD_FIELDS
from tests.unit.test_child_import import child, chinese, english
from tests.unit.test_volunteer_import import FIELDS as VOLUNTEER_FIELDS
from tests.unit.test_volunteer_import import chinese as chinese_volunteers
from tests.unit.test_volunteer_import import volunteer

XINGAN = "450325"
COORDINATOR = auth("coordinator", [XINGAN])
RAW = COORDINATOR | {"Content-Type": "text/csv"}
IMPORTS = ("/children/import", "/volunteers/import")
# A first line that names one column, then holds a person's name, ID number and phone.
PERSONAL = ("韦小芳", "450325201503021234", "13907730001")
NOT_A_HEADER = to_csv(["姓名", *PERSONAL], [["韦小芳", "x", "y", "z"]])
BOUNDARY = "----import-test-boundary"


def multipart(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart/form-data body of (name, filename or None for a plain field, content) parts."""
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


MULTIPART = COORDINATOR | {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def answer_text(answer: httpx.Response) -> str:
    """The answer as a person reads it, whether or not its JSON escapes non-ASCII letters."""
    return answer.text + json.dumps(answer.json(), ensure_ascii=False)


async def total(registry: httpx.AsyncClient, path: str) -> int:
    listed = await registry.get(path, params={"county_code": XINGAN}, headers=COORDINATOR)
    return int(listed.json()["total"])


async def test_a_children_file_uploaded_as_multipart_imports_as_the_same_file_sent_as_the_body_does(
    registry: httpx.AsyncClient,
) -> None:
    rows = [child(), child(id_number="", name="王浩然", guardian_phone="13907730002")]
    gb18030, utf8 = chinese(*rows), english(*rows, encoding="utf-8")
    uploaded = await registry.post(
        "/children/import", files={"file": ("儿童名单.csv", gb18030, "text/csv")}, headers=COORDINATOR
    )
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json() == {"imported": 2, "already_imported": 0, "rejected": []}
    as_body = await registry.post("/children/import", content=utf8, headers=RAW)
    assert as_body.json() == {"imported": 0, "already_imported": 2, "rejected": []}
    # any name for the part and any type: a spreadsheet's CSV is often sent as application/octet-stream
    again = await registry.post(
        "/children/import", files={"upload": ("x.csv", utf8, "application/octet-stream")}, headers=COORDINATOR
    )
    assert again.json() == {"imported": 0, "already_imported": 2, "rejected": []}
    assert await total(registry, "/children") == 2


async def test_a_volunteers_file_uploaded_as_multipart_imports_with_its_bad_rows_reported(
    registry: httpx.AsyncClient,
) -> None:
    raw = chinese_volunteers(volunteer(), volunteer(name="黄二", phone="13977123457"), volunteer(phone="110"))
    uploaded = await registry.post("/volunteers/import", files={"file": ("志愿者.csv", raw)}, headers=COORDINATOR)
    assert uploaded.status_code == 200, uploaded.text
    result = uploaded.json()
    assert (result["imported"], result["already_imported"], [r["line"] for r in result["rejected"]]) == (2, 0, [4])
    assert await total(registry, "/volunteers") == 2


@pytest.mark.parametrize("path", IMPORTS)
@pytest.mark.parametrize(
    ("parts", "files", "others"),
    [
        ((), 0, 0),
        ((("file", None, b"name\r\n"),), 0, 1),  # curl -F "file=<children.csv": the text as a plain field
        ((("file", "a.csv", b"x"), ("file", "b.csv", b"y")), 2, 0),
        ((("file", "a.csv", b"x"), ("all_or_nothing", None, b"true")), 1, 1),
    ],
    ids=["no part", "a plain field", "two files", "a file and a field"],
)
async def test_a_multipart_upload_without_exactly_one_file_part_is_refused_and_imports_nothing(
    registry: httpx.AsyncClient, path: str, parts: tuple[tuple[str, str | None, bytes], ...], files: int, others: int
) -> None:
    refused = await registry.post(path, content=multipart(*parts), headers=MULTIPART)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "one_file_expected"
    assert f"{files} file part(s) and {others} other part(s)" in error["message"]
    assert await total(registry, path.removesuffix("/import")) == 0


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", multipart(("file", "a.csv", b"x"))),  # no boundary
        (f"multipart/form-data; boundary={BOUNDARY}", b"\x00\xff" * 50 + "韦小芳".encode()),
        (f"multipart/form-data; boundary={BOUNDARY}", f"--{BOUNDARY}\r\nX: y\r\n\r\nno name\r\n".encode()),
    ],
    ids=["no boundary", "not multipart", "a part without a name"],
)
async def test_a_body_that_is_not_multipart_as_it_says_is_a_400_that_repeats_nothing(
    registry: httpx.AsyncClient, content_type: str, body: bytes
) -> None:
    refused = await registry.post(
        "/children/import", content=body, headers=COORDINATOR | {"Content-Type": content_type}
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "bad_upload"
    assert "韦小芳" not in answer_text(refused)


@pytest.mark.settings(max_upload_bytes=4096)
@pytest.mark.parametrize("path", IMPORTS)
async def test_a_multipart_upload_over_the_limit_is_a_413_declared_or_streamed(
    registry: httpx.AsyncClient, path: str
) -> None:
    rows = [child(id_number="", name=f"王{chr(0x4E00 + i)}") for i in range(60)]
    body = multipart(("file", "big.csv", english(*rows)))
    assert len(body) > 4096
    declared = await registry.post(path, content=body, headers=MULTIPART)
    assert declared.status_code == 413, declared.text
    assert declared.json()["error"]["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    streamed = await registry.post(path, content=chunks(), headers=MULTIPART)
    assert streamed.status_code == 413, streamed.text
    assert await total(registry, path.removesuffix("/import")) == 0


@pytest.mark.parametrize("path", IMPORTS)
@pytest.mark.parametrize("form", ["body", "multipart"])
async def test_a_first_line_holding_personal_data_is_refused_by_column_position_never_by_its_text(
    registry: httpx.AsyncClient, path: str, form: str
) -> None:
    if form == "body":
        refused = await registry.post(path, content=NOT_A_HEADER, headers=RAW)
    else:
        refused = await registry.post(path, files={"file": ("x.csv", NOT_A_HEADER)}, headers=COORDINATOR)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "import_refused"
    assert "line 1: columns 2, 3, 4 have unknown names" in refused.json()["error"]["message"]
    assert [value for value in PERSONAL if value in answer_text(refused)] == []


async def test_no_row_error_repeats_a_cell(registry: httpx.AsyncClient) -> None:
    """Every cell of these rows is wrong and holds a name, an ID number or a phone: each error names the column."""
    name, id_number, phone = PERSONAL
    bad_child = child(
        name=name * 40,
        id_number=id_number,
        birth_date=name,
        gender=name,
        category=name,
        county_code=name,
        township=name * 40,
        village=f"{name}\x01",
        risk_level=name,
        guardianship=name,
        guardian_name=name * 40,
        guardian_phone=f"{phone}{name}",
        needs=f"陪伴、{name}",
        languages=name,
        flags=name,
    )
    same_id = child(id_number=id_number)
    cells = [[bad_child[f] for f in CHILD_FIELDS] + [phone], [same_id[f] for f in CHILD_FIELDS]]
    children = await registry.post("/children/import", content=to_csv(CHILD_FIELDS, cells), headers=RAW)
    assert children.status_code == 200, children.text
    assert [(r["line"], len(r["errors"]) > 10) for r in children.json()["rejected"]] == [(2, True), (3, False)]

    bad_volunteer = volunteer(
        name=name * 40,
        phone=f"{phone}{name}",
        kind=name,
        county_code=name,
        township=name * 40,
        capacity=name,
        skills=name,
        languages=name,
        availability=name * 100,
    )
    raw = to_csv(VOLUNTEER_FIELDS, [[bad_volunteer[f] for f in VOLUNTEER_FIELDS]])
    volunteers = await registry.post("/volunteers/import", content=raw, headers=RAW)
    assert volunteers.status_code == 200, volunteers.text
    assert [(r["line"], len(r["errors"]) > 5) for r in volunteers.json()["rejected"]] == [(2, True)]
    for answer in (children, volunteers):
        assert [value for value in PERSONAL if value in answer_text(answer)] == []


async def test_the_openapi_documents_both_bodies_of_both_imports(registry: httpx.AsyncClient) -> None:
    paths = (await registry.get("/openapi.json")).json()["paths"]
    for path in IMPORTS:
        body = paths[path]["post"]["requestBody"]
        assert set(body["content"]) == {"text/csv", "multipart/form-data"}
        assert body["content"]["multipart/form-data"]["schema"]["required"] == ["file"]
