"""The visit schedule: when each child's next in-person contact is due, and who is told when it is overdue.

Due `7 / 14 / 30` days after the last in-person contact (or registration) for high / medium / low risk; a county may
set its own intervals. Each child's schedule is matching's own aggregate: its record (here) and its events
(`matching.child.visit_due`, `matching.child.overdue`) are written together. The schedule follows the candidate view:
planned when a child is registered, re-planned at once when the risk changes, ended when the child leaves; in the
view's own transaction, and again from a timer (which heals anything missed while the view was rebuilt). The clock,
not a request, makes a child overdue: the same timer raises `matching.child.overdue` once per due date, escalated to
the county's child director for a high-risk child.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, Uuid, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from backbone.database import UtcDateTime
from backbone.runtime import Runtime
from backbone.store import Append, upsert
from contracts.matching import ChildOverdue, ChildVisitDue, DueBecause, VisitPolicyChanged
from services.matching.candidates import CandidateChild
from services.matching.pairings import candidates_rebuilding
from services.matching.views import Views

DEFAULT_DAYS = {"high": 7, "medium": 14, "low": 30}


class ScheduleRecord(Views):
    """Each child's visit schedule as its events say; written in the same transaction as them."""

    __tablename__ = "visit_schedules"
    __table_args__ = (Index("ix_visit_schedules_due", "active", "due_at"),)

    child_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    county_code: Mapped[str] = mapped_column(String(6))
    risk_level: Mapped[str] = mapped_column(String(8))
    active: Mapped[bool] = mapped_column(Boolean)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_in_person_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    overdue_for: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # the due date escalated
    version: Mapped[int] = mapped_column(Integer)


class PolicyRecord(Views):
    """A county's own visit intervals, as its `visit_policy_changed` events say."""

    __tablename__ = "visit_policies"

    county_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    high_days: Mapped[int] = mapped_column(Integer)
    medium_days: Mapped[int] = mapped_column(Integer)
    low_days: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)


class Intervals:
    """Days between in-person contacts per county and risk level: the county's policy, or the default."""

    def __init__(self, policies: dict[str, dict[str, int]]) -> None:
        self.policies = policies

    @classmethod
    async def load(cls, conn: AsyncConnection) -> Intervals:
        rows = (await conn.execute(select(PolicyRecord))).all()
        return cls({r.county_code: {"high": r.high_days, "medium": r.medium_days, "low": r.low_days} for r in rows})

    def __call__(self, county_code: str, risk_level: str) -> timedelta:
        return timedelta(days=self.policies.get(county_code, DEFAULT_DAYS)[risk_level])


async def plan(runtime: Runtime, conn: AsyncConnection, children: Collection[uuid.UUID] | None = None) -> int:
    """Bring these children's schedules (all, if None) in line with the candidate view; returns how many changed."""
    if await candidates_rebuilding(conn):
        return 0
    query = select(
        CandidateChild.child_id,
        CandidateChild.county_code,
        CandidateChild.risk_level,
        CandidateChild.active,
        CandidateChild.registered_at,
    ).outerjoin(ScheduleRecord, ScheduleRecord.child_id == CandidateChild.child_id)
    if children is not None:
        query = query.where(CandidateChild.child_id.in_(list(children)))
    else:  # all of them: only those out of line
        query = query.where(
            or_(
                ScheduleRecord.child_id.is_(None) & CandidateChild.active.is_(True),
                ScheduleRecord.risk_level != CandidateChild.risk_level,
                ScheduleRecord.active != CandidateChild.active,
            )
        )
    changed = 0
    interval = await Intervals.load(conn)
    children_now = (await conn.execute(query.order_by(CandidateChild.child_id))).all()
    schedules = await _held(conn, ScheduleRecord.child_id.in_([c.child_id for c in children_now]))
    starting: list[tuple[Any, datetime]] = []
    for child in children_now:
        planned = schedules.get(child.child_id)
        if planned is None:
            if child.active:
                starting.append((child, child.registered_at + interval(child.county_code, child.risk_level)))
        elif planned.active and not child.active:
            await _record(runtime, conn, planned, None, "left_programme", active=False)
            changed += 1
        elif planned.active and planned.risk_level != child.risk_level:
            due = (planned.last_in_person_at or planned.registered_at) + interval(child.county_code, child.risk_level)
            await _record(runtime, conn, planned, due, "risk_changed", risk_level=child.risk_level)
            changed += 1
    await _start(runtime, conn, starting)
    return changed + len(starting)


