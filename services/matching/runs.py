"""A matching run over a county: what the county looks like now, the optimal proposals, written in one transaction."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone.database import retryable
from backbone.errors import ApiError
from backbone.runtime import Runtime
from backbone.store import Append
from contracts import Event
from contracts.matching import MatchingRunCompleted, PairingProposed, UnpairedReason
from services.matching import pairings
from services.matching.candidates import CandidateChild, CandidateVolunteer
from services.matching.pairings import OPEN, PairingRecord
from services.matching.solver import ChildCase, Solution, TooLarge, Unpaired, VolunteerCase, solve

ATTEMPTS = 5  # a run that finds the county changed while it solved starts again, this many times at most
# Children × free places a run may weigh at once. The solver keeps about a byte per child and volunteer (int8 fits)
# and proves its answer by blocks of rows, so the limit bounds a run's time more than its memory.
MAX_CELLS = 60_000_000
_SOLVING = threading.Lock()
# A pairing closed because one side wanted out earns no continuity on a rematch (nor is it barred).
NO_CONTINUITY = ("volunteer_withdrew", "child_or_guardian_withdrew")


@dataclass(frozen=True)
class County:
    """What a run decides on: the children who may be paired now, the eligible volunteers and their free places,
    and the children the registry does not let be paired (reported, not matched)."""

    children: tuple[ChildCase, ...]
    volunteers: tuple[VolunteerCase, ...]
    not_eligible: tuple[uuid.UUID, ...]
    already_paired: tuple[uuid.UUID, ...] = ()  # named in a rematch, but proposed or paired already


@dataclass(frozen=True)
class Run:
    run_id: uuid.UUID
    county_code: str
    solution: Solution
    pairing_ids: dict[uuid.UUID, uuid.UUID]  # child id → its new pairing's id
    expires_at: datetime  # when the run's proposals lapse unless confirmed


async def run(runtime: Runtime, county_code: str, child_ids: Collection[uuid.UUID] | None = None) -> Run:
    """Propose volunteers for the county's unpaired children (or only for `child_ids`, a rematch)."""
    await pairings.lapse_due(runtime, county_code)
    for _ in range(ATTEMPTS):
        async with runtime.db.read() as conn:
            seen = await county(conn, county_code, child_ids)
        solution = await _solve(seen)
        try:
            async with runtime.transaction() as conn:
                await pairings.hold(
                    runtime,
                    conn,
                    children=[c.child_id for c in seen.children],
                    volunteers=[v.volunteer_id for v in seen.volunteers],
                )
                if await county(conn, county_code, child_ids) != seen:
                    continue  # someone proposed, declined or changed a child or volunteer meanwhile: decide again
                return await _record(runtime, conn, county_code, seen, solution)
        except IntegrityError:
            continue  # a child was proposed by a run that committed between our check and our write
        except DBAPIError as error:
            if not retryable(error):
                raise
    raise ApiError(409, "county_busy", f"county {county_code} kept changing during the run; run it again")


async def _solve(seen: County) -> Solution:
    """The assignment is CPU work of seconds and hundreds of MB for a large county: off the event loop, one at a
    time in a process, and refused beyond a size that would not fit."""
    cells = len(seen.children) * sum(min(v.free, len(seen.children)) for v in seen.volunteers)
    if cells > MAX_CELLS:
        raise TooLarge(f"{len(seen.children)} children by that many places is more than one run can hold")
    return await asyncio.to_thread(_solve_alone, seen)


def _solve_alone(seen: County) -> Solution:
    with _SOLVING:
        return solve(seen.children, seen.volunteers)


