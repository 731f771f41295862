"""Pairings: the matching service's own record of every pairing, and the one way a pairing's status changes.

The record is written in the same transaction as the pairing's events (like the registry's records), so it is
never behind the log; `GET /views/pairings` reads it. A child has at most one open pairing: the database refuses
a second (a partial unique index), whatever the application above it does.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Uuid, func, select, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from backbone.database import UtcDateTime
from backbone.errors import ApiError
from backbone.projection import state
from backbone.runtime import Runtime
from contracts.matching import (
    PairingClosed,
    PairingConfirmed,
    PairingDeclined,
    PairingLapsed,
    PairingResumed,
    PairingSuspended,
    PairingWithdrawn,
)
from services.matching.candidates import CandidateChild, Candidates, CandidateVolunteer
from services.matching.views import Views

# Open pairings hold the child and one of the volunteer's places.
OPEN = ("proposed", "confirmed", "suspended")
# Active pairings are under way (a suspended one waits for a side to become eligible again).
ACTIVE = ("confirmed", "suspended")
_OPEN_SQL = text("status IN ('proposed', 'confirmed', 'suspended')")

Change = PairingConfirmed | PairingDeclined | PairingLapsed | PairingWithdrawn | PairingSuspended | PairingResumed
Transition = Change | PairingClosed
# Which status each change may start from, and the status it leaves.
TRANSITIONS: dict[type[Transition], tuple[tuple[str, ...], str]] = {
    PairingConfirmed: (("proposed",), "confirmed"),
    PairingDeclined: (("proposed",), "declined"),
    PairingLapsed: (("proposed",), "lapsed"),
    PairingWithdrawn: (("proposed",), "withdrawn"),
    PairingSuspended: (ACTIVE, "suspended"),
    PairingResumed: (("suspended",), "confirmed"),
    PairingClosed: (ACTIVE, "closed"),
}


class PairingRecord(Views):
    __tablename__ = "pairings"
    __table_args__ = (
        Index("ix_pairings_county_status", "county_code", "status", "proposed_at"),
        Index("ix_pairings_volunteer_status", "volunteer_id", "status"),
        Index("ix_pairings_child", "child_id", "status"),
        Index("ix_pairings_due", "status", "expires_at"),
        Index("uq_pairings_open_child", "child_id", unique=True, sqlite_where=_OPEN_SQL, postgresql_where=_OPEN_SQL),
    )

    pairing_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    child_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    volunteer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    county_code: Mapped[str] = mapped_column(String(6))
    risk_level: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(12))
    score: Mapped[int] = mapped_column(Integer)
    score_parts: Mapped[dict[str, Any]] = mapped_column(JSON)
    proposed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # why it was declined, withdrawn, suspended or closed; who declined it
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    declined_by: Mapped[str | None] = mapped_column(String(12), nullable=True)
    version: Mapped[int] = mapped_column(Integer)


async def load(conn: AsyncConnection, pairing_id: uuid.UUID) -> Row[Any]:
    row = (await conn.execute(select(PairingRecord).where(PairingRecord.pairing_id == pairing_id))).first()
    if row is None:
        raise ApiError(404, "not_found", f"no pairing {pairing_id}")
    return row


async def hold(
    runtime: Runtime, conn: AsyncConnection, *, children: Sequence[uuid.UUID], volunteers: Sequence[uuid.UUID]
) -> None:
    """Keep the candidate rows of these children and volunteers as they are until this transaction ends, and refuse
    while the candidate view is being rebuilt (it then says what was, not what is).

    On PostgreSQL the rows are locked (FOR UPDATE, in id order): the candidate view's consumer changes them, and
    then reconciles the open pairings, only after this transaction. SQLite runs one writer at a time anyway.
    """
    if await candidates_rebuilding(conn):
        raise ApiError(503, "candidates_rebuilding", "the candidate view is being rebuilt; try again in a moment")
    if runtime.db.is_sqlite:
        return
    for key, ids in ((CandidateChild.child_id, children), (CandidateVolunteer.volunteer_id, volunteers)):
        ordered = sorted(ids)
        for start in range(0, len(ordered), 1000):
            chunk = ordered[start : start + 1000]
            await conn.execute(select(key).where(key.in_(chunk)).order_by(key).with_for_update())


async def candidates_rebuilding(conn: AsyncConnection) -> bool:
    found = await state(conn, Candidates.name)
    return found is not None and found.replaying


async def count_active(conn: AsyncConnection, volunteer_id: uuid.UUID) -> int:
    return int(
        await conn.scalar(
            select(func.count())
            .select_from(PairingRecord)
            .where(PairingRecord.volunteer_id == volunteer_id, PairingRecord.status.in_(ACTIVE))
        )
        or 0
    )


async def transition(runtime: Runtime, conn: AsyncConnection, row: Row[Any], change: Transition) -> None:
    """Move the pairing on by `change` (its event), in the caller's transaction; a pairing not in a status the
    change may start from is a 409, and so is a pairing changed meanwhile by someone else."""
    starts, status = TRANSITIONS[type(change)]
    if row.status not in starts:
        raise ApiError(
            409, f"pairing_{row.status}", f"the pairing is {row.status}; this needs it {' or '.join(starts)}"
        )
    await runtime.advance(
        conn,
        PairingRecord,
        row,
        change,
        status=status,
        changed_at=runtime.clock.now(),
        reason=getattr(change, "reason", None),
        declined_by=getattr(change, "declined_by", None),
    )


def ids(row: Row[Any]) -> dict[str, Any]:
    """The fields every pairing event repeats."""
    return {
        "pairing_id": row.pairing_id,
        "child_id": row.child_id,
        "volunteer_id": row.volunteer_id,
        "county_code": row.county_code,
    }


async def lapse_due(runtime: Runtime, county_code: str | None = None, batch: int = 500) -> int:
    """Proposals nobody confirmed in time lapse: the child may be proposed again, the place is free again."""
    query = select(PairingRecord).where(
        PairingRecord.status == "proposed", PairingRecord.expires_at <= runtime.clock.now()
    )
    if county_code is not None:
        query = query.where(PairingRecord.county_code == county_code)

    async def lapse(conn: AsyncConnection, row: Row[Any]) -> None:
        await transition(runtime, conn, row, PairingLapsed(**ids(row)))

    return await runtime.work_through(query.order_by(PairingRecord.expires_at, PairingRecord.pairing_id), lapse, batch)
