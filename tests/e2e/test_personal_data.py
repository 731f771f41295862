"""Personal data: sealed at rest, never on the bus, erased for good, and every read of it audited."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from nats.aio.msg import Msg

from backbone.database import Database
from backbone.store import EventStore
from services.registry import vault
from tests.e2e.conftest import System
from tests.e2e.test_walking_skeleton import CHILD, XINGAN
from tests.helpers import auth, wait_until

pytestmark = pytest.mark.e2e
LINGSHAN = "450721"


def database_files(folder: Path, service: str) -> bytes:
    return b"".join(path.read_bytes() for path in folder.glob(f"{service}.db*"))


async def test_erasure_leaves_no_key_or_plaintext_yet_the_child_still_counts(
    system: System, wire: list[Msg], tmp_path: Path
) -> None:
    person = CHILD | {"name": "覃隐私甲", "village": "隐私村", "township": "隐私镇"}
    coordinator = auth("coordinator", [XINGAN])
    async with httpx.AsyncClient(base_url=system.url("registry"), timeout=10) as registry:
        created = await registry.post("/children", json=person, headers=coordinator)
        assert created.status_code == 201, created.text
        child_id = uuid.UUID(created.json()["id"])
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}")
        async with database.read() as conn:
            key = await vault.key_of(conn, child_id)
        assert key is not None
        assert key in database_files(tmp_path, "registry")
        for field in ("name", "village", "township"):  # sealed at rest from the start
            assert person[field].encode() not in database_files(tmp_path, "registry")

        erased = await registry.delete(f"/children/{child_id}/personal-data", headers=coordinator)
        assert erased.status_code == 204, erased.text
        again = await registry.delete(f"/children/{child_id}/personal-data", headers=coordinator)
        assert again.status_code == 204

        read = (await registry.get(f"/children/{child_id}", headers=coordinator)).json()
        assert read["personal_data_erased"] is True
        assert (read["name"], read["birth_date"], read["village"]) == (None, None, None)
        assert read["age_band"] == created.json()["age_band"]
        assert read["risk_level"] == "high"

    stored = database_files(tmp_path, "registry")
    assert key not in stored, "the destroyed key is still in the database files"
    async with database.read() as conn:
        history = await EventStore(postgres=False).load(conn, str(child_id))
        assert await vault.key_of(conn, child_id) is None
    assert [e.type for e in history] == [
        "registry.child.registered.v2",
        "registry.child.pairing_eligibility_changed.v1",
        "registry.child.personal_data_erased.v1",
        "registry.child.pairing_eligibility_changed.v1",  # now for want of personal data
    ]
    assert history[0].event().child_id == child_id  # type: ignore[attr-defined]
    assert vault.unseal(None, child_id, history[0].sealed) is None
    await database.dispose()

    async with httpx.AsyncClient(base_url=system.url("matching"), timeout=10) as matching:

        async def counted() -> bool:
            page = await matching.get("/views/engagement", params={"county_code": XINGAN}, headers=coordinator)
            return any(row["child_id"] == str(child_id) for row in page.json()["items"])

        await wait_until(counted, within=5, what="the erased child in the engagement view")
    assert not any(person["name"].encode() in m.data for m in wire)


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

        donor = auth("donor")
        for method, path in [
            ("GET", f"/children/{child_id}"),
            ("GET", f"/children?county_code={XINGAN}"),
            ("POST", "/children"),
            ("DELETE", f"/children/{child_id}/personal-data"),
            ("GET", "/audit"),
        ]:
            answer = await registry.request(method, path, headers=donor, json=CHILD if method == "POST" else None)
            assert answer.status_code == 403, f"{method} {path}: {answer.status_code}"

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
