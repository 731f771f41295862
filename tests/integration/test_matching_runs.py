"""Matching runs and confirmation against real NATS and each database: proposals, explanations, the confirm race, a
county that changes while a run solves."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from backbone.database import Database
from contracts.volunteers import VolunteerCapacityChanged
from services.matching import runs
from services.matching.candidates import CandidateChild, CandidateVolunteer
from services.matching.solver import Solution, solve
from tests.helpers import RegistryEvents, auth, candidates, matching_run, wait_until

XINGAN = "450325"
COORDINATOR = auth("coordinator", [XINGAN])
ATTEMPTS = 5  # a run whose county keeps changing while it solves tries this many times (README)


async def test_a_run_proposes_the_best_fitting_volunteer_with_its_score_parts(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    child = await registry_events.child(
        "medium", needs=["tutoring"], languages=["zh", "zhuang"], township_key="a" * 16, village_key="b" * 16
    )
    near = await registry_events.volunteer(
        skills=["tutoring"], languages=["zh", "zhuang"], township_key="a" * 16, village_key="b" * 16
    )
    await registry_events.volunteer(skills=["material"], languages=["zh"], township_key="c" * 16)
    await candidates(matching, "volunteers", 2)
    await candidates(matching, "children", 1)

    result = await matching_run(matching)

    (proposal,) = result["proposals"]  # type: ignore[misc]
    assert proposal["child_id"] == str(child)
    assert proposal["volunteer_id"] == str(near)
    assert proposal["score_parts"] == {"same_township": 3, "same_village": 2, "needs_met": 2, "shared_language": 2}
    assert proposal["score"] == 9
    assert result["unpaired"] == []
    assert result["paired"] == {"high": 0, "medium": 1, "low": 0}
    pairing = await matching.get(f"/pairings/{proposal['pairing_id']}", headers=COORDINATOR)
    assert pairing.json()["status"] == "proposed"
    view = {"county_code": XINGAN}
    waiting = await matching.get(
        "/views/candidates/children", params=view | {"needs_pairing": True}, headers=COORDINATOR
    )
    assert waiting.json()["total"] == 0
    (held,) = (await matching.get("/views/candidates/children", params=view, headers=COORDINATOR)).json()["items"]
    assert held["open_pairing_id"] == proposal["pairing_id"]
    free = await matching.get(
        "/views/candidates/volunteers", params=view | {"with_free_places": True}, headers=COORDINATOR
    )
    assert str(near) not in [v["volunteer_id"] for v in free.json()["items"]]
    assert free.json()["total"] == 1
    (taken,) = [
        v
        for v in (await matching.get("/views/candidates/volunteers", params=view, headers=COORDINATOR)).json()["items"]
        if v["volunteer_id"] == str(near)
    ]
    assert (taken["open_pairings"], taken["free"]) == (1, 0)


async def test_of_two_confirmations_against_the_last_place_one_wins_and_the_other_gets_409(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    volunteer = await registry_events.volunteer(capacity=2)
    for _ in range(2):
        await registry_events.child("low")
    await candidates(matching, "children", 2)
    await candidates(matching, "volunteers", 1)
    proposals = (await matching_run(matching))["proposals"]
    assert len(proposals) == 2  # type: ignore[arg-type]
    # The volunteer now takes one child only: both proposals stand, one place is left.
    await registry_events.emit(VolunteerCapacityChanged(volunteer_id=volunteer, capacity=1))

    async def capacity_is_one() -> bool:
        page = await matching.get("/views/candidates/volunteers", params={"county_code": XINGAN}, headers=COORDINATOR)
        return bool(page.json()["items"][0]["capacity"] == 1)

    await wait_until(capacity_is_one, what="the new capacity")

    answers = await asyncio.gather(
        *(matching.post(f"/pairings/{p['pairing_id']}/confirm", headers=COORDINATOR) for p in proposals)  # type: ignore[attr-defined]
    )

    assert sorted(a.status_code for a in answers) == [200, 409]
    (lost,) = [a for a in answers if a.status_code == 409]
    assert lost.json()["error"]["code"] == "volunteer_at_capacity"
    confirmed = await matching.get(
        "/views/pairings", params={"county_code": XINGAN, "status": "confirmed"}, headers=COORDINATOR
    )
    assert confirmed.json()["total"] == 1


async def test_the_same_proposal_confirmed_twice_at_once_is_confirmed_once(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    await registry_events.volunteer()
    await registry_events.child("low")
    await candidates(matching, "children", 1)
    await candidates(matching, "volunteers", 1)
    (proposal,) = (await matching_run(matching))["proposals"]  # type: ignore[misc]

    answers = await asyncio.gather(
        *(matching.post(f"/pairings/{proposal['pairing_id']}/confirm", headers=COORDINATOR) for _ in range(2))
    )

    assert sorted(a.status_code for a in answers) == [200, 409]
    pairing = (await matching.get(f"/pairings/{proposal['pairing_id']}", headers=COORDINATOR)).json()
    assert pairing["status"] == "confirmed"
    assert pairing["version"] == 2


async def test_an_unknown_pairing_is_404_and_bad_bodies_are_422(matching: httpx.AsyncClient) -> None:
    missing = await matching.post(f"/pairings/{uuid.uuid4()}/confirm", headers=COORDINATOR)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    bad = await matching.post("/matching-runs", json={"county_code": "12"}, headers=COORDINATOR)
    assert bad.status_code == 422
    reason = await matching.post(
        f"/pairings/{uuid.uuid4()}/decline", json={"declined_by": "mayor", "reason": "other"}, headers=COORDINATOR
    )
    assert reason.status_code == 422
    other_county = await matching.post("/matching-runs", json={"county_code": "450102"}, headers=COORDINATOR)
    assert other_county.status_code == 403


@pytest.mark.timer_seconds(3600)  # no reconciling timer: only the confirmation itself stands in the way
async def test_confirming_checks_both_sides_as_the_candidate_view_has_them_now(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, database_url: str
) -> None:
    volunteer = await registry_events.volunteer()
    child = await registry_events.child("low")
    await candidates(matching, "children", 1)
    await candidates(matching, "volunteers", 1)
    (proposal,) = (await matching_run(matching))["proposals"]  # type: ignore[misc]
    confirm = f"/pairings/{proposal['pairing_id']}/confirm"
    db = Database(database_url)
    try:  # the view as it might stand for a moment, before reconciling withdraws the proposal
        for volunteer_values, child_values, refused in (
            ({"eligible": False}, {}, "volunteer_not_eligible"),
            ({"eligible": True}, {"eligible": False}, "child_not_eligible"),
            ({}, {"eligible": True, "risk_level": "high"}, "volunteer_not_qualified"),  # a caring parent
        ):
            async with db.begin() as conn:
                if volunteer_values:
                    await conn.execute(
                        update(CandidateVolunteer)
                        .where(CandidateVolunteer.volunteer_id == volunteer)
                        .values(**volunteer_values)
                    )
                if child_values:
                    await conn.execute(
                        update(CandidateChild).where(CandidateChild.child_id == child).values(**child_values)
                    )
            answer = await matching.post(confirm, headers=COORDINATOR)
            assert answer.status_code == 409
            assert answer.json()["error"]["code"] == refused
    finally:
        await db.dispose()
    pairing = (await matching.get(f"/pairings/{proposal['pairing_id']}", headers=COORDINATOR)).json()
    assert pairing["status"] == "proposed"


async def test_the_timer_brings_open_pairings_in_line_with_the_candidate_view(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, database_url: str
) -> None:
    """Whatever reconciling in the view's own transaction missed (e.g. while it was rebuilt), the timer mends."""
    await registry_events.volunteer()
    child = await registry_events.child("low")
    await candidates(matching, "children", 1)
    await candidates(matching, "volunteers", 1)
    (proposal,) = (await matching_run(matching))["proposals"]  # type: ignore[misc]
    confirmed = await matching.post(f"/pairings/{proposal['pairing_id']}/confirm", headers=COORDINATOR)
    assert confirmed.json()["status"] == "confirmed"
    db = Database(database_url)
    try:
        async with db.begin() as conn:  # the child's risk rose; the volunteer is a caring parent
            await conn.execute(update(CandidateChild).where(CandidateChild.child_id == child).values(risk_level="high"))
    finally:
        await db.dispose()

    async def suspended() -> bool:
        pairing = (await matching.get(f"/pairings/{proposal['pairing_id']}", headers=COORDINATOR)).json()
        return bool(pairing["status"] == "suspended" and pairing["reason"] == "volunteer_not_qualified")

    await wait_until(suspended, within=5, what="the pairing suspended by the timer")


