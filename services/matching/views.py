"""The matching service's read models, folded from the streams; disposable and rebuildable."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Boolean, Index, Integer, MetaData, String, Table, Uuid, case, func, literal, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backbone.database import UtcDateTime
from backbone.projection import Delivered, Projection
from backbone.store import upsert
from contracts.matching import (
    ChildOverdue,
    ChildVisitDue,
    ContactRecorded,
    PairingClosed,
    PairingConfirmed,
    PairingResumed,
    PairingSuspended,
    WishFulfilled,
    WishPosted,
    WishWithdrawn,
)


class Views(DeclarativeBase):
    metadata = MetaData()


class EngagementRow(Views):
    """Per child: who visits, when last, when next. `overdue` is `next_due_at` compared with the clock."""

    __tablename__ = "engagement"
    __table_args__ = (Index("ix_engagement_county_due", "county_code", "active", "next_due_at"),)

    child_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    county_code: Mapped[str] = mapped_column(String(6))
    risk_level: Mapped[str | None] = mapped_column(String(8), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    pairing_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    pairing_status: Mapped[str | None] = mapped_column(String(12), nullable=True)
    volunteer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    last_contact_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_in_person_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    next_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    escalated_for: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # the due date escalated
    open_wishes: Mapped[int] = mapped_column(Integer, default=0)  # posted and neither fulfilled nor withdrawn


class Engagement(Projection):
    """Folded from matching's own stream: the visit schedule, pairings and contacts of each child."""

    name: ClassVar[str] = "matching-engagement"
    stream: ClassVar[str] = "MATCHING"
    subjects: ClassVar[list[str]] = ["matching.child.>", "matching.pairing.>", "matching.contact.>", "matching.wish.>"]
    views: ClassVar[list[Table]] = [EngagementRow.__table__]  # type: ignore[list-item]

    async def apply(self, conn: AsyncConnection, events: Sequence[Delivered]) -> None:
        for delivered in events:
            match delivered.event:
                case ChildVisitDue() as due:
                    await self._row(
                        conn,
                        due.child_id,
                        due.county_code,
                        risk_level=due.risk_level,
                        next_due_at=due.due_at,
                        active=due.due_at is not None,
                    )
                case ChildOverdue() as overdue:
                    await self._row(conn, overdue.child_id, overdue.county_code, escalated_for=overdue.due_at)
                case PairingConfirmed() | PairingResumed() as paired:
                    await self._row(
                        conn,
                        paired.child_id,
                        paired.county_code,
                        pairing_id=paired.pairing_id,
                        pairing_status="confirmed",
                        volunteer_id=paired.volunteer_id,
                    )
                case PairingSuspended() as held:
                    await self._pairing(conn, held.child_id, held.pairing_id, pairing_status="suspended")
                case PairingClosed() as closed:
                    await self._pairing(
                        conn,
                        closed.child_id,
                        closed.pairing_id,
                        pairing_id=None,
                        pairing_status=None,
                        volunteer_id=None,
                    )
                case ContactRecorded() as contact:
                    await self._contact(conn, contact)
                case WishPosted() as wish:
                    await self._wishes(conn, wish.child_id, wish.county_code, +1)
                case WishFulfilled() | WishWithdrawn() as wish:
                    await self._wishes(conn, wish.child_id, wish.county_code, -1)

    async def _row(self, conn: AsyncConnection, child_id: uuid.UUID, county_code: str, **values: Any) -> None:
        """Create the child's row with these values, or set them on it (events of different aggregates meet here)."""
        await conn.execute(
            upsert(conn, EngagementRow, ["child_id"], set_=list(values)).values(
                child_id=child_id, county_code=county_code, **values
            )
        )

    async def _pairing(self, conn: AsyncConnection, child_id: uuid.UUID, current: uuid.UUID, **values: Any) -> None:
        """Change the child's current pairing only if it is this one (an older pairing's late news changes nothing)."""
        await conn.execute(
            update(EngagementRow)
            .where(EngagementRow.child_id == child_id, EngagementRow.pairing_id == current)
            .values(**values)
        )

    async def _wishes(self, conn: AsyncConnection, child_id: uuid.UUID, county_code: str, change: int) -> None:
        await self._row(conn, child_id, county_code)
        await conn.execute(
            update(EngagementRow)
            .where(EngagementRow.child_id == child_id)
            .values(open_wishes=func.coalesce(EngagementRow.open_wishes, 0) + change)
        )

    async def _contact(self, conn: AsyncConnection, contact: ContactRecorded) -> None:
        """Latest contact times only ever move forward, whatever order contacts arrive in."""
        at = contact.occurred_at
        await self._row(conn, contact.child_id, contact.county_code)
        values: dict[str, Any] = {"last_contact_at": _later(EngagementRow.last_contact_at, at)}
        if contact.in_person:
            values["last_in_person_at"] = _later(EngagementRow.last_in_person_at, at)
        await conn.execute(update(EngagementRow).where(EngagementRow.child_id == contact.child_id).values(**values))


def _later(column: Any, at: datetime) -> Any:
    """The later of the column and `at`, the same on SQLite and PostgreSQL (a NULL column is earlier than all)."""
    moment = literal(at, type_=column.type)
    return case((column.is_(None), moment), (column < moment, moment), else_=column)
