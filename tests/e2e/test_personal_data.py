"""Personal data: sealed at rest, never on the bus, erased for good, and every read of it audited."""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.msg import Msg

from backbone.clock import local_date
from backbone.database import Database
from backbone.store import EventStore
from services.registry import vault
from tests.e2e.conftest import System
from tests.e2e.test_walking_skeleton import CHILD, XINGAN
from tests.helpers import auth, to_csv, wait_until
from tests.unit.test_child_import import id_number

pytestmark = pytest.mark.e2e
LINGSHAN = "450721"
COORDINATOR = auth("coordinator", [XINGAN])
BEYOND_REGISTRY = ("matching", "notifications")  # services that must hold no personal field once it is erased
SCRUBBED_WITHIN = 30.0  # seconds: the scrub's timer looks every second; this is generous on a loaded machine


def database_files(folder: Path, service: str) -> bytes:
    """Every file of the service's database: the main file, its -wal and -shm (and a -journal, were there one)."""
    return b"".join(path.read_bytes() for path in folder.glob(f"{service}.db*"))


def forms(value: str) -> list[bytes]:
    """A value as it could sit in the files: UTF-8 text, or escaped as JSON columns store it."""
    return [value.encode(), json.dumps(value).strip('"').encode()]


def found_in(stored: bytes, person: dict[str, Any], fields: tuple[str, ...]) -> list[str]:
    return [field for field in fields if any(form in stored for form in forms(str(person[field])))]


def left_behind(folder: Path, person: dict[str, Any], fields: tuple[str, ...]) -> dict[str, list[str]]:
    """The fields still in the files of the services that only ever held some of them (matching's notes)."""
    found = {service: found_in(database_files(folder, service), person, fields) for service in BEYOND_REGISTRY}
    return {service: fields for service, fields in found.items() if fields}


async def engagement_row(matching: httpx.AsyncClient, child_id: uuid.UUID) -> dict[str, Any] | None:
    page = await matching.get("/views/engagement", params={"county_code": XINGAN, "limit": 500}, headers=COORDINATOR)
    return next((row for row in page.json()["items"] if row["child_id"] == str(child_id)), None)


async def visited_on(matching: httpx.AsyncClient, child_id: uuid.UUID, when: datetime) -> None:
    """Wait until the engagement view counts the child's in-person visit at `when`."""

    async def counted() -> bool:
        row = await engagement_row(matching, child_id)
        return row is not None and row["last_in_person_at"] is not None and at(row["last_in_person_at"]) == when

    await wait_until(counted, within=20, what=f"the visit of {when} in the engagement view")


async def visit(matching: httpx.AsyncClient, child_id: uuid.UUID, when: datetime, note: str) -> dict[str, Any]:
    """The county's child director visits the child (no pairing, no consent needed) and leaves a note."""
    body = {
        "kind": "visit",
        "in_person": True,
        "occurred_at": when.isoformat(),
        "duration_minutes": 45,
        "visitor": "child_director",
        "note": note,
    }
    answer = await matching.post(f"/children/{child_id}/contacts", json=body, headers=COORDINATOR)
    assert answer.status_code == 201, answer.text
    recorded: dict[str, Any] = answer.json()
    return recorded


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


PERSON = CHILD | {
    "name": "覃隐私甲",
    "id_number": id_number(XINGAN, date(2015, 3, 2), 777),
    "birth_date": "2015-03-02",
    "township": "隐私镇",
    "village": "隐私村",
    "guardian_name": "覃监护乙",
    "guardian_phone": "13907739876",
}
CHILD_FIELDS = ("name", "id_number", "birth_date", "township", "village", "guardian_name", "guardian_phone")
VOLUNTEER = {
    "name": "黄隐私丙",
    "phone": "13977739876",
    "kind": "caring_parent",
    "county_code": XINGAN,
    "township": "志愿隐私镇",
    "village": "志愿隐私村",
    "availability": "周三隐私时段",
}
VOLUNTEER_FIELDS = ("name", "phone", "township", "village", "availability")
NOTE = {"note": "隐私笔记：奶奶说孩子夜里常哭"}  # free text about the child, kept by matching with the contact


