"""The visit schedule and contacts against real NATS and each database, with a settable clock: due dates per risk
level, re-planning, overdue and escalation on time, contacts that move the next visit, notes kept off the bus."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NATS

from backbone.clock import PROGRAMME_TIMEZONE as SHANGHAI
from backbone.clock import SettableClock
from contracts.registry import ChildPersonalDataErased, ChildRiskChanged
from tests.helpers import RegistryEvents, auth, read_stream, token, wait_until

XINGAN = "450325"
COORDINATOR = auth("coordinator", [XINGAN])
MARKER_COUNTY = "450327"  # Guanyang: children registered there only to see the overdue timer tick
DAYS = {"high": 7, "medium": 14, "low": 30}


async def engagement(matching: httpx.AsyncClient, child_id: uuid.UUID) -> dict[str, Any] | None:
    page = await matching.get("/views/engagement", params={"county_code": XINGAN, "limit": 500}, headers=COORDINATOR)
    found = [row for row in page.json()["items"] if row["child_id"] == str(child_id)]
    return found[0] if found else None


async def row_where(matching: httpx.AsyncClient, child_id: uuid.UUID, what: str, **wanted: Any) -> dict[str, Any]:
    """Wait until the child's engagement row has these values, and return it."""
    seen: dict[str, Any] = {}

    async def there() -> bool:
        nonlocal seen
        seen = await engagement(matching, child_id) or {}
        return bool(seen) and all(seen.get(key) == value for key, value in wanted.items())

    await wait_until(there, within=10, what=what)
    return seen


async def overdue_events(nc: NATS, child_id: uuid.UUID) -> list[dict[str, Any]]:
    js = nc.jetstream()
    events = [json.loads(m.data)["data"] for m in await read_stream(js, "MATCHING", "matching.child.overdue")]
    return [event for event in events if event["child_id"] == str(child_id)]


async def overdue_timer_ticked(matching: httpx.AsyncClient, registry_events: RegistryEvents) -> None:
    """Wait until the overdue timer has twice looked at the clock as it stands now (more than a day ahead), and the
    engagement view has taken in what it raised: each time, a high-risk child registered now in a county whose visits
    are due a day after registration is raised overdue and escalated. Whatever one tick raised is on the bus and in
    the view before anything a later tick raises, so after the second nothing the first could raise is still to come.
    """
    headers = auth("coordinator", [MARKER_COUNTY])
    daily = {"high_days": 1, "medium_days": 1, "low_days": 1}
    policy = await matching.put(f"/visit-policies/{MARKER_COUNTY}", json=daily, headers=headers)
    assert policy.status_code == 200, policy.text

    async def escalated(marker: uuid.UUID) -> bool:
        params = {"county_code": MARKER_COUNTY, "limit": 500}
        page = await matching.get("/views/engagement", params=params, headers=headers)
        return any(row["child_id"] == str(marker) and row["escalated"] for row in page.json()["items"])

    for _ in range(2):
        marker = await registry_events.child("high", county=MARKER_COUNTY)
        await wait_until(partial(escalated, marker), what="a tick of the overdue timer")


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.parametrize("risk", ["high", "medium", "low"])
async def test_a_child_is_due_overdue_and_escalated_on_time_for_its_risk_level(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock, nc: NATS, risk: str
) -> None:
    child = await registry_events.child(risk)
    row = await row_where(matching, child, "the child's schedule", overdue=False)
    due = at(row["next_due_at"])
    assert row["risk_level"] == risk
    registered = due - timedelta(days=DAYS[risk])
    assert abs((registered - clock.now()).total_seconds()) < 60  # due one interval after registration

    clock.set(due - timedelta(minutes=1))
    await overdue_timer_ticked(matching, registry_events)
    assert await overdue_events(nc, child) == []
    assert (await row_where(matching, child, "the schedule", risk_level=risk))["overdue"] is False

    clock.set(due + timedelta(minutes=1))
    late = await row_where(matching, child, "the child overdue", overdue=True, escalated=risk == "high")
    assert late["next_due_at"] == row["next_due_at"]

    async def raised() -> bool:
        return len(await overdue_events(nc, child)) == 1

    await wait_until(raised, what="the overdue event")
    clock.advance(timedelta(days=1))  # the timer keeps ticking: the same due date is raised once only
    await overdue_timer_ticked(matching, registry_events)
    (event,) = await overdue_events(nc, child)
    assert event["child_id"] == str(child)
    assert event["escalated_to"] == ("child_director" if risk == "high" else None)
    # The view has taken in every overdue event the ticks raised: only a high-risk child is escalated.
    assert (await row_where(matching, child, "still overdue", overdue=True))["escalated"] is (risk == "high")


