"""A volunteer's visit cards in the registry, against real NATS and each database: a child registered through the
API, matching's pairing events published on the MATCHING stream as matching would, the card shown (exactly what a
visit needs, each read audit-logged) only to the paired volunteer and only while the pairing is confirmed; the
projection behind it rebuilt from the stream to the same rows."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client as NATS

from backbone.clock import SettableClock
from backbone.rebuild import replay
from backbone.runtime import Runtime
from backbone.settings import Settings
from contracts import Event
from contracts.matching import (
    PairingClosed,
    PairingConfirmed,
    PairingProposed,
    PairingResumed,
    PairingSuspended,
)
from services.registry.app import SPEC as REGISTRY
from services.registry.visit_access import PairingAccess, VisitAccess
from tests.helpers import RegistryEvents, auth, child_registration, rows, token, wait_until

XINGAN = "450325"
ADMIN = auth("admin")
CONSENT = {
    "given_by": "韦大山",
    "relation": "grandfather",
    "given_at": "2023-01-10",
    "scope": ["pairing", "home_visits"],
}
CARD_FIELDS = {"pairing_id", "child_id", "name", "township", "village", "guardian_name", "guardian_phone"}


def as_volunteer(volunteer: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('volunteer', sub=str(volunteer))}"}


async def registered_child(registry: httpx.AsyncClient, **fields: Any) -> uuid.UUID:
    """A child registered through the API, with the guardian's consent: eligible for pairing."""
    answer = await registry.post("/children", json=child_registration(**fields), headers=ADMIN)
    assert answer.status_code == 201, answer.text
    child = uuid.UUID(answer.json()["id"])
    consented = await registry.post(f"/children/{child}/consent", json=CONSENT, headers=ADMIN)
    assert consented.status_code == 200, consented.text
    assert consented.json()["eligible_for_pairing"] is True
    return child


class Pairing:
    """One pairing as matching tells of it: each event on the MATCHING stream, in the pairing's own sequence."""

    def __init__(self, bus: RegistryEvents, child: uuid.UUID, volunteer: uuid.UUID) -> None:
        self.bus = bus
        self.ids = {"pairing_id": uuid.uuid4(), "child_id": child, "volunteer_id": volunteer, "county_code": XINGAN}

    async def propose(self) -> None:
        await self.emit(
            PairingProposed(
                **self.ids,
                run_id=uuid.uuid4(),
                risk_level="medium",
                score=100,
                score_parts={"same_township": 50},
                expires_at=datetime.now(UTC) + timedelta(days=7),
            )
        )

    async def emit(self, event: Event) -> None:
        await self.bus.emit(event)


async def cards(registry: httpx.AsyncClient, volunteer: uuid.UUID) -> list[dict[str, Any]]:
    answer = await registry.get(f"/volunteers/{volunteer}/visit-cards", headers=as_volunteer(volunteer))
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


async def shown(registry: httpx.AsyncClient, volunteer: uuid.UUID, children: set[uuid.UUID], what: str) -> None:
    """Wait (bounded) until the volunteer's cards are those of exactly these children."""

    async def there() -> bool:
        return {uuid.UUID(card["child_id"]) for card in await cards(registry, volunteer)} == children

    await wait_until(there, within=20, what=what)