async def county(conn: AsyncConnection, county_code: str, child_ids: Collection[uuid.UUID] | None) -> County:
    children_query = select(CandidateChild).where(
        CandidateChild.county_code == county_code, CandidateChild.active.is_(True)
    )
    if child_ids is not None:
        children_query = children_query.where(CandidateChild.child_id.in_(list(child_ids)))
    children = (await conn.execute(children_query)).all()
    if child_ids is not None and (unknown := set(child_ids) - {c.child_id for c in children}):
        raise ApiError(
            422,
            "unknown_children",
            f"{len(unknown)} of the children named are not in the programme in county {county_code}",
            {"child_ids": sorted(str(child_id) for child_id in unknown)},
        )
    history = (
        await conn.execute(
            select(PairingRecord.child_id, PairingRecord.volunteer_id, PairingRecord.status, PairingRecord.reason)
            .where(PairingRecord.county_code == county_code)
            .where(PairingRecord.status.in_([*OPEN, "declined", "closed"]))
        )
    ).all()
    paired = {row.child_id for row in history if row.status in OPEN}
    barred: dict[uuid.UUID, set[uuid.UUID]] = {}
    earlier: dict[uuid.UUID, set[uuid.UUID]] = {}
    for row in history:
        if row.status == "declined" or row.reason == "safeguarding_concern":
            barred.setdefault(row.child_id, set()).add(row.volunteer_id)
        elif row.status == "closed" and row.reason not in NO_CONTINUITY:
            earlier.setdefault(row.child_id, set()).add(row.volunteer_id)
    open_per_volunteer = (
        select(PairingRecord.volunteer_id, func.count())
        .where(PairingRecord.county_code == county_code, PairingRecord.status.in_(OPEN))
        .group_by(PairingRecord.volunteer_id)
    )
    load = {volunteer_id: int(count) for volunteer_id, count in await conn.execute(open_per_volunteer)}
    volunteers = (
        await conn.execute(
            select(CandidateVolunteer).where(
                CandidateVolunteer.county_code == county_code, CandidateVolunteer.eligible.is_(True)
            )
        )
    ).all()
    return County(
        children=tuple(
            sorted(
                (
                    ChildCase(
                        child_id=c.child_id,
                        risk_level=c.risk_level,
                        needs=frozenset(c.needs),
                        languages=frozenset(c.languages),
                        flags=frozenset(c.flags),
                        township_key=c.township_key,
                        village_key=c.village_key,
                        barred=frozenset(barred.get(c.child_id, ())),
                        earlier=frozenset(earlier.get(c.child_id, ())),
                    )
                    for c in children
                    if c.eligible and c.child_id not in paired
                ),
                key=lambda c: c.child_id,
            )
        ),
        volunteers=tuple(
            sorted(
                (
                    VolunteerCase(
                        volunteer_id=v.volunteer_id,
                        kind=v.kind,
                        free=max(0, v.capacity - load.get(v.volunteer_id, 0)),
                        skills=frozenset(v.skills),
                        languages=frozenset(v.languages),
                        township_key=v.township_key,
                        village_key=v.village_key,
                    )
                    for v in volunteers
                ),
                key=lambda v: v.volunteer_id,
            )
        ),
        not_eligible=tuple(sorted(c.child_id for c in children if not c.eligible and c.child_id not in paired)),
        already_paired=tuple(sorted(paired & set(child_ids))) if child_ids is not None else (),
    )


async def _record(runtime: Runtime, conn: AsyncConnection, county_code: str, seen: County, solution: Solution) -> Run:
    run_id, now = uuid.uuid4(), runtime.clock.now()
    lapse = timedelta(days=runtime.settings.proposal_lapse_days)
    solution = Solution(
        solution.proposals,
        [
            *solution.unpaired,
            *(Unpaired(child_id, "child_not_eligible") for child_id in seen.not_eligible),
            *(Unpaired(child_id, "has_open_pairing") for child_id in seen.already_paired),
        ],
        solution.paired,
    )
    pairing_ids = {p.child_id: uuid.uuid4() for p in solution.proposals}
    appends: list[Append] = []
    records = []
    for proposal in solution.proposals:
        proposed = PairingProposed(
            pairing_id=pairing_ids[proposal.child_id],
            run_id=run_id,
            child_id=proposal.child_id,
            volunteer_id=proposal.volunteer_id,
            county_code=county_code,
            risk_level=proposal.risk_level,
            score=proposal.score,
            score_parts=proposal.score_parts,
            expires_at=now + lapse,
        )
        appends.append(Append(str(proposed.pairing_id), 0, [proposed]))
        records.append(
            {
                **proposed.model_dump(exclude={"expires_at"}),
                "status": "proposed",
                "proposed_at": now,
                "expires_at": now + lapse,
                "changed_at": now,
                "version": 1,
            }
        )
    unpaired: Counter[UnpairedReason] = Counter(u.reason for u in solution.unpaired)
    completed: Event = MatchingRunCompleted(
        run_id=run_id, county_code=county_code, proposed=solution.paired, unpaired=dict(unpaired), fit=solution.fit
    )
    await runtime.append(conn, *appends, Append(str(run_id), 0, [completed]))
    if records:
        await conn.execute(insert(PairingRecord), records)
    return Run(run_id, county_code, solution, pairing_ids, now + lapse)