async def test_erasure_leaves_no_key_or_plaintext_yet_the_child_still_counts(
    system: System, wire: list[Msg], tmp_path: Path
) -> None:
    coordinator = COORDINATOR
    async with (
        httpx.AsyncClient(base_url=system.url("registry"), timeout=10) as registry,
        httpx.AsyncClient(base_url=system.url("matching"), timeout=10) as matching,
    ):
        created = await registry.post("/children", json=PERSON, headers=coordinator)
        assert created.status_code == 201, created.text
        child_id = uuid.UUID(created.json()["id"])
        reason = {"risk_level": "medium", "risk_reason": "隐私理由：祖母住院"}  # sealed into the change's event
        assert (await registry.patch(f"/children/{child_id}", json=reason, headers=coordinator)).status_code == 200
        await wait_until(lambda: _listed(matching, child_id), within=20, what="the child in matching's view")
        today = datetime.now(UTC).replace(microsecond=0)
        first = await visit(matching, child_id, today - timedelta(days=2), NOTE["note"])
        assert first["note"] == NOTE["note"]
        await visited_on(matching, child_id, today - timedelta(days=2))
        assert left_behind(tmp_path, NOTE, ("note",)) == {"matching": ["note"]}  # what the check below is for

        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}")
        async with database.read() as conn:
            key = await vault.key_of(conn, child_id)
        assert key is not None
        assert key in database_files(tmp_path, "registry")
        before = database_files(tmp_path, "registry")
        assert found_in(before, PERSON, CHILD_FIELDS) == []  # sealed at rest from the start
        assert found_in(before, reason, ("risk_reason",)) == []

        erased = await registry.delete(f"/children/{child_id}/personal-data", headers=coordinator)
        assert erased.status_code == 204, erased.text
        again = await registry.delete(f"/children/{child_id}/personal-data", headers=coordinator)
        assert again.status_code == 204

        read = (await registry.get(f"/children/{child_id}", headers=coordinator)).json()
        assert read["personal_data_erased"] is True
        assert [read[field] for field in CHILD_FIELDS] == [None] * len(CHILD_FIELDS)
        assert read["age_band"] == created.json()["age_band"]
        assert read["risk_level"] == "medium"

        stored = database_files(tmp_path, "registry")
        assert key not in stored, "the destroyed key is still in the database files"
        assert found_in(stored, PERSON, CHILD_FIELDS) == []
        assert found_in(stored, reason, ("risk_reason",)) == []
        async with database.read() as conn:
            history = await EventStore(postgres=False).load(conn, str(child_id))
            assert await vault.key_of(conn, child_id) is None
        assert [e.type for e in history if e.type != "registry.child.purposes_changed.v1"] == [
            "registry.child.registered.v2",
            "registry.child.pairing_eligibility_changed.v1",
            "registry.child.risk_changed.v1",
            "registry.child.personal_data_erased.v1",
            "registry.child.pairing_eligibility_changed.v1",  # now for want of personal data
        ]
        assert history[0].event().child_id == child_id  # type: ignore[attr-defined]
        assert [e.version for e in history if e.sealed is not None] == [1, 3]  # still there, and unreadable
        assert vault.unseal(None, child_id, history[0].sealed) is None
        await database.dispose()

        async def notes() -> list[str | None]:
            page = await matching.get(f"/children/{child_id}/contacts", headers=coordinator)
            return [item["note"] for item in page.json()["items"]]

        async def cleared() -> bool:
            return await notes() == [None]

        await wait_until(cleared, within=20, what="matching to clear the note on erasure")
        everything = PERSON | reason | NOTE
        fields = (*CHILD_FIELDS, "risk_reason", "note")

        async def scrubbed() -> bool:
            return left_behind(tmp_path, everything, fields) == {}

        # Nothing else happens meanwhile: only the services' own scrub can take the note out of the files.
        with contextlib.suppress(AssertionError):
            await wait_until(scrubbed, within=SCRUBBED_WITHIN, what="the note gone from matching's files")
        assert left_behind(tmp_path, everything, fields) == {}, "still in the files after the scrub's time"

        later = await visit(matching, child_id, today - timedelta(days=1), NOTE["note"])
        assert later["note"] is None  # an official still visits; no note about the child is kept
        # A later event, after the erasure, reached the view: the erased child is still there and still counts.
        await visited_on(matching, child_id, today - timedelta(days=1))
        assert await notes() == [None, None]
    assert left_behind(tmp_path, everything, fields) == {}
    assert not [field for field in CHILD_FIELDS if any(str(PERSON[field]).encode() in m.data for m in wire)]
    assert not [m.subject for m in wire if NOTE["note"].encode() in m.data]


async def _listed(matching: httpx.AsyncClient, child_id: uuid.UUID) -> bool:
    return await engagement_row(matching, child_id) is not None


