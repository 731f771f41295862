"""Escalations told again each day: a high-risk child overdue for a visit is escalated once by matching; the county's
child directors and coordinators are told again every morning after that (08:00 in China) until the child's schedule
moves (a visit was logged, the child left the programme, the county's intervals changed), then no more.

The view of open escalations is folded from matching's child events; a timer decides each day's repeat with the
daily rules of services/notifications/rules.py, its id from the escalation and the day (told once, whatever
replica or rebuild decides it again)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar

from sqlalchemy import String, Table, Uuid, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from backbone.clock import PROGRAMME_TIMEZONE, local_date
from backbone.database import UtcDateTime
from backbone.projection import Delivered, Projection
from backbone.runtime import Runtime
from backbone.store import upsert
from contracts.matching import ChildOverdue, ChildVisitDue
from services.notifications import rules
from services.notifications.notices import Decided, record
from services.notifications.tables import Views

REPEAT_TIME = time(8, 0)  # Asia/Shanghai


class OpenEscalation(Views):
    """A child escalated as overdue whose schedule has not moved since."""

    __tablename__ = "open_escalations"

    child_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    county_code: Mapped[str] = mapped_column(String(6))
    risk_level: Mapped[str] = mapped_column(String(8))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    cause_event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    escalated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    next_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)  # when the next repeat is due


class Escalations(Projection):
    name: ClassVar[str] = "notifications-escalations"
    stream: ClassVar[str] = "MATCHING"
    subjects: ClassVar[list[str]] = ["matching.child.>"]
    views: ClassVar[list[Table]] = [OpenEscalation.__table__]  # type: ignore[list-item]

    async def apply(self, conn: AsyncConnection, events: Sequence[Delivered]) -> None:
        for delivered in events:
            match delivered.event:
                case ChildOverdue(escalated_to="child_director") as overdue:
                    row = {
                        "child_id": overdue.child_id,
                        "county_code": overdue.county_code,
                        "risk_level": overdue.risk_level,
                        "due_at": overdue.due_at,
                        "cause_event_id": uuid.UUID(delivered.envelope.id),
                        "escalated_at": delivered.envelope.time,
                        "next_at": repeat_at(delivered.envelope.time, 1),
                    }
                    await conn.execute(upsert(conn, OpenEscalation, ["child_id"]), [row])
                case ChildVisitDue(child_id=child):  # the schedule moved: this escalation is over
                    await conn.execute(delete(OpenEscalation).where(OpenEscalation.child_id == child))


def days_since(escalated_at: datetime, now: datetime) -> int:
    """Days on the programme's calendar from the escalation to `now`: the day whose repeat is due."""
    return (local_date(now) - local_date(escalated_at)).days


def repeat_at(escalated_at: datetime, day: int) -> datetime:
    """When the `day`-th repeat is told: at the start of that day's work in China, whatever the hour the escalation
    came (an urgent SMS wakes whoever it reaches: once is news, each morning after is a reminder)."""
    on = local_date(escalated_at) + timedelta(days=day)
    return datetime.combine(on, REPEAT_TIME, PROGRAMME_TIMEZONE).astimezone(UTC)


async def repeat_due(runtime: Runtime) -> int:
    """Decide the repeats due by now (one a day: a service that was down for three days tells once, of today);
    returns how many escalations were told again."""
    now = runtime.clock.now()
    due = select(OpenEscalation).where(OpenEscalation.next_at <= now).order_by(OpenEscalation.next_at)

    async def tell(conn: AsyncConnection, row: Any) -> None:
        day = days_since(row.escalated_at, now)
        overdue = ChildOverdue(
            child_id=row.child_id,
            county_code=row.county_code,
            risk_level=row.risk_level,
            due_at=row.due_at,
            escalated_to="child_director",
        )
        decisions = rules.decide(overdue, row.cause_event_id, occasion=rules.Occasion(day=day))
        await record(runtime, conn, [Decided(decision, overdue) for decision in decisions])
        later = {"next_at": repeat_at(row.escalated_at, day + 1)}
        await conn.execute(update(OpenEscalation).where(OpenEscalation.child_id == row.child_id).values(**later))

    return await runtime.work_through(due, tell)
