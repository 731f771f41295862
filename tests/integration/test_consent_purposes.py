"""Guardian consent beyond pairing (PIPL Art. 28/31), against real NATS and each database: the registry tells
matching which purposes each child's data may be processed for (`registry.child.purposes_changed`), and matching
refuses a wish, aid or an in-person contact in a pairing for any other, writing nothing; an official's visit needs no
consent. From 14, and by the clock alone, every purpose is allowed."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NATS

from backbone.clock import SettableClock
from backbone.natsserver import NatsServer
from contracts.registry import ChildPurposesChanged
from tests.helpers import (
    EVERY_PURPOSE,
    RegistryEvents,
    auth,
    campaign,
    candidates,
    matching_run,
    read_stream,
    token,
    wait_until,
)
from tests.integration.conftest import serve_matching
from tests.integration.test_http import CHILD as REGISTERED

XINGAN = "450325"
COORDINATOR = auth("coordinator", [XINGAN])
CAMPAIGN = str(uuid.uuid4())
WISH = {"item": "一个新书包", "category": "study", "estimated_value_yuan": "80"}
CHILD = REGISTERED | {"category": "left_behind"}
CONSENT = {"given_by": "韦大山", "relation": "grandfather", "given_at": "2023-01-10"}


async def purposes_of(matching: httpx.AsyncClient, child: uuid.UUID) -> list[str] | None:
    page = await matching.get(
        "/views/candidates/children", params={"county_code": XINGAN, "limit": 500}, headers=COORDINATOR
    )
    found = [row["purposes"] for row in page.json()["items"] if row["child_id"] == str(child)]
    return found[0] if found else None


async def shows(matching: httpx.AsyncClient, child: uuid.UUID, purposes: Iterable[str]) -> None:
    """Wait until the candidate view shows the child with these purposes allowed (and no others)."""
    wanted = sorted(purposes)

    async def there() -> bool:
        return await purposes_of(matching, child) == wanted

    await wait_until(there, what=f"the child's purposes {wanted} in the candidate view")


async def allow(registry_events: RegistryEvents, matching: httpx.AsyncClient, child: uuid.UUID, *allowed: str) -> None:
    """The registry says the child's purposes changed (a consent given, narrowed or withdrawn); matching takes it in."""
    await registry_events.emit(ChildPurposesChanged(child_id=child, allowed=sorted(allowed)))
    await shows(matching, child, allowed)


async def published(nc: NATS, subject: str, count: int) -> list[dict[str, Any]]:
    """The data of the events on `subject`, once `count` are there; exactly that many."""
    found: list[dict[str, Any]] = []

    async def arrived() -> bool:
        nonlocal found
        found = [json.loads(m.data)["data"] for m in await read_stream(nc.jetstream(), "MATCHING", subject)]
        return len(found) >= count

    await wait_until(arrived, what=f"{count} events on {subject}")
    assert len(found) == count, found
    return found


def assert_no_consent(answer: httpx.Response, purpose: str, *children: uuid.UUID) -> None:
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["code"] == "no_consent"
    assert purpose in error["message"]
    assert error["details"] == {"purpose": purpose, "child_ids": sorted(str(child) for child in children)}


async def test_a_wish_is_posted_only_with_consent_to_wishes_and_no_longer_once_it_is_withdrawn(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, nc: NATS
) -> None:
    child = await registry_events.child(purposes=())  # under 14, no consent: the registry allows nothing
    await shows(matching, child, [])
    wish = WISH | {"child_id": str(child)}

    assert_no_consent(await matching.post("/wishes", json=wish, headers=COORDINATOR), "wishes", child)
    await allow(registry_events, matching, child, "pairing", "home_visits")  # a consent, but not to wishes
    assert_no_consent(await matching.post("/wishes", json=wish, headers=COORDINATOR), "wishes", child)
    listed = await matching.get("/views/wishes", params={"county_code": XINGAN}, headers=COORDINATOR)
    assert listed.json()["total"] == 0

    await allow(registry_events, matching, child, "pairing", "home_visits", "wishes")
    posted = await matching.post("/wishes", json=wish, headers=COORDINATOR)
    assert posted.status_code == 201, posted.text

    await allow(registry_events, matching, child, "pairing", "home_visits")  # the guardian narrows the consent
    assert_no_consent(await matching.post("/wishes", json=wish, headers=COORDINATOR), "wishes", child)
    (event,) = await published(nc, "matching.wish.posted", 1)  # the refused ones wrote nothing
    assert event["wish_id"] == posted.json()["wish_id"]
    listed = await matching.get("/views/wishes", params={"county_code": XINGAN}, headers=COORDINATOR)
    assert listed.json()["total"] == 1