class SolverGate:
    """Holds each solve of a matching run until the test lets it go: what a large county's seconds of solving are,
    made as long as the test needs to change the county meanwhile. The solver itself is the real one."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.started = loop, asyncio.Queue[None]()
        self.go = threading.Semaphore(0)

    def solve(self, *args: Any) -> Solution:
        self.loop.call_soon_threadsafe(self.started.put_nowait, None)
        self.go.acquire()
        return solve(*args)

    async def next_solve(self, run: asyncio.Task[httpx.Response]) -> bool:
        """Whether the run starts another solve (True) or answers first (False)."""
        waiting = asyncio.ensure_future(self.started.get())
        done, _ = await asyncio.wait({waiting, run}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        assert done, "neither another solve nor an answer within 30 s"
        waiting.cancel()
        return waiting in done


@pytest.fixture
async def gate(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SolverGate]:
    held = SolverGate(asyncio.get_running_loop())
    monkeypatch.setattr(runs, "solve", held.solve)
    yield held
    for _ in range(ATTEMPTS + 1):  # whatever still waits finishes, so the service can stop
        held.go.release()


async def changed_while_solving(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, children: int
) -> uuid.UUID:
    """A child registered while a run solves, in the candidate view before the run goes on."""
    child = await registry_events.child("low")
    await candidates(matching, "children", children)
    return child


async def test_a_run_that_finds_the_county_changed_while_it_solved_decides_again_with_the_change(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, gate: SolverGate
) -> None:
    first = await registry_events.child("low")
    await registry_events.volunteer(capacity=2)
    await candidates(matching, "children", 1)
    await candidates(matching, "volunteers", 1)
    run = asyncio.create_task(matching.post("/matching-runs", json={"county_code": XINGAN}, headers=COORDINATOR))

    assert await gate.next_solve(run)
    second = await changed_while_solving(matching, registry_events, 2)
    gate.go.release()
    assert await gate.next_solve(run)  # it noticed, and solves the county as it is now
    gate.go.release()

    answer = await run
    assert answer.status_code == 201, answer.text
    assert sorted(p["child_id"] for p in answer.json()["proposals"]) == sorted([str(first), str(second)])
    proposed = await matching.get(
        "/views/pairings", params={"county_code": XINGAN, "status": "proposed"}, headers=COORDINATOR
    )
    assert proposed.json()["total"] == 2


async def test_a_county_that_keeps_changing_gets_409_county_busy_after_its_attempts_and_nothing_written(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, gate: SolverGate
) -> None:
    await registry_events.child("low")
    await registry_events.volunteer(capacity=1 + ATTEMPTS)  # a place for each child added while it solves
    await candidates(matching, "children", 1)
    await candidates(matching, "volunteers", 1)
    run = asyncio.create_task(matching.post("/matching-runs", json={"county_code": XINGAN}, headers=COORDINATOR))

    for attempt in range(1, ATTEMPTS + 1):
        assert await gate.next_solve(run), f"attempt {attempt} never solved"
        await changed_while_solving(matching, registry_events, 1 + attempt)
        gate.go.release()
    assert not await gate.next_solve(run), f"a run tried more than {ATTEMPTS} times"

    answer = await run
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["code"] == "county_busy"
    assert set(error) == {"code", "message", "details"}
    pairings = await matching.get("/views/pairings", params={"county_code": XINGAN}, headers=COORDINATOR)
    assert pairings.json()["total"] == 0  # written with the run's events, in the same transaction: none
    gate.go.release()  # run it again, as the answer says, with the county still: it proposes
    assert len((await matching_run(matching))["proposals"]) == 1 + ATTEMPTS
