"""The matching service's read models, folded from the streams; disposable and rebuildable."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import ClassVar

from sqlalchemy import Boolean, Index, MetaData, String, Table, Uuid, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backbone.database import UtcDateTime
from backbone.projection import Delivered, Projection
from contracts.registry import ChildLeftProgramme, ChildRegistered, ChildRiskChanged

VISIT_INTERVAL = {"high": timedelta(days=7), "medium": timedelta(days=14), "low": timedelta(days=30)}


class Views(DeclarativeBase):
    metadata = MetaData()


class EngagementRow(Views):
    """Per child: who visits, when last, when next. `overdue` is `next_due_at` compared with the clock."""

    __tablename__ = "engagement"
    __table_args__ = (Index("ix_engagement_county_due", "county_code", "next_due_at"),)

    child_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    county_code: Mapped[str] = mapped_column(String(6))
    risk_level: Mapped[str] = mapped_column(String(8))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    volunteer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    last_contact_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_in_person_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    next_due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Engagement(Projection):
    name: ClassVar[str] = "matching-engagement"
    stream: ClassVar[str] = "REGISTRY"
    subjects: ClassVar[list[str]] = ["registry.child.>"]
    views: ClassVar[list[Table]] = [EngagementRow.__table__]  # type: ignore[list-item]

    async def apply(self, conn: AsyncConnection, events: Sequence[Delivered]) -> None:
        registered: list[dict[str, object]] = []  # consecutive registrations go in one statement
        for delivered in events:
            event = delivered.event
            if isinstance(event, ChildRegistered):
                registered.append(
                    {
                        "child_id": event.child_id,
                        "county_code": event.county_code,
                        "risk_level": event.risk_level,
                        "active": True,
                        "next_due_at": delivered.envelope.time + VISIT_INTERVAL[event.risk_level],
                        "registered_at": delivered.envelope.time,
                    }
                )
                continue
            if registered:
                await conn.execute(insert(EngagementRow), registered)
                registered = []
            if isinstance(event, ChildRiskChanged):
                await self._replan(conn, event)
            elif isinstance(event, ChildLeftProgramme):
                await conn.execute(
                    update(EngagementRow).where(EngagementRow.child_id == event.child_id).values(active=False)
                )
        if registered:
            await conn.execute(insert(EngagementRow), registered)

    async def _replan(self, conn: AsyncConnection, event: ChildRiskChanged) -> None:
        """A new risk level moves the next visit at once: due one interval after the last visit (or registration)."""
        row = (
            await conn.execute(
                select(EngagementRow.last_in_person_at, EngagementRow.registered_at).where(
                    EngagementRow.child_id == event.child_id
                )
            )
        ).one()
        since = row.last_in_person_at or row.registered_at
        await conn.execute(
            update(EngagementRow)
            .where(EngagementRow.child_id == event.child_id)
            .values(risk_level=event.risk_level, next_due_at=since + VISIT_INTERVAL[event.risk_level])
        )