async def test_aid_goes_to_every_child_listed_only_if_each_may_be_given_aid(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, nc: NATS
) -> None:
    await registry_events.emit(campaign(CAMPAIGN, XINGAN))
    older = await registry_events.child("low", age_band="15-17")  # 14 or over: every purpose
    young = await registry_events.child("low", purposes=("pairing", "wishes"))
    await shows(matching, young, ["pairing", "wishes"])
    listing = {"county_code": XINGAN, "campaign_id": CAMPAIGN, "kind": "warm_pack"}

    async def aid_list() -> dict[str, tuple[bool, bool]]:
        page = await matching.get("/aid-lists", params=listing, headers=COORDINATOR)
        return {row["child_id"]: (row["aid_consent"], row["received"]) for row in page.json()["items"]}

    assert await aid_list() == {str(older): (True, False), str(young): (False, False)}  # why young gets none
    body = {"campaign_id": CAMPAIGN, "kind": "warm_pack", "quantity": 1, "value_yuan": "363.64"}
    both = body | {"child_ids": [str(older), str(young)]}

    assert_no_consent(await matching.post("/aid-distributions", json=both, headers=COORDINATOR), "aid", young)
    assert await aid_list() == {str(older): (True, False), str(young): (False, False)}  # nothing half-given

    await allow(registry_events, matching, young, *EVERY_PURPOSE)
    given = await matching.post("/aid-distributions", json=both, headers=COORDINATOR)
    assert given.status_code == 201, given.text
    assert sorted(r["child_id"] for r in given.json()["receipts"]) == sorted([str(older), str(young)])
    assert await aid_list() == {str(older): (True, True), str(young): (True, True)}

    await allow(registry_events, matching, young, "pairing")  # consent to aid withdrawn
    clothes = body | {"kind": "winter_clothes", "child_ids": [str(young), str(older)]}
    assert_no_consent(await matching.post("/aid-distributions", json=clothes, headers=COORDINATOR), "aid", young)
    events = await published(nc, "matching.aid.distributed", 2)
    assert {e["kind"] for e in events} == {"warm_pack"}


async def test_an_in_person_contact_in_a_pairing_needs_consent_to_home_visits_but_an_officials_visit_does_not(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock, nc: NATS
) -> None:
    volunteer = await registry_events.volunteer("social_worker")
    child = await registry_events.child("high", purposes=("pairing",))  # paired, but no visits at home
    await shows(matching, child, ["pairing"])
    await candidates(matching, "volunteers", 1)
    (proposal,) = (await matching_run(matching))["proposals"]
    confirmed = await matching.post(f"/pairings/{proposal['pairing_id']}/confirm", headers=COORDINATOR)
    assert confirmed.status_code == 200, confirmed.text
    path = f"/pairings/{proposal['pairing_id']}/contacts"
    as_volunteer = {"Authorization": f"Bearer {token('volunteer', sub=str(volunteer))}"}
    visit = {
        "kind": "visit",
        "in_person": True,
        "occurred_at": (clock.now() - timedelta(hours=2)).isoformat(),
        "duration_minutes": 60,
    }

    assert_no_consent(await matching.post(path, json=visit, headers=as_volunteer), "home_visits", child)
    assert_no_consent(await matching.post(path, json=visit, headers=COORDINATOR), "home_visits", child)
    call = visit | {"kind": "call", "in_person": False}
    assert (await matching.post(path, json=call, headers=as_volunteer)).status_code == 201  # the pairing suffices
    official = visit | {"visitor": "child_director"}  # a statutory duty, not a purpose a guardian consents to
    answer = await matching.post(f"/children/{child}/contacts", json=official, headers=COORDINATOR)
    assert answer.status_code == 201, answer.text

    await allow(registry_events, matching, child, "pairing", "home_visits")
    answer = await matching.post(path, json=visit, headers=as_volunteer)
    assert answer.status_code == 201, answer.text
    await allow(registry_events, matching, child, "pairing")  # withdrawn again
    assert_no_consent(await matching.post(path, json=visit, headers=as_volunteer), "home_visits", child)

    events = await published(nc, "matching.contact.recorded", 3)
    assert [(e["visitor"], e["in_person"]) for e in events] == [
        ("volunteer", False),
        ("child_director", True),
        ("volunteer", True),
    ]