async def test_erasing_a_volunteer_leaves_neither_key_nor_plaintext_in_the_files(
    system: System, tmp_path: Path
) -> None:
    coordinator = auth("coordinator", [XINGAN])
    async with httpx.AsyncClient(base_url=system.url("registry"), timeout=10) as registry:
        created = await registry.post("/volunteers", json=VOLUNTEER, headers=coordinator)
        assert created.status_code == 201, created.text
        volunteer_id = uuid.UUID(created.json()["id"])
        path = f"/volunteers/{volunteer_id}"
        served = {"served_on": str(local_date(datetime.now(UTC))), "hours": 2}
        assert (await registry.post(f"{path}/service-hours", json=served, headers=coordinator)).status_code == 200
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}")
        async with database.read() as conn:
            key = await vault.key_of(conn, volunteer_id)
        await database.dispose()
        assert key is not None
        assert key in database_files(tmp_path, "registry")
        sealed = ("name", "phone", "township", "village")  # availability is free text on the record until erased
        assert found_in(database_files(tmp_path, "registry"), VOLUNTEER, sealed) == []

        assert (await registry.delete(f"{path}/personal-data", headers=coordinator)).status_code == 204
        read = (await registry.get(path, headers=coordinator)).json()
        assert [read[field] for field in VOLUNTEER_FIELDS] == [None] * len(VOLUNTEER_FIELDS)
        assert read["service_hours"] == 2.0

    stored = database_files(tmp_path, "registry")
    assert key not in stored, "the volunteer's destroyed key is still in the database files"
    assert found_in(stored, VOLUNTEER, VOLUNTEER_FIELDS) == []
    assert left_behind(tmp_path, VOLUNTEER, VOLUNTEER_FIELDS) == {}


async def test_reads_are_audited_refusals_included_and_donors_see_no_child(system: System) -> None:
    async with httpx.AsyncClient(base_url=system.url("registry"), timeout=10) as registry:
        created = await registry.post("/children", json=CHILD, headers=auth("admin"))
        child_id = created.json()["id"]
        mine = await registry.get(
            f"/children/{child_id}", headers=auth("coordinator", [XINGAN]) | {"X-Purpose": "home visit planning"}
        )
        assert mine.status_code == 200
        theirs = await registry.get(f"/children/{child_id}", headers=auth("coordinator", [LINGSHAN]))
        assert theirs.status_code == 403
        assert theirs.json()["error"]["code"] == "forbidden"

        await donor_is_refused_everywhere(registry, child_id)

        log = (await registry.get("/audit", params={"child_id": child_id}, headers=auth("admin"))).json()["items"]
        entries = {(e["actor"], e["action"], e["outcome"], e["purpose"]) for e in log}
        assert ("coordinator", "read", "allowed", "home visit planning") in entries
        assert ("coordinator", "read", "denied", "unstated") in entries
        chinese = await registry.get(
            f"/children/{child_id}", params={"purpose": "春节家访"}, headers=auth("coordinator", [XINGAN])
        )
        assert chinese.status_code == 200
        log = (await registry.get("/audit", params={"child_id": child_id}, headers=auth("admin"))).json()["items"]
        assert log[0]["purpose"] == "春节家访"  # newest first
        assert all(e["county_code"] == XINGAN for e in log)
        refused = await registry.get("/audit", headers=auth("coordinator", [XINGAN]))
        assert refused.status_code == 403  # only an admin reads the audit log


async def donor_is_refused_everywhere(registry: httpx.AsyncClient, child_id: str) -> None:
    """A donor token gets a 403 from every child endpoint, with a valid request each time, changes nothing, and
    each refusal is in the audit log."""
    before = (await registry.get(f"/children/{child_id}", headers=auth("admin"))).json()
    consent = {"given_by": "某人", "relation": "grandfather", "given_at": "2023-01-12", "scope": ["pairing"]}
    csv = to_csv(["name"], [["某人"]])
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/children/{child_id}", {}),
        ("GET", "/children", {"params": {"county_code": XINGAN}}),
        ("POST", "/children", {"json": CHILD}),
        ("PATCH", f"/children/{child_id}", {"json": {"needs": ["tutoring"]}}),
        ("POST", f"/children/{child_id}/leave", {"json": {"reason": "moved"}}),
        ("POST", f"/children/{child_id}/consent", {"json": consent}),
        ("DELETE", f"/children/{child_id}/consent", {}),
        ("GET", f"/children/{child_id}/history", {}),
        ("GET", "/children/export", {"params": {"county_code": XINGAN}}),
        ("POST", "/children/import", {"content": csv, "headers": {"Content-Type": "text/csv"}}),
        ("DELETE", f"/children/{child_id}/personal-data", {}),
        ("GET", "/audit", {}),
    ]
    for method, path, options in requests:
        headers = auth("donor") | options.pop("headers", {})
        answer = await registry.request(method, path, headers=headers, **options)
        assert answer.status_code == 403, f"{method} {path}: {answer.status_code}"
        assert answer.json()["error"]["code"] == "forbidden"
    after = (await registry.get(f"/children/{child_id}", headers=auth("admin"))).json()
    assert after == before
    params = {"actor": "donor", "outcome": "denied", "limit": 100}
    refusals = (await registry.get("/audit", params=params, headers=auth("admin"))).json()["items"]
    assert len(refusals) == len(requests)
    assert {e["action"] for e in refusals} == {
        "read", "list", "register", "change", "leave", "consent", "withdraw_consent", "history", "export", "import",
        "erase", "read_audit",
    }  # fmt: skip
    assert all(e["role"] == "donor" for e in refusals)
