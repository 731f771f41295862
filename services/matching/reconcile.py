"""Open pairings kept in line with what the registry says of their two sides, as the candidate view has it.

A side that may not be paired now (an expired check or training, withdrawn consent), or a child whose risk rose to
high while paired with neither a social worker nor a child director, has its proposals withdrawn and its confirmed
pairings suspended, with the reason; once nothing stands in the way, a suspended pairing resumes. A child who left
the programme has their pairings closed. The reason is on the pairing, for the coordinator, and on the bus.

It runs in the candidate view's own transaction, right after the view changed (so it sees what the view sees, in
the registry's order), and from a timer over every open pairing (which heals anything missed, e.g. after the view
was rebuilt: while it is, nothing is reconciled). It decides from the current state alone, so running it twice
changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone.runtime import Runtime
from contracts.matching import PairingClosed, PairingResumed, PairingSuspended, PairingWithdrawn
from services.matching.candidates import CandidateChild, CandidateVolunteer
from services.matching.pairings import OPEN, PairingRecord, Transition, candidates_rebuilding, ids, transition
from services.matching.solver import QUALIFIED_KINDS


async def reconcile(
    runtime: Runtime,
    conn: AsyncConnection,
    children: Collection[uuid.UUID] | None = None,
    volunteers: Collection[uuid.UUID] | None = None,
) -> int:
    """Bring the open pairings of these children and volunteers (all, if neither is given) in line; returns how
    many changed."""
    if await candidates_rebuilding(conn):
        return 0
    query = (
        select(
            PairingRecord.__table__,
            CandidateChild.active.label("child_active"),
            CandidateChild.eligible.label("child_eligible"),
            CandidateChild.risk_level.label("child_risk"),
            CandidateChild.flags.label("child_flags"),
            CandidateVolunteer.eligible.label("volunteer_eligible"),
            CandidateVolunteer.kind.label("volunteer_kind"),
        )
        .join(CandidateChild, CandidateChild.child_id == PairingRecord.child_id)
        .join(CandidateVolunteer, CandidateVolunteer.volunteer_id == PairingRecord.volunteer_id)
        .where(PairingRecord.status.in_(OPEN))
        .order_by(PairingRecord.pairing_id)
    )
    if children is not None or volunteers is not None:
        query = query.where(
            or_(
                PairingRecord.child_id.in_(list(children or ())), PairingRecord.volunteer_id.in_(list(volunteers or ()))
            )
        )
    else:  # all of them: only those that can need a change (flags never change, so risk alone can)
        query = query.where(
            or_(
                PairingRecord.status == "suspended",
                CandidateChild.active.is_(False),
                CandidateChild.eligible.is_(False),
                CandidateVolunteer.eligible.is_(False),
                (CandidateChild.risk_level == "high") & CandidateVolunteer.kind.not_in(QUALIFIED_KINDS),
            )
        )
    changed = 0
    for row in (await conn.execute(query)).all():
        if (change := _decide(row)) is not None:
            await transition(runtime, conn, row, change)
            changed += 1
    return changed


def _obstacle(row: Row[Any]) -> str | None:
    if not row.child_eligible:
        return "child_ineligible"
    if not row.volunteer_eligible:
        return "volunteer_ineligible"
    if (row.child_risk == "high" or row.child_flags) and row.volunteer_kind not in QUALIFIED_KINDS:
        return "volunteer_not_qualified"
    return None


def _decide(row: Row[Any]) -> Transition | None:
    if not row.child_active:
        if row.status == "proposed":
            return PairingWithdrawn(**ids(row), reason="child_left_programme")
        return PairingClosed(**ids(row), reason="child_left_programme")
    obstacle = _obstacle(row)
    if obstacle is None:
        return PairingResumed(**ids(row)) if row.status == "suspended" else None
    if row.status == "proposed":
        return PairingWithdrawn(**ids(row), reason=obstacle)
    if row.status == "confirmed" or row.reason != obstacle:
        return PairingSuspended(**ids(row), reason=obstacle)
    return None