async def test_a_risk_change_replans_the_next_visit_at_once(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    child = await registry_events.child("low")
    before = at((await row_where(matching, child, "the schedule", risk_level="low"))["next_due_at"])

    await registry_events.emit(
        ChildRiskChanged(child_id=child, county_code=XINGAN, previous_risk_level="low", risk_level="high")
    )

    after = await row_where(matching, child, "the schedule re-planned", risk_level="high")
    assert before - at(after["next_due_at"]) == timedelta(days=DAYS["low"] - DAYS["high"])


async def paired_child(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> tuple[uuid.UUID, dict[str, Any]]:
    volunteer = await registry_events.volunteer("social_worker")
    child = await registry_events.child("high")
    await row_where(matching, child, "the schedule", risk_level="high")

    async def candidates_in() -> bool:
        page = await matching.get(
            "/views/candidates/volunteers", params={"county_code": XINGAN, "eligible": True}, headers=COORDINATOR
        )
        return bool(page.json()["total"] == 1)

    await wait_until(candidates_in, what="the volunteer as a candidate")
    answer = await matching.post("/matching-runs", json={"county_code": XINGAN}, headers=COORDINATOR)
    (proposal,) = answer.json()["proposals"]
    confirmed = await matching.post(f"/pairings/{proposal['pairing_id']}/confirm", headers=COORDINATOR)
    assert confirmed.status_code == 200
    await row_where(matching, child, "the pairing in the view", volunteer_id=str(volunteer))
    return volunteer, proposal


async def test_the_paired_volunteers_visit_moves_the_next_due_date_and_its_note_stays_off_the_bus(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock, nc: NATS
) -> None:
    volunteer, proposal = await paired_child(matching, registry_events)
    child = proposal["child_id"]
    as_volunteer = {"Authorization": f"Bearer {token('volunteer', sub=str(volunteer))}"}
    visited = clock.now() - timedelta(hours=2)
    note = "奶奶说孩子最近睡不好"
    body = {"kind": "visit", "in_person": True, "occurred_at": visited.isoformat(), "duration_minutes": 90}

    answer = await matching.post(
        f"/pairings/{proposal['pairing_id']}/contacts", json=body | {"note": note}, headers=as_volunteer
    )

    assert answer.status_code == 201, answer.text
    assert answer.json()["note"] == note
    await wait_until(
        lambda: _has(matching, uuid.UUID(child), "last_in_person_at"), what="the visit counted in the view"
    )
    row = await engagement(matching, uuid.UUID(child)) or {}
    assert at(row["last_in_person_at"]) == visited
    assert at(row["next_due_at"]) == visited + timedelta(days=DAYS["high"])
    call = {"kind": "call", "in_person": False, "occurred_at": clock.now().isoformat(), "duration_minutes": 15}
    await matching.post(f"/pairings/{proposal['pairing_id']}/contacts", json=call, headers=as_volunteer)
    await wait_until(lambda: _moved(matching, uuid.UUID(child), visited), what="the call as the last contact")
    row = await engagement(matching, uuid.UUID(child)) or {}
    assert at(row["last_in_person_at"]) == visited  # a call is not a visit
    assert at(row["next_due_at"]) == visited + timedelta(days=DAYS["high"])
    messages = await read_stream(nc.jetstream(), "MATCHING", "matching.contact.recorded")
    assert len(messages) == 2
    assert all(note.encode() not in m.data and b'"note"' not in m.data for m in messages)


async def test_a_coordinator_reads_the_notes_until_the_registry_erases_the_childs_personal_data(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    _, proposal = await paired_child(matching, registry_events)
    child = proposal["child_id"]
    note = "奶奶说孩子最近睡不好"
    body = {"kind": "call", "in_person": False, "occurred_at": clock.now().isoformat(), "duration_minutes": 15}
    posted = await matching.post(
        f"/pairings/{proposal['pairing_id']}/contacts", json=body | {"note": note}, headers=COORDINATOR
    )
    assert posted.status_code == 201, posted.text

    async def notes() -> list[str | None]:
        page = await matching.get(f"/children/{child}/contacts", headers=COORDINATOR)
        assert page.status_code == 200, page.text
        return [item["note"] for item in page.json()["items"]]

    assert await notes() == [note]
    elsewhere = auth("coordinator", ["450721"])
    assert (await matching.get(f"/children/{child}/contacts", headers=elsewhere)).status_code == 403
    await registry_events.emit(ChildPersonalDataErased(child_id=uuid.UUID(child)))

    async def cleared() -> bool:
        return await notes() == [None]

    await wait_until(cleared, what="the note erased with the child's personal data")
    later = await matching.post(
        f"/children/{child}/contacts", json=body | {"visitor": "child_director", "note": note}, headers=COORDINATOR
    )
    assert later.status_code == 201, later.text  # an official still visits; no note about the child is kept
    assert later.json()["note"] is None
    assert await notes() == [None, None]


async def test_contacts_need_a_confirmed_pairing_and_the_volunteer_of_it(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    _, proposal = await paired_child(matching, registry_events)
    body = {"kind": "visit", "in_person": True, "occurred_at": clock.now().isoformat(), "duration_minutes": 30}
    path = f"/pairings/{proposal['pairing_id']}/contacts"
    stranger = {"Authorization": f"Bearer {token('volunteer', sub=str(uuid.uuid4()))}"}
    assert (await matching.post(path, json=body, headers=stranger)).status_code == 403
    future = body | {"occurred_at": (clock.now() + timedelta(days=1)).isoformat()}
    assert (await matching.post(path, json=future, headers=COORDINATOR)).json()["error"]["code"] == "in_future"
    naive = body | {"occurred_at": "2026-01-05T10:00:00"}
    assert (await matching.post(path, json=naive, headers=COORDINATOR)).status_code == 422
    await matching.post(f"/pairings/{proposal['pairing_id']}/close", json={"reason": "goals_met"}, headers=COORDINATOR)
    closed = await matching.post(path, json=body, headers=COORDINATOR)
    assert closed.status_code == 409
    assert closed.json()["error"]["code"] == "pairing_closed"


async def test_a_cadres_visit_outside_a_pairing_counts_as_a_visit(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    child = await registry_events.child("medium")
    await row_where(matching, child, "the schedule", risk_level="medium")
    visited = clock.now() - timedelta(days=1)
    body = {
        "kind": "visit",
        "in_person": True,
        "occurred_at": visited.isoformat(),
        "duration_minutes": 40,
        "visitor": "cadre",
    }

    answer = await matching.post(f"/children/{child}/contacts", json=body, headers=COORDINATOR)

    assert answer.status_code == 201, answer.text
    assert answer.json()["visitor"] == "cadre"
    await wait_until(lambda: _has(matching, child, "last_in_person_at"), what="the cadre's visit in the view")
    row = await engagement(matching, child) or {}
    assert at(row["next_due_at"]) == visited + timedelta(days=DAYS["medium"])
    unknown = await matching.post(f"/children/{uuid.uuid4()}/contacts", json=body, headers=COORDINATOR)
    assert unknown.status_code == 404


async def _has(matching: httpx.AsyncClient, child_id: uuid.UUID, field: str) -> bool:
    row = await engagement(matching, child_id)
    return bool(row and row.get(field))


async def _moved(matching: httpx.AsyncClient, child_id: uuid.UUID, since: datetime) -> bool:
    row = await engagement(matching, child_id)
    return bool(row and row["last_contact_at"] and at(row["last_contact_at"]) > since)


async def test_a_county_sets_its_own_intervals_and_every_next_visit_is_replanned(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    high = await registry_events.child("high")
    low = await registry_events.child("low")
    before = {c: at((await row_where(matching, c, "the schedule", overdue=False))["next_due_at"]) for c in (high, low)}
    policy = {"high_days": 3, "medium_days": 10, "low_days": 20}

    answer = await matching.put(f"/visit-policies/{XINGAN}", json=policy, headers=COORDINATOR)

    assert answer.status_code == 200, answer.text
    assert answer.json()["replanned"] == 2
    assert (await matching.get(f"/visit-policies/{XINGAN}", headers=COORDINATOR)).json()["high_days"] == 3
    for child, days_earlier in ((high, DAYS["high"] - 3), (low, DAYS["low"] - 20)):
        due = before[child] - timedelta(days=days_earlier)
        await row_where(matching, child, "the visit re-planned", next_due_at=due.isoformat().replace("+00:00", "Z"))
    backwards = {"high_days": 30, "medium_days": 10, "low_days": 20}
    refused = await matching.put(f"/visit-policies/{XINGAN}", json=backwards, headers=COORDINATOR)
    assert refused.status_code == 422
    elsewhere = await matching.put("/visit-policies/450102", json=policy, headers=COORDINATOR)
    assert elsewhere.status_code == 403


async def test_a_volunteer_sees_their_due_visits_as_a_calendar_and_their_hours_in_the_view(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    volunteer, proposal = await paired_child(matching, registry_events)
    as_volunteer = {"Authorization": f"Bearer {token('volunteer', sub=str(volunteer))}"}
    visited = clock.now() - timedelta(hours=3)
    body = {"kind": "visit", "in_person": True, "occurred_at": visited.isoformat(), "duration_minutes": 90}
    await matching.post(f"/pairings/{proposal['pairing_id']}/contacts", json=body, headers=as_volunteer)
    due = (visited + timedelta(days=DAYS["high"])).isoformat().replace("+00:00", "Z")
    await row_where(matching, proposal["child_id"], "the visit in the views", next_due_at=due)

    feed = await matching.get(f"/volunteers/{volunteer}/calendar.ics", headers=as_volunteer)

    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("text/calendar")
    lines = feed.text.split("\r\n")
    assert lines[0] == "BEGIN:VCALENDAR"
    assert lines.count("BEGIN:VEVENT") == 1
    due_day = (visited + timedelta(days=DAYS["high"])).astimezone(SHANGHAI).strftime("%Y%m%d")
    assert f"DTSTART;VALUE=DATE:{due_day}" in lines
    assert proposal["child_id"] not in feed.text
    other = {"Authorization": f"Bearer {token('volunteer', sub=str(uuid.uuid4()))}"}
    assert (await matching.get(f"/volunteers/{volunteer}/calendar.ics", headers=other)).status_code == 403
    link = await matching.post(f"/volunteers/{volunteer}/calendar-feeds", headers=as_volunteer)
    subscribed = await matching.get(link.json()["url"])  # as a calendar app fetches it: no headers, a feed link
    assert subscribed.text == feed.text
    forged = await matching.get(f"/volunteers/{volunteer}/calendar.ics", params={"feed": "not-a-feed"})
    assert forged.status_code == 401
    view = await matching.get("/views/volunteers", params={"county_code": XINGAN}, headers=COORDINATOR)
    (row,) = view.json()["items"]
    assert (row["children"], row["contacts"], row["visits"], row["hours"]) == (1, 1, 1, 1.5)
    for view, key in (("volunteers", "volunteer_id"), ("engagement", "child_id")):  # each view as CSV, the same rows
        shown = (await matching.get(f"/views/{view}", params={"county_code": XINGAN}, headers=COORDINATOR)).json()
        export = await matching.get(f"/views/{view}/export", params={"county_code": XINGAN}, headers=COORDINATOR)
        assert export.headers["content-type"].startswith("text/csv")
        exported = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"))))
        assert [line[key] for line in exported] == [item[key] for item in shown["items"]]
        if view == "volunteers":
            assert (exported[0]["contacts"], exported[0]["hours"]) == ("1", "1.5")