async def purpose_events(nc: NATS, count: int) -> dict[str, list[list[str]]]:
    """The registry's purposes events, per child in order, once `count` are on the stream."""
    messages: list[dict[str, Any]] = []

    async def arrived() -> bool:
        nonlocal messages
        found = await read_stream(nc.jetstream(), "REGISTRY", "registry.child.purposes_changed")
        messages = [json.loads(m.data)["data"] for m in found]
        return len(messages) >= count

    await wait_until(arrived, what=f"{count} purposes events on the bus")
    assert len(messages) == count, messages
    assert all(set(data) == {"child_id", "allowed"} for data in messages)  # ids and scopes only
    per_child: dict[str, list[list[str]]] = {}
    for data in messages:
        per_child.setdefault(data["child_id"], []).append(data["allowed"])
    return per_child


async def test_the_registry_announces_the_purposes_on_registration_consent_withdrawal_and_erasure(
    registry: httpx.AsyncClient, nc: NATS, clock: SettableClock
) -> None:
    clock.set(datetime(2023, 1, 10, tzinfo=UTC))
    admin = auth("admin")
    young = (await registry.post("/children", json=CHILD, headers=admin)).json()["id"]  # 6: nothing allowed yet
    older = (await registry.post("/children", json=CHILD | {"birth_date": "2008-05-20"}, headers=admin)).json()["id"]
    path = f"/children/{young}/consent"
    for scope in (["wishes", "pairing"], ["aid", "wishes"]):  # given, then changed
        answer = await registry.post(path, json=CONSENT | {"scope": scope}, headers=admin)
        assert answer.status_code == 200, answer.text
    assert (await registry.delete(path, headers=admin)).status_code == 200
    assert (await registry.post(path, json=CONSENT | {"scope": ["home_visits"]}, headers=admin)).status_code == 200
    assert (await registry.delete(f"/children/{young}/personal-data", headers=admin)).status_code == 204

    assert await purpose_events(nc, 6) == {
        older: [sorted(EVERY_PURPOSE)],  # 14 or over: the child consents for themself
        young: [["pairing", "wishes"], ["aid", "wishes"], [], ["home_visits"], []],  # the last: erased
    }


@pytest.fixture
async def matching_beside(
    nats_server: NatsServer, clock: SettableClock, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The matching service beside the registry fixture, on the same NATS and clock, with a database of its own."""
    async with serve_matching(f"sqlite+aiosqlite:///{tmp_path / 'matching.db'}", nats_server, clock) as client:
        yield client


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/ready")).status_code == 200


async def test_a_child_turning_fourteen_may_be_given_a_wish_by_the_clock_alone(
    registry: httpx.AsyncClient, matching_beside: httpx.AsyncClient, clock: SettableClock
) -> None:
    clock.set(datetime(2023, 1, 10, tzinfo=UTC))
    thirteen = CHILD | {"birth_date": "2009-03-01"}
    admin = auth("admin")
    without = uuid.UUID((await registry.post("/children", json=thirteen, headers=admin)).json()["id"])
    paired_only = uuid.UUID((await registry.post("/children", json=thirteen, headers=admin)).json()["id"])
    consent = CONSENT | {"scope": ["pairing"]}  # eligible for pairing already: the timer must still look at 14
    assert (await registry.post(f"/children/{paired_only}/consent", json=consent, headers=admin)).status_code == 200
    await shows(matching_beside, paired_only, ["pairing"])
    await shows(matching_beside, without, [])
    wish = WISH | {"child_id": str(without)}
    assert_no_consent(await matching_beside.post("/wishes", json=wish, headers=COORDINATOR), "wishes", without)

    clock.set(datetime(2023, 3, 2, tzinfo=UTC))  # the day after the 14th birthday; only the timers run

    await shows(matching_beside, without, EVERY_PURPOSE)
    await shows(matching_beside, paired_only, EVERY_PURPOSE)
    posted = await matching_beside.post("/wishes", json=wish, headers=COORDINATOR)
    assert posted.status_code == 201, posted.text
