"""Error answers never repeat what was sent: a name or a phone in an unknown key, a value, a path, a query, a header or
a malformed body comes back in no status, header or body, and goes into no log line."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import httpx
import jwt
import pytest
from fastapi import FastAPI
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from backbone import errors
from backbone.clock import SettableClock
from backbone.natsserver import NatsServer
from backbone.settings import Settings
from services.notifications.app import create_app as create_notifications_app
from tests.e2e.test_walking_skeleton import CHILD, XINGAN
from tests.helpers import auth, keys
from tests.integration.conftest import serve_matching

NAME, PHONE = "韦小芳", "13907730001"
# Not the walking skeleton's child, whose name and guardian's phone are the very values sent as hostile ones here.
SOMEONE = CHILD | {"name": "蓝某某", "guardian_name": "蓝大山", "guardian_phone": "13907739999"}
JSON = {"Content-Type": "application/json"}


def forms(secret: str) -> list[bytes]:
    """As the text could come back or be logged: UTF-8, escaped by JSON, or read as Latin-1 (how a server decodes a
    header's bytes) and then written either way."""
    misread = secret.encode().decode("latin-1")
    return [form for text in {secret, misread} for form in (text.encode(), json.dumps(text).strip('"').encode())]


def repeated(raw: bytes) -> list[str]:
    """The hostile values found in `raw`, or any single character of the name (a bad UUID's message quotes one)."""
    found = [secret for secret in (NAME, PHONE) if any(form in raw for form in forms(secret))]
    return found + [char for char in NAME if any(form in raw for form in forms(char))]


def answer_bytes(answer: httpx.Response) -> bytes:
    head = f"{answer.status_code} {answer.reason_phrase}\n".encode()
    return head + b"".join(name + b": " + value + b"\n" for name, value in answer.headers.raw) + answer.content


@pytest.fixture
async def beside(
    nats_server: NatsServer, clock: SettableClock, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Matching and notifications in this process, each on its own SQLite file (their errors touch no database)."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'notifications.db'}",
        nats_url=nats_server.url,
        **keys().settings(),
        timer_seconds=0.2,
    )
    app = create_notifications_app(settings, clock)
    async with (
        serve_matching(f"sqlite+aiosqlite:///{tmp_path / 'matching.db'}", nats_server, clock) as matching,
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifications") as notifications,
    ):
        yield matching, notifications


@pytest.fixture
def quiet_client() -> Iterator[None]:
    """The test's own HTTP client logs each URL it requests through the same handlers: not the services' lines."""
    client_log = logging.getLogger("httpx")
    level = client_log.level
    client_log.setLevel(logging.WARNING)
    yield
    client_log.setLevel(level)


def hostile_token() -> str:
    """Signed with another key, and naming the hostile values as critical extensions, which PyJWT's message quotes."""
    claims = {"iss": "handinhand", "sub": PHONE, "role": "admin", "exp": 4102444800}
    return jwt.encode(claims, "k" * 40, algorithm="HS256", headers={"crit": [NAME, PHONE]})


async def test_no_error_answer_or_log_line_repeats_a_name_or_phone_sent_anywhere_in_a_request(
    registry: httpx.AsyncClient,
    beside: tuple[httpx.AsyncClient, httpx.AsyncClient],
    capsys: pytest.CaptureFixture[str],
    quiet_client: None,
) -> None:
    matching, notifications = beside
    admin, coordinator = auth("admin"), auth("coordinator", [XINGAN])
    created = await registry.post("/children", json=SOMEONE, headers=admin)
    assert created.status_code == 201, created.text
    child = f"/children/{created.json()['id']}"
    change = {"risk_level": "medium", "risk_reason": "好转"}

    answers = {
        "an unknown key": await registry.post("/children", json=SOMEONE | {NAME: "x", PHONE: 1}, headers=admin),
        "a nested unknown key": await registry.post(
            f"{child}/consent",
            json={"given_by": "韦大山", "relation": "grandfather", "given_at": "2024-01-02", "scope": ["aid"], NAME: 1},
            headers=admin,
        ),
        "an invalid enum": await registry.post(
            "/children", json=SOMEONE | {"category": NAME, "risk_level": PHONE, "needs": [NAME]}, headers=admin
        ),
        "a value a validator refuses": await registry.post(
            "/children", json=SOMEONE | {"id_number": PHONE, "guardian_phone": NAME}, headers=admin
        ),
        "a bad date": await registry.post("/children", json=SOMEONE | {"birth_date": PHONE}, headers=admin),
        "malformed JSON": await registry.post(
            "/children", content=f'{{"name": "{NAME}", "guardian_phone": {PHONE}'.encode(), headers=admin | JSON
        ),
        "JSON cut after a value": await registry.post(
            "/children", content=f'{{"guardian_phone": "{PHONE}", "name": "{NAME}",'.encode(), headers=admin | JSON
        ),
        "a bad query": await registry.get("/children", params={"county_code": PHONE, "limit": NAME}, headers=admin),
        "a bad area": await matching.get("/views/summary", params={"code": NAME}, headers=coordinator),
        "a bad path id": await registry.get(f"/children/{NAME}", headers=admin),
        "a numeric path id": await registry.get(f"/children/{PHONE}", headers=admin),
        "a bad path id in matching": await matching.post(f"/wishes/{NAME}/claim", headers=auth("donor")),
        "a numeric If-Match": await registry.patch(child, json=change, headers=admin | {"If-Match": PHONE}),
        "a text If-Match": await registry.patch(child, json=change, headers=admin | {"If-Match": NAME.encode()}),
        "a forged token quoting itself": await registry.get(
            "/children", params={"county_code": XINGAN}, headers={"Authorization": f"Bearer {hostile_token()}"}
        ),
        "a token that is not one": await registry.get(
            "/children", params={"county_code": XINGAN}, headers={"Authorization": f"Bearer {NAME}.{PHONE}".encode()}
        ),
        "a recipient's county": await notifications.get(
            "/notifications", params={"recipient_id": f"county:{NAME}{PHONE}:coordinators"}, headers=coordinator
        ),
        "a method not allowed": await registry.put(child, json={NAME: PHONE}, headers=admin),
        "a route that does not exist": await registry.get(f"/{NAME}/{PHONE}", headers=admin),
    }

    for what, answer in answers.items():
        assert 400 <= answer.status_code < 500, f"{what}: {answer.status_code} {answer.text}"
        assert set(answer.json()["error"]) == {"code", "message", "details"}, what
        assert repeated(answer_bytes(answer)) == [], f"{what} answers {answer.status_code} {answer.text}"
    assert answers["an unknown key"].json()["error"]["details"]["problems"] == [
        {"field": "body", "problem": "2 fields not in the schema (unknown names are not repeated)"}
    ]
    assert answers["a numeric If-Match"].status_code == 409
    assert answers["a method not allowed"].headers["Allow"]

    logged = capsys.readouterr().err.encode()
    for answer in answers.values():  # the capture holds the service's own lines: each request's, with its status
        assert f'"status": {answer.status_code}'.encode() in logged
    assert repeated(logged) == [], "a log line repeats what was sent"


def quoting(value: str) -> str:
    """A validator that quotes what it refuses, as a careless one would."""
    raise ValueError(f"{value} is not a code we know")


def parsed(value: str) -> str:
    """A validator whose library's own error quotes the input (`date.fromisoformat`)."""
    return date.fromisoformat(value).isoformat()


class Call(BaseModel):
    kind: Literal["call"]


class Visit(BaseModel):
    kind: Literal["visit"]


class Probe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact: Annotated[Call | Visit, Field(discriminator="kind")]
    code: Annotated[str, AfterValidator(quoting)]
    day: Annotated[str, AfterValidator(parsed)]
    child_id: uuid.UUID


async def test_a_message_that_would_quote_the_input_names_only_what_was_expected() -> None:
    """Messages of pydantic that take text from the input (a union's unknown tag, a UUID's bad character, a
    validator's or a library's words) are answered without it; those naming what is expected keep their words."""
    app = FastAPI()
    errors.install(app)

    @app.post("/probe")
    async def probe(body: Probe) -> None:
        raise AssertionError("never valid")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as client:
        body = {"contact": {"kind": NAME}, "code": PHONE, "day": NAME, "child_id": NAME, f"{NAME}{PHONE}": 1}
        answer = await client.post("/probe", json=body)
        short = await client.post("/probe", json=body | {"contact": {"kind": "visit"}, "code": "ok", "day": "x"})
    assert answer.status_code == 422
    assert repeated(answer_bytes(answer)) == [], answer.text
    assert problems_of(answer) == {
        "body.contact": "Input tag '…' found using 'kind' does not match any of the expected tags: 'call', 'visit'",
        "body.code": "Value error, …",
        "body.day": "Value error, …",
        "body.child_id": "Input should be a valid UUID, …",
        "body": "a field not in the schema (unknown names are not repeated)",
    }
    # One or two letters of ASCII say nothing of anyone, and occur by chance in any sentence: those words stay.
    assert problems_of(short)["body.code"] == "Value error, ok is not a code we know"
    assert problems_of(short)["body.day"] == "Value error, Invalid isoformat string: 'x'"


async def test_a_validators_own_words_are_kept(registry: httpx.AsyncClient) -> None:
    answer = await registry.post("/children", json=SOMEONE | {"county_code": "450399"}, headers=auth("admin"))
    assert problems_of(answer) == {"body.county_code": "Value error, not a county code of Guangxi (GB/T 2260)"}


def problems_of(answer: httpx.Response) -> dict[str, str]:
    return {p["field"]: p["problem"] for p in answer.json()["error"]["details"]["problems"]}
