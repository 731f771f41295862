"""What matching does when the registry says a side of a pairing may no longer be paired, or may be again.

A volunteer who becomes ineligible (a check or training expired, a record query failed) or a child who does (consent
withdrawn) has their confirmed pairings suspended and their proposals withdrawn; once both sides may be paired again
(the other side as the candidate view knows it), the suspended pairings resume. A child who leaves the programme
has their pairings closed. The reason is on the pairing, for the coordinator, and on the bus, for notifications.

Not a view: it keeps no rows of its own. It acts on a pairing only from the status the change may start from,
so an event delivered twice changes nothing; it is never rebuilt (a replay from the start would act on old news).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar

from sqlalchemy import Table, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone import context
from backbone.projection import Delivered, Projection
from backbone.runtime import Runtime
from contracts.matching import PairingClosed, PairingResumed, PairingSuspended, PairingWithdrawn
from contracts.registry import ChildLeftProgramme, ChildPairingEligibilityChanged
from contracts.volunteers import VolunteerEligibilityChanged
from services.matching.candidates import CandidateChild, CandidateVolunteer
from services.matching.pairings import OPEN, PairingRecord, Transition, ids, transition

Reaction = Callable[[AsyncConnection, Row[Any]], Awaitable[Transition | None]]


class PairingReactions(Projection):
    name: ClassVar[str] = "matching-reactions"
    stream: ClassVar[str] = "REGISTRY"
    subjects: ClassVar[list[str]] = ["registry.child.>", "registry.volunteer.>"]
    views: ClassVar[list[Table]] = []

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def apply(self, conn: AsyncConnection, events: Sequence[Delivered]) -> None:
        for delivered in events:
            match delivered.event:
                case VolunteerEligibilityChanged(volunteer_id=volunteer_id, eligible=eligible):
                    side = PairingRecord.volunteer_id == volunteer_id
                    react = _resume(_child_eligible) if eligible else _hold("volunteer_ineligible")
                case ChildPairingEligibilityChanged(child_id=child_id, eligible=eligible):
                    side = PairingRecord.child_id == child_id
                    react = _resume(_volunteer_eligible) if eligible else _hold("child_ineligible")
                case ChildLeftProgramme(child_id=child_id):
                    side, react = PairingRecord.child_id == child_id, _end
                case _:
                    continue
            rows = (await conn.execute(select(PairingRecord).where(side, PairingRecord.status.in_(OPEN)))).all()
            for row in rows:
                if (change := await react(conn, row)) is not None:
                    envelope = delivered.envelope
                    traceparent = envelope.traceparent or context.new_traceparent()
                    context.bind(context.Causes(envelope.correlationid, envelope.id, traceparent))
                    await transition(self.runtime, conn, row, change)


def _hold(reason: Any) -> Reaction:
    async def react(conn: AsyncConnection, row: Row[Any]) -> Transition | None:
        if row.status == "proposed":
            return PairingWithdrawn(**ids(row), reason=reason)
        if row.status == "confirmed":
            return PairingSuspended(**ids(row), reason=reason)
        return None  # suspended already (for either side): it resumes when both may be paired again

    return react


def _resume(other_side_eligible: Callable[[AsyncConnection, Row[Any]], Awaitable[bool]]) -> Reaction:
    """A suspended pairing resumes when this side may be paired again and the other side may be too."""

    async def react(conn: AsyncConnection, row: Row[Any]) -> Transition | None:
        if row.status == "suspended" and await other_side_eligible(conn, row):
            return PairingResumed(**ids(row))
        return None

    return react


async def _child_eligible(conn: AsyncConnection, row: Row[Any]) -> bool:
    found = await conn.scalar(select(CandidateChild.eligible).where(CandidateChild.child_id == row.child_id))
    return bool(found)


async def _volunteer_eligible(conn: AsyncConnection, row: Row[Any]) -> bool:
    found = await conn.scalar(
        select(CandidateVolunteer.eligible).where(CandidateVolunteer.volunteer_id == row.volunteer_id)
    )
    return bool(found)


async def _end(conn: AsyncConnection, row: Row[Any]) -> Transition | None:
    if row.status == "proposed":
        return PairingWithdrawn(**ids(row), reason="child_left_programme")
    return PairingClosed(**ids(row), reason="child_left_programme")