async def audit(registry: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    answer = await registry.get("/audit", params={"limit": 500, **params}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return [entry for entry in answer.json()["items"] if entry["action"] == "visit_card"]


async def test_the_paired_volunteer_reads_a_visit_card_only_while_the_pairing_is_confirmed(
    registry: httpx.AsyncClient, nc: NATS
) -> None:
    child = await registered_child(registry)
    other_child = await registered_child(registry, name="韦小燕", village="山湾村", guardian_name="韦二姐")
    volunteer, stranger = uuid.uuid4(), uuid.uuid4()
    bus = RegistryEvents(nc.jetstream())
    pairing = Pairing(bus, child, volunteer)
    await pairing.propose()
    elsewhere = Pairing(bus, other_child, stranger)  # another volunteer's pairing: never on this volunteer's cards
    await elsewhere.propose()
    await elsewhere.emit(PairingConfirmed(**elsewhere.ids))
    await shown(registry, stranger, {other_child}, "the other volunteer's card")
    assert await cards(registry, volunteer) == []  # proposed is not confirmed

    await pairing.emit(PairingConfirmed(**pairing.ids))
    await shown(registry, volunteer, {child}, "the card once the pairing is confirmed")

    (card,) = await cards(registry, volunteer)
    assert set(card) == CARD_FIELDS
    assert card == {
        "pairing_id": str(pairing.ids["pairing_id"]),
        "child_id": str(child),
        "name": "莫小兰",
        "township": "湘漓镇",
        "village": "双河村",
        "guardian_name": "韦大山",
        "guardian_phone": "13907730001",
    }
    read = (await audit(registry, child_id=str(child), outcome="allowed"))[0]  # the newest: the read just made
    assert (read["actor"], read["role"], read["county_code"]) == (str(volunteer), "volunteer", XINGAN)

    refused = await registry.get(f"/volunteers/{volunteer}/visit-cards", headers=as_volunteer(stranger))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert str(volunteer) not in refused.text
    assert "莫小兰" not in refused.text
    (denied,) = await audit(registry, actor=str(stranger), outcome="denied")
    assert (denied["role"], denied["child_id"]) == ("volunteer", None)
    for role, counties in (("coordinator", [XINGAN]), ("admin", []), ("service", [])):
        answer = await registry.get(f"/volunteers/{volunteer}/visit-cards", headers=auth(role, counties))
        assert answer.status_code == 403, role  # only the volunteer themselves, whoever else asks
        assert "莫小兰" not in answer.text
        assert [e["role"] for e in await audit(registry, actor=role, outcome="denied")] == [role]

    await pairing.emit(PairingSuspended(**pairing.ids, reason="volunteer_ineligible"))
    await shown(registry, volunteer, set(), "the card gone while the pairing is suspended")
    await pairing.emit(PairingResumed(**pairing.ids))
    await shown(registry, volunteer, {child}, "the card back once the pairing resumes")
    await pairing.emit(PairingClosed(**pairing.ids, reason="goals_met"))
    await shown(registry, volunteer, set(), "the card gone once the pairing is closed")
    await shown(registry, stranger, {other_child}, "the other volunteer's card untouched")
    reads = await audit(registry, child_id=str(child), outcome="allowed")
    assert reads
    assert {(e["actor"], e["purpose"]) for e in reads} == {(str(volunteer), "visit by the paired volunteer")}


async def test_the_card_goes_as_soon_as_the_registry_learns_the_child_may_not_be_paired(
    registry: httpx.AsyncClient, nc: NATS
) -> None:
    """The guardian's consent withdrawn, the child gone from the programme, their data erased: the registry knows
    first, and the card goes at once, before matching hears of it and suspends or closes the pairing."""
    kept, withdrawn, left, erased = [await registered_child(registry, name=name) for name in ("甲", "乙", "丙", "丁")]
    volunteer = uuid.uuid4()
    bus = RegistryEvents(nc.jetstream())
    for child in (kept, withdrawn, left, erased):
        pairing = Pairing(bus, child, volunteer)
        await pairing.propose()
        await pairing.emit(PairingConfirmed(**pairing.ids))
    await shown(registry, volunteer, {kept, withdrawn, left, erased}, "four cards")

    changes = [
        await registry.delete(f"/children/{withdrawn}/consent", headers=ADMIN),
        await registry.post(f"/children/{left}/leave", json={"reason": "moved"}, headers=ADMIN),
        await registry.delete(f"/children/{erased}/personal-data", headers=ADMIN),
    ]
    assert [answer.status_code for answer in changes] == [200, 200, 204], [answer.text for answer in changes]

    (card,) = await cards(registry, volunteer)  # at once: no wait for the pairing events that follow
    assert (card["child_id"], card["name"]) == (str(kept), "甲")
    latest = (await audit(registry, actor=str(volunteer)))[0]
    assert (latest["child_id"], latest["outcome"]) == (str(kept), "allowed")  # only what was shown is logged read


async def test_the_visit_access_view_is_rebuilt_from_the_stream_to_the_same_rows(
    registry: httpx.AsyncClient, nc: NATS, database_url: str, tmp_path: Path, clock: SettableClock
) -> None:
    children = [await registered_child(registry, name=f"孩子{n}") for n in range(3)]
    volunteer = uuid.uuid4()
    bus = RegistryEvents(nc.jetstream())
    pairings = [Pairing(bus, child, volunteer) for child in children]
    for pairing in pairings:
        await pairing.propose()
        await pairing.emit(PairingConfirmed(**pairing.ids))
    await pairings[1].emit(PairingSuspended(**pairings[1].ids, reason="child_ineligible"))
    await pairings[2].emit(PairingClosed(**pairings[2].ids, reason="volunteer_withdrew"))
    await shown(registry, volunteer, {children[0]}, "one confirmed pairing of three")
    runtime = Runtime(REGISTRY, Settings(database_url=database_url), clock)
    runtime.nc = nc
    try:

        async def settled() -> bool:
            """Each pairing's last event applied: the cards alone cannot tell (a pairing whose events are still on
            their way shows no card either)."""
            found = await rows(runtime.db, VisitAccess.__table__)  # type: ignore[arg-type]
            return len(found) == 3 and [child for _, child, _, confirmed in found if confirmed] == [children[0]]

        await wait_until(settled, what="every pairing's last event in the view")
        before = await rows(runtime.db, VisitAccess.__table__)  # type: ignore[arg-type]

        replayed, _ = await replay(runtime, PairingAccess())

        assert replayed == 3 * 2 + 2  # three proposed and confirmed, one suspended, one closed: no other event
        assert await rows(runtime.db, VisitAccess.__table__) == before  # type: ignore[arg-type]
    finally:
        await runtime.db.dispose()
    later = Pairing(bus, await registered_child(registry, name="后来"), volunteer)  # the live consumer took over
    await later.propose()
    await later.emit(PairingConfirmed(**later.ids))
    await shown(registry, volunteer, {children[0], later.ids["child_id"]}, "a pairing confirmed after the rebuild")


def test_the_registry_lists_the_visit_access_projection_for_a_rebuild(tmp_path: Path) -> None:
    env = {**os.environ, "DATA_DIR": str(tmp_path)}
    listed = subprocess.run(
        [sys.executable, "-m", "services.registry", "rebuild", "--list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert "registry-visit-access" in listed.stderr.split("projections:", 1)[1].replace(",", " ").split()