async def _held(conn: AsyncConnection, which: Any) -> dict[uuid.UUID, Any]:
    """These schedules, locked until the transaction ends (on PostgreSQL; SQLite's writers are serial): a contact,
    the timer and the candidate view's consumer may all move the same child's schedule at once."""
    query = select(ScheduleRecord).where(which).order_by(ScheduleRecord.child_id).with_for_update()
    return {row.child_id: row for row in await conn.execute(query)}


async def change_policy(runtime: Runtime, policy: VisitPolicyChanged) -> int:
    """Record a county's intervals and re-plan each of its children's next visit; returns how many moved."""
    stream = policy.aggregate_id()
    async with runtime.transaction() as conn:
        version = await runtime.store.version(conn, stream)
        await runtime.append(conn, Append(stream, version, [policy]))
        days = {"high_days": policy.high_days, "medium_days": policy.medium_days, "low_days": policy.low_days}
        await conn.execute(
            upsert(conn, PolicyRecord, ["county_code"]).values(
                county_code=policy.county_code, version=version + 1, **days
            )
        )
        interval = await Intervals.load(conn)
        moved = 0
        held = await _held(conn, (ScheduleRecord.county_code == policy.county_code) & ScheduleRecord.active.is_(True))
        for row in held.values():
            due = (row.last_in_person_at or row.registered_at) + interval(row.county_code, row.risk_level)
            if due != row.due_at:
                await _record(runtime, conn, row, due, "policy_changed")
                moved += 1
    return moved


async def visited(runtime: Runtime, conn: AsyncConnection, child_id: uuid.UUID, at: datetime) -> None:
    """An in-person contact: the next is due one interval after it (an older contact recorded late changes nothing)."""
    row = (await _held(conn, ScheduleRecord.child_id == child_id)).get(child_id)
    if row is None or not row.active or (row.last_in_person_at is not None and row.last_in_person_at >= at):
        return
    interval = await Intervals.load(conn)
    await _record(runtime, conn, row, at + interval(row.county_code, row.risk_level), "visited", last_in_person_at=at)


async def escalate_overdue(runtime: Runtime, batch: int = 500) -> int:
    """Raise `matching.child.overdue` once for each due date that has passed; returns how many were raised."""
    due = (
        select(ScheduleRecord)
        .where(ScheduleRecord.active.is_(True), ScheduleRecord.due_at < runtime.clock.now())
        .where(or_(ScheduleRecord.overdue_for.is_(None), ScheduleRecord.overdue_for != ScheduleRecord.due_at))
        .order_by(ScheduleRecord.due_at, ScheduleRecord.child_id)
    )

    async def raise_overdue(conn: AsyncConnection, row: Any) -> None:
        overdue = ChildOverdue(
            child_id=row.child_id,
            county_code=row.county_code,
            risk_level=row.risk_level,
            due_at=row.due_at,
            escalated_to="child_director" if row.risk_level == "high" else None,
        )
        await runtime.advance(conn, ScheduleRecord, row, overdue, overdue_for=row.due_at)

    return await runtime.work_through(due, raise_overdue, batch)


async def _start(runtime: Runtime, conn: AsyncConnection, children: list[tuple[Any, datetime]]) -> None:
    """New schedules for newly registered children, in one statement each for the events and the rows (a bulk
    import brings hundreds in one batch)."""
    if not children:
        return
    events = [
        ChildVisitDue(
            child_id=child.child_id,
            county_code=child.county_code,
            risk_level=child.risk_level,
            due_at=due_at,
            because="registered",
        )
        for child, due_at in children
    ]
    await runtime.append(conn, *(Append(str(e.child_id), 0, [e]) for e in events))
    await conn.execute(
        insert(ScheduleRecord),
        [
            {
                "child_id": child.child_id,
                "county_code": child.county_code,
                "risk_level": child.risk_level,
                "active": True,
                "registered_at": child.registered_at,
                "due_at": due_at,
                "version": 1,
            }
            for child, due_at in children
        ],
    )


async def _record(
    runtime: Runtime,
    conn: AsyncConnection,
    row: Any,
    due_at: datetime | None,
    because: DueBecause,
    *,
    risk_level: str | None = None,
    **values: Any,
) -> None:
    risk = risk_level or row.risk_level
    due = ChildVisitDue(
        child_id=row.child_id, county_code=row.county_code, risk_level=risk, due_at=due_at, because=because
    )
    await runtime.advance(conn, ScheduleRecord, row, due, risk_level=risk, due_at=due_at, overdue_for=None, **values)
