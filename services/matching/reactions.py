"""What matching does when the registry says a side of a pairing may no longer be paired, or may be again.

A volunteer who becomes ineligible (a check or training expired, a record query failed) or a child who does (consent
withdrawn) has their confirmed pairings suspended and their proposals withdrawn; eligible again, the suspended
pairings resume. A child who leaves the programme has their pairings closed. The reason is on the pairing, for the
coordinator, and on the bus, for the notifications service.

Not a view: it keeps no rows of its own. It acts on a pairing only from the status the change may start from,
so an event delivered twice changes nothing; it is never rebuilt (a replay from the start would act on old news).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from services.matching.pairings import OPEN, PairingRecord, Transition, ids, transition

Reaction = Callable[[Row[Any]], Transition | None]


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
                    side, reason = PairingRecord.volunteer_id == volunteer_id, "volunteer_ineligible"
                    react = _resume(reason) if eligible else _hold(reason)
                case ChildPairingEligibilityChanged(child_id=child_id, eligible=eligible):
                    side, reason = PairingRecord.child_id == child_id, "child_ineligible"
                    react = _resume(reason) if eligible else _hold(reason)
                case ChildLeftProgramme(child_id=child_id):
                    side, react = PairingRecord.child_id == child_id, _end
                case _:
                    continue
            rows = (await conn.execute(select(PairingRecord).where(side, PairingRecord.status.in_(OPEN)))).all()
            for row in rows:
                if (change := react(row)) is not None:
                    envelope = delivered.envelope
                    traceparent = envelope.traceparent or context.new_traceparent()
                    context.bind(context.Causes(envelope.correlationid, envelope.id, traceparent))
                    await transition(self.runtime, conn, row, change)


def _hold(reason: Any) -> Reaction:
    def react(row: Row[Any]) -> Transition | None:
        if row.status == "proposed":
            return PairingWithdrawn(**ids(row), reason=reason)
        if row.status == "confirmed":
            return PairingSuspended(**ids(row), reason=reason)
        return None

    return react


def _resume(reason: str) -> Reaction:
    def react(row: Row[Any]) -> Transition | None:
        return PairingResumed(**ids(row)) if row.status == "suspended" and row.reason == reason else None

    return react


def _end(row: Row[Any]) -> Transition | None:
    if row.status == "proposed":
        return PairingWithdrawn(**ids(row), reason="child_left_programme")
    return PairingClosed(**ids(row), reason="child_left_programme")
