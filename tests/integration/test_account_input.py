"""Bodies the sign-in routes parse themselves, and accounts' email addresses, sent malformed to the in-process registry
over HTTP: a 4xx in the project's error shape that repeats nothing that was sent, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.account_steps import ADMIN, create
from tests.integration.test_http import assert_error

JSON = {"content-type": "application/json"}
DEEP = "[" * 5000  # deeper than Python's recursion limit: json.loads raises RecursionError, not ValueError
MARK = "zz-sent-zz"  # a string to look for in the answer


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        DEEP.encode(),
        f'{{"client_id": "{MARK}", "x": {DEEP}'.encode(),
        f'{{"client_id": "{MARK}", "x": {"[" * 5000}{"]" * 5000}}}'.encode(),
    ],
    ids=["cut-short", "deep", "deep-in-an-object", "deep-and-closed"],
)
async def test_client_credentials_as_json_too_deep_or_cut_short_are_refused_like_any_malformed_json(
    registry: httpx.AsyncClient, body: bytes
) -> None:
    answer = await registry.post("/auth/token", content=body, headers=JSON)
    error = assert_error(answer, 422, "invalid")
    assert error["details"] == {"problems": [{"field": "body", "problem": "a JSON object or a form is expected"}]}
    assert MARK not in answer.text


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code"),
    [
        ("multipart/form-data", f"--x\r\n{MARK}".encode(), 400, "bad_request"),  # no boundary named
        (
            "multipart/form-data; boundary=x",
            f"--x\r\nContent-Disposition: form-data\r\n\r\n{MARK}".encode(),  # a part with no name
            400,
            "bad_request",
        ),
        (
            "application/x-www-form-urlencoded",
            f"client_id={MARK}&client_secret=%ff%fe&grant_type=%".encode(),
            422,
            "invalid",
        ),
    ],
    ids=["multipart-without-boundary", "multipart-cut-short", "form-badly-escaped"],
)
async def test_client_credentials_as_a_malformed_form_are_refused_without_repeating_them(
    registry: httpx.AsyncClient, content_type: str, body: bytes, status: int, code: str
) -> None:
    answer = await registry.post("/auth/token", content=body, headers={"content-type": content_type})
    assert_error(answer, status, code)
    assert MARK not in answer.text


async def test_a_sign_in_nested_too_deep_is_a_4xx_not_a_500(registry: httpx.AsyncClient) -> None:
    answer = await registry.post("/auth/sign-in", content=f'{{"login": "{MARK}", "x": {DEEP}'.encode(), headers=JSON)
    assert_error(answer, 400, "bad_request")  # FastAPI parses this body itself and answers so
    assert MARK not in answer.text


MAILBOX = "zzsentzz"  # in every address below: looked for in the answers


@pytest.mark.parametrize(
    ("email", "code"),
    [
        ("", "invalid_email"),
        (MAILBOX, "invalid_email"),
        (f"{MAILBOX}@localhost", "invalid_email"),
        (f"{MAILBOX}@@example.org", "invalid_email"),
        (f"韦{MAILBOX}@example.org", "invalid_email"),
        (f"韦小梅 <{MAILBOX}@example.org>", "invalid_email"),
        (f"{MAILBOX}@example.org, li@example.org", "invalid_email"),
        (f"{MAILBOX}@example.org\r\nBcc: li@example.org", "invalid_email"),
        (f"{MAILBOX}{'x' * 60}@example.org", "invalid_email"),  # a local part over 64 characters
        (f"{MAILBOX}@{'a' * 250}.org", "invalid"),  # over 254 characters: the schema's limit
        (["zzsentzz@example.org"], "invalid"),
    ],
    ids=[
        "empty",
        "no-at",
        "no-dot",
        "two-ats",
        "not-ascii",
        "with-a-name",
        "two-addresses",
        "a-header-after-it",
        "local-part-too-long",
        "too-long",
        "a-list",
    ],
)
async def test_an_account_s_email_address_that_is_none_is_a_422_repeating_nothing(
    registry: httpx.AsyncClient, email: object, code: str
) -> None:
    body = {"login": "13907731234", "name": "韦小梅", "role": "coordinator", "counties": ["450325"], "email": email}
    answer = await registry.post("/accounts", json=body, headers=ADMIN)
    assert_error(answer, 422, code)
    assert MAILBOX not in answer.text

    created = await create(
        registry, login="13907731235", role="coordinator", counties=["450325"], email="li@example.org"
    )
    path = f"/accounts/{created['account']['id']}"
    changed = await registry.patch(path, json={"email": email}, headers=ADMIN)
    assert_error(changed, 422, code)
    assert MAILBOX not in changed.text
    listed = (await registry.get("/accounts", headers=ADMIN)).json()["items"]
    assert [a["email"] for a in listed] == [
        "li@example.org"
    ]  # nothing made by the first, nothing changed by the second
