"""Micro-wishes against real NATS and each database: the donors' board without a child's identity, one winner of
concurrent claims, a lapsed claim back on the board, fulfilment on a visit and an anonymous thank-you."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
from nats.aio.client import Client as NATS

from backbone.clock import SettableClock
from contracts.registry import ChildLeftProgramme, ChildPurposesChanged
from tests.helpers import RegistryEvents, auth, candidates, read_stream, token, wait_until

XINGAN = "450325"
COORDINATOR = auth("coordinator", [XINGAN])


def donor(sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('donor', sub=sub)}"}


async def posted_wish(matching: httpx.AsyncClient, registry_events: RegistryEvents) -> tuple[uuid.UUID, dict[str, Any]]:
    child = await registry_events.child("low", gender="female")

    await candidates(matching, "children", 1)
    body = {
        "child_id": str(child),
        "item": "一个书包 a school bag",
        "category": "study",
        "estimated_value_yuan": "80.00",
    }
    answer = await matching.post("/wishes", json=body, headers=COORDINATOR)
    assert answer.status_code == 201, answer.text
    wish: dict[str, Any] = answer.json()
    return child, wish


async def test_donors_see_the_board_without_who_the_child_is(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, nc: NATS
) -> None:
    child, wish = await posted_wish(matching, registry_events)
    assert wish["child_id"] == str(child)  # the coordinator sees whose wish it is

    board = await matching.get("/wishes", params={"county_code": XINGAN}, headers=donor("donor-a"))

    assert board.status_code == 200
    (shown,) = board.json()["items"]
    assert (shown["child"], shown["county"]) == ("girl, 9-11", "兴安县 Xing'an Xian")  # "girl, 9-11, Xing'an County"
    assert shown["id"] == wish["id"]
    assert shown["item"] == "一个书包 a school bag"
    assert shown["estimated_value_yuan"] == "80.00"
    assert str(child) not in board.text
    assert "child_id" not in shown
    others = await matching.get("/wishes", params={"status": "acknowledged"}, headers=donor("donor-a"))
    assert others.status_code == 403  # how other donors' wishes went is not a donor's to count
    refused = await matching.post("/wishes", json={"child_id": str(child)}, headers=donor("donor-a"))
    assert refused.status_code == 403
    assert (await matching.get("/views/wishes", params={"county_code": XINGAN}, headers=donor("x"))).status_code == 403

    async def published() -> bool:
        return len(await read_stream(nc.jetstream(), "MATCHING", "matching.wish.posted")) == 1

    await wait_until(published, what="the wish on the bus")
    (message,) = await read_stream(nc.jetstream(), "MATCHING", "matching.wish.posted")
    assert set(json.loads(message.data)["data"]) == {
        "wish_id", "child_id", "county_code", "item", "category", "estimated_value_yuan", "campaign_id",
    }  # fmt: skip


async def test_of_two_donors_claiming_at_once_one_wins(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    _, wish = await posted_wish(matching, registry_events)

    answers = await asyncio.gather(
        *(matching.post(f"/wishes/{wish['wish_id']}/claim", headers=donor(sub)) for sub in ("donor-a", "donor-b"))
    )

    assert sorted(a.status_code for a in answers) == [200, 409]
    board = await matching.get("/wishes", params={"county_code": XINGAN}, headers=donor("donor-c"))
    assert board.json()["total"] == 0  # off the board while claimed


async def test_a_claim_not_fulfilled_in_time_returns_the_wish_to_the_board(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    _, wish = await posted_wish(matching, registry_events)
    claimed = await matching.post(f"/wishes/{wish['wish_id']}/claim", headers=donor("donor-a"))
    assert claimed.json()["status"] == "claimed"

    clock.advance(timedelta(days=15))

    async def back_on_the_board() -> bool:
        board = await matching.get("/wishes", params={"county_code": XINGAN}, headers=donor("donor-b"))
        return bool(board.json()["total"] == 1)

    await wait_until(back_on_the_board, what="the lapsed claim's wish back on the board")
    mine = await matching.get("/wishes/mine", headers=donor("donor-a"))
    assert mine.json()["total"] == 0
    again = await matching.post(f"/wishes/{wish['wish_id']}/claim", headers=donor("donor-b"))
    assert again.status_code == 200


async def test_a_wish_fulfilled_and_acknowledged_thanks_the_donor_without_naming_the_child(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    child, wish = await posted_wish(matching, registry_events)
    await open_wishes(matching, child, 1)
    path = f"/wishes/{wish['wish_id']}"
    too_early = await matching.post(f"{path}/fulfil", json={}, headers=COORDINATOR)
    assert too_early.status_code == 409
    await matching.post(f"{path}/claim", headers=donor("donor-a"))
    someone_else = await matching.post(f"{path}/release", headers=donor("donor-b"))
    assert someone_else.status_code == 403

    stranger = await matching.post(f"{path}/fulfil", json={"contact_id": str(uuid.uuid4())}, headers=COORDINATOR)
    assert stranger.status_code == 422  # the visit it was brought on must be a contact with this child
    visit = {"kind": "gift", "in_person": True, "occurred_at": clock.now().isoformat(), "duration_minutes": 20}
    brought = await matching.post(
        f"/children/{child}/contacts", json=visit | {"visitor": "child_director"}, headers=COORDINATOR
    )
    assert brought.status_code == 201, brought.text
    fulfilled = await matching.post(
        f"{path}/fulfil", json={"contact_id": brought.json()["contact_id"]}, headers=COORDINATOR
    )
    assert fulfilled.json()["status"] == "fulfilled"
    assert fulfilled.json()["contact_id"] == brought.json()["contact_id"]
    thanked = await matching.post(f"{path}/acknowledge", headers=COORDINATOR)
    assert thanked.json()["status"] == "acknowledged"
    await open_wishes(matching, child, 0)  # the engagement view counts it done

    mine = await matching.get("/wishes/mine", headers=donor("donor-a"))
    (own,) = mine.json()["items"]
    assert own["status"] == "acknowledged"
    assert str(child) not in mine.text
    withdrawn = await matching.post(f"{path}/withdraw", json={"reason": "other"}, headers=COORDINATOR)
    assert withdrawn.status_code == 409


async def test_bad_wishes_are_refused_with_a_clear_422(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    child, wish = await posted_wish(matching, registry_events)
    base = {"child_id": str(child), "item": "a ball", "category": "sports", "estimated_value_yuan": "30"}
    for bad in ({"estimated_value_yuan": "-1"}, {"item": "x" * 41}, {"category": "car"}, {"item": "  "}):
        answer = await matching.post("/wishes", json=base | bad, headers=COORDINATOR)
        assert answer.status_code == 422, bad
    unknown = await matching.post("/wishes", json=base | {"child_id": str(uuid.uuid4())}, headers=COORDINATOR)
    assert unknown.status_code == 404
    withdrawn = await matching.post(
        f"/wishes/{wish['wish_id']}/withdraw", json={"reason": "no_longer_needed"}, headers=COORDINATOR
    )
    assert withdrawn.json()["status"] == "withdrawn"


async def open_wishes(matching: httpx.AsyncClient, child: uuid.UUID, count: int) -> None:
    async def counted() -> bool:
        page = await matching.get("/views/engagement", params={"county_code": XINGAN}, headers=COORDINATOR)
        return any(r["child_id"] == str(child) and r["open_wishes"] == count for r in page.json()["items"])

    await wait_until(counted, what=f"{count} open wishes in the engagement view")


async def test_a_wish_leaves_the_board_when_consent_to_wishes_goes_or_the_child_leaves(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, nc: NATS
) -> None:
    child, wish = await posted_wish(matching, registry_events)
    claimed = await matching.post(f"/wishes/{wish['id']}/claim", headers=donor("donor-a"))
    assert claimed.status_code == 200
    other = await registry_events.child("low", gender="male")
    await candidates(matching, "children", 2)
    body = {"child_id": str(other), "item": "一个篮球", "category": "sports", "estimated_value_yuan": "50"}
    second = (await matching.post("/wishes", json=body, headers=COORDINATOR)).json()

    await registry_events.emit(ChildPurposesChanged(child_id=child, allowed=["home_visits", "pairing"]))
    await registry_events.emit(ChildLeftProgramme(child_id=other, reason="moved"))

    async def withdrawn() -> list[dict[str, Any]]:
        return [
            json.loads(m.data)["data"] for m in await read_stream(nc.jetstream(), "MATCHING", "matching.wish.withdrawn")
        ]

    async def both() -> bool:
        return len(await withdrawn()) == 2

    await wait_until(both, what="both wishes withdrawn")
    reasons = {event["wish_id"]: event["reason"] for event in await withdrawn()}
    assert reasons == {wish["id"]: "no_consent", second["id"]: "child_left_programme"}
    board = await matching.get("/wishes", params={"county_code": XINGAN}, headers=donor("donor-b"))
    assert board.json()["total"] == 0
    assert (await matching.get("/wishes/mine", headers=donor("donor-a"))).json()["items"][0]["status"] == "withdrawn"
    again = await matching.post(f"/wishes/{second['id']}/claim", headers=donor("donor-b"))
    assert again.status_code == 409
