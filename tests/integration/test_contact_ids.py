"""Contacts that carry the sender's own id, against real NATS and each database: sent again (one after the other, at
the same time, after the pairing closed) they are recorded once and answered with the first contact; an id taken by
another child, pairing or person is refused. And a volunteer's children, as their phone page reads them."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from nats.aio.client import Client as NATS

from backbone.clock import SettableClock
from contracts.registry import ChildLeftProgramme
from tests.helpers import RegistryEvents, auth, read_stream, token, wait_until
from tests.integration.test_engagement import COORDINATOR, DAYS, XINGAN, at, paired_child, row_where

CHILD_FIELDS = {
    "pairing_id",
    "child_id",
    "risk_level",
    "age_band",
    "gender",
    "last_contact_at",
    "last_in_person_at",
    "next_due_at",
    "overdue",
}


def as_volunteer(volunteer: uuid.UUID | str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('volunteer', sub=str(volunteer))}"}


def visit(occurred_at: datetime, **fields: Any) -> dict[str, Any]:
    body = {"kind": "visit", "in_person": True, "occurred_at": occurred_at.isoformat(), "duration_minutes": 60}
    return body | fields


async def contacts_of(matching: httpx.AsyncClient, child: uuid.UUID | str) -> list[dict[str, Any]]:
    page = await matching.get(f"/children/{child}/contacts", params={"limit": 500}, headers=COORDINATOR)
    assert page.status_code == 200, page.text
    found: list[dict[str, Any]] = page.json()["items"]
    return found


async def on_the_bus(
    matching: httpx.AsyncClient, nc: NATS, clock: SettableClock, child: uuid.UUID | str
) -> list[dict[str, Any]]:
    """The child's events on the MATCHING stream, once everything committed so far is there: a call recorded now (its
    own id), waited for on the stream; the relay publishes in commit order, so nothing recorded before it is still to
    come. The call is not in person: it moves no visit."""
    sentinel = str(uuid.uuid4())
    body = {"kind": "call", "in_person": False, "occurred_at": clock.now().isoformat()}
    body |= {"duration_minutes": 5, "visitor": "coordinator", "contact_id": sentinel}
    posted = await matching.post(f"/children/{child}/contacts", json=body, headers=COORDINATOR)
    assert posted.status_code == 201, posted.text
    found: list[dict[str, Any]] = []

    async def arrived() -> bool:
        nonlocal found
        messages = await read_stream(nc.jetstream(), "MATCHING")
        found = [json.loads(m.data) for m in messages]
        found = [e for e in found if e["data"].get("child_id") == str(child)]
        return any(e["data"].get("contact_id") == sentinel for e in found)

    await wait_until(arrived, what="a call recorded after the others, on the stream")
    return [e for e in found if e["data"].get("contact_id") != sentinel]


def recorded(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["contact_id"] for e in events if e["type"] == "matching.contact.recorded.v1"]


def visits_moved(events: list[dict[str, Any]]) -> int:
    return sum(e["type"] == "matching.child.visit_due.v1" and e["data"]["because"] == "visited" for e in events)


async def test_a_contact_sent_again_is_answered_with_the_first_and_recorded_once_on_either_route(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock, nc: NATS
) -> None:
    volunteer, proposal = await paired_child(matching, registry_events)
    child, path = proposal["child_id"], f"/pairings/{proposal['pairing_id']}/contacts"
    by_volunteer, by_official = str(uuid.uuid4()), str(uuid.uuid4())
    first_visit = visit(clock.now() - timedelta(hours=5), contact_id=by_volunteer, note="奶奶说孩子最近睡不好")

    first = await matching.post(path, json=first_visit, headers=as_volunteer(volunteer))

    assert first.status_code == 201, first.text
    assert first.json()["contact_id"] == by_volunteer
    again = await matching.post(path, json=first_visit, headers=as_volunteer(volunteer))
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    # Whatever else the resend says (a phone's edit after the first send was lost), the first contact stands.
    changed = first_visit | {"kind": "call", "in_person": False, "note": "改了", "duration_minutes": 5}
    answer = await matching.post(path, json=changed, headers=as_volunteer(volunteer))
    assert (answer.status_code, answer.json()) == (200, first.json())

    official = visit(clock.now() - timedelta(hours=2), contact_id=by_official, visitor="child_director")
    outside = await matching.post(f"/children/{child}/contacts", json=official, headers=COORDINATOR)
    assert outside.status_code == 201, outside.text
    repeated = await matching.post(f"/children/{child}/contacts", json=official, headers=COORDINATOR)
    assert (repeated.status_code, repeated.json()) == (200, outside.json())

    assert sorted(c["contact_id"] for c in await contacts_of(matching, child)) == sorted([by_volunteer, by_official])
    events = await on_the_bus(matching, nc, clock, child)
    assert sorted(recorded(events)) == sorted([by_volunteer, by_official])  # one event each
    assert visits_moved(events) == 2  # the next visit moved once per visit, not per send
    due = at(official["occurred_at"]) + timedelta(days=DAYS["high"])
    await row_where(
        matching, child, "the next visit after the last", next_due_at=due.isoformat().replace("+00:00", "Z")
    )


async def test_an_id_taken_by_another_child_pairing_or_person_is_refused(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    volunteer, proposal = await paired_child(matching, registry_events)
    child, path = proposal["child_id"], f"/pairings/{proposal['pairing_id']}/contacts"
    other_child = await registry_events.child("medium")
    await row_where(matching, other_child, "the other child's schedule", risk_level="medium")
    other_coordinator = {"Authorization": f"Bearer {token('coordinator', [XINGAN], sub='coordinator-2')}"}
    taken_by_volunteer, taken_by_coordinator = str(uuid.uuid4()), str(uuid.uuid4())
    call = visit(clock.now() - timedelta(hours=1), kind="call", in_person=False)
    assert (
        await matching.post(path, json=call | {"contact_id": taken_by_volunteer}, headers=as_volunteer(volunteer))
    ).status_code == 201
    official = call | {"contact_id": taken_by_coordinator, "visitor": "coordinator"}
    assert (await matching.post(f"/children/{child}/contacts", json=official, headers=COORDINATOR)).status_code == 201

    refusals = [
        # the volunteer's id, sent by the coordinator: on the same pairing, and outside it
        await matching.post(path, json=call | {"contact_id": taken_by_volunteer}, headers=COORDINATOR),
        await matching.post(
            f"/children/{child}/contacts",
            json=call | {"contact_id": taken_by_volunteer, "visitor": "coordinator"},
            headers=COORDINATOR,
        ),
        # the coordinator's id: for another child, in the pairing, and by another coordinator
        await matching.post(f"/children/{other_child}/contacts", json=official, headers=COORDINATOR),
        await matching.post(path, json=call | {"contact_id": taken_by_coordinator}, headers=COORDINATOR),
        await matching.post(f"/children/{child}/contacts", json=official, headers=other_coordinator),
        # an id the event log holds for something else: the child's own schedule
        await matching.post(path, json=visit(clock.now(), contact_id=child), headers=as_volunteer(volunteer)),
    ]

    for refused in refusals:
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "contact_id_taken", refused.text
        assert taken_by_volunteer not in refused.text
        assert taken_by_coordinator not in refused.text
    assert sorted(c["contact_id"] for c in await contacts_of(matching, child)) == sorted(
        [taken_by_volunteer, taken_by_coordinator]
    )
    assert await contacts_of(matching, other_child) == []


async def test_a_phones_resend_after_the_pairing_closed_still_gets_its_contact(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    volunteer, proposal = await paired_child(matching, registry_events)
    child, path = proposal["child_id"], f"/pairings/{proposal['pairing_id']}/contacts"
    sent = visit(clock.now() - timedelta(hours=3), contact_id=str(uuid.uuid4()))
    first = await matching.post(path, json=sent, headers=as_volunteer(volunteer))
    assert first.status_code == 201, first.text
    official = visit(clock.now() - timedelta(hours=2), contact_id=str(uuid.uuid4()), visitor="cadre")
    outside = await matching.post(f"/children/{child}/contacts", json=official, headers=COORDINATOR)
    assert outside.status_code == 201, outside.text
    closed = await matching.post(
        f"/pairings/{proposal['pairing_id']}/close", json={"reason": "goals_met"}, headers=COORDINATOR
    )
    assert closed.status_code == 200, closed.text
    await registry_events.emit(ChildLeftProgramme(child_id=uuid.UUID(child), reason="moved"))

    async def left() -> bool:
        params = {"county_code": XINGAN, "status": "left", "limit": 500}
        page = await matching.get("/views/candidates/children", params=params, headers=COORDINATOR)
        return child in {row["child_id"] for row in page.json()["items"]}

    await wait_until(left, what="the child gone from the programme")

    again = await matching.post(path, json=sent, headers=as_volunteer(volunteer))
    repeated = await matching.post(f"/children/{child}/contacts", json=official, headers=COORDINATOR)

    assert (again.status_code, again.json()) == (200, first.json())
    assert (repeated.status_code, repeated.json()) == (200, outside.json())
    fresh = await matching.post(path, json=sent | {"contact_id": str(uuid.uuid4())}, headers=as_volunteer(volunteer))
    assert (fresh.status_code, fresh.json()["error"]["code"]) == (409, "pairing_closed")
    late = await matching.post(
        f"/children/{child}/contacts", json=official | {"contact_id": str(uuid.uuid4())}, headers=COORDINATOR
    )
    assert (late.status_code, late.json()["error"]["code"]) == (409, "left_programme")
    assert len(await contacts_of(matching, child)) == 2


async def test_the_same_contact_sent_twice_at_once_is_recorded_once(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock, nc: NATS
) -> None:
    volunteer, proposal = await paired_child(matching, registry_events)
    child = proposal["child_id"]
    routes = [
        (f"/pairings/{proposal['pairing_id']}/contacts", as_volunteer(volunteer), {}),
        (f"/children/{child}/contacts", COORDINATOR, {"visitor": "social_worker"}),
    ]
    sent: list[str] = []
    for round_ in range(6):
        path, headers, extra = routes[round_ % 2]
        contact_id = str(uuid.uuid4())
        body = visit(clock.now() - timedelta(hours=12 - round_), contact_id=contact_id, **extra)

        answers = await asyncio.gather(*(matching.post(path, json=body, headers=headers) for _ in range(3)))

        assert sorted(a.status_code for a in answers) == [200, 200, 201], [a.text for a in answers]
        assert all(a.json() == answers[0].json() for a in answers)
        assert answers[0].json()["contact_id"] == contact_id
        sent.append(contact_id)

    assert sorted(c["contact_id"] for c in await contacts_of(matching, child)) == sorted(sent)
    events = await on_the_bus(matching, nc, clock, child)
    assert sorted(recorded(events)) == sorted(sent)
    assert visits_moved(events) == len(sent)


async def test_a_volunteer_reads_their_childrens_visits_and_a_coordinator_of_their_county_may_too(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    volunteer, proposal = await paired_child(matching, registry_events)
    child, path = proposal["child_id"], f"/volunteers/{volunteer}/children"
    visited = clock.now() - timedelta(hours=4)
    sent = await matching.post(
        f"/pairings/{proposal['pairing_id']}/contacts", json=visit(visited), headers=as_volunteer(volunteer)
    )
    assert sent.status_code == 201, sent.text
    due = visited + timedelta(days=DAYS["high"])
    zulu = {"next_due_at": due, "last_in_person_at": visited}  # two events of two aggregates: wait for both
    await row_where(
        matching, child, "the visit in the view", **{k: v.isoformat().replace("+00:00", "Z") for k, v in zulu.items()}
    )

    mine = await matching.get(path, headers=as_volunteer(volunteer))

    assert mine.status_code == 200, mine.text
    (row,) = mine.json()
    assert set(row) == CHILD_FIELDS  # no name, village, guardian: those are the registry's visit cards
    assert (row["pairing_id"], row["child_id"], row["risk_level"], row["age_band"]) == (
        proposal["pairing_id"],
        child,
        "high",
        "9-11",
    )
    assert (at(row["last_in_person_at"]), at(row["next_due_at"]), row["overdue"]) == (visited, due, False)
    coordinator = await matching.get(path, headers=COORDINATOR)
    assert (coordinator.status_code, coordinator.json()) == (200, mine.json())
    for headers, status in (
        (as_volunteer(uuid.uuid4()), 403),  # another volunteer
        (auth("coordinator", ["450327"]), 403),  # a coordinator of another county
        (auth("donor"), 403),
    ):
        answer = await matching.get(path, headers=headers)
        assert answer.status_code == status, answer.text
        assert child not in answer.text
    unknown = await matching.get(f"/volunteers/{uuid.uuid4()}/children", headers=COORDINATOR)
    assert unknown.status_code == 404

    clock.set(due + timedelta(minutes=1))
    (late,) = (await matching.get(path, headers=as_volunteer(volunteer))).json()
    assert late["overdue"] is True

    closed = await matching.post(
        f"/pairings/{proposal['pairing_id']}/close", json={"reason": "goals_met"}, headers=COORDINATOR
    )
    assert closed.status_code == 200, closed.text

    async def gone() -> bool:
        return (await matching.get(path, headers=as_volunteer(volunteer))).json() == []

    await wait_until(gone, what="the child gone from the volunteer's list once the pairing closed")
