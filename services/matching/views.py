"""The matching service's read models, folded from the streams; disposable and rebuildable."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import ClassVar

from sqlalchemy import Boolean, Index, MetaData, String, Table, Uuid, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backbone.database import UtcDateTime
from backbone.projection import Delivered, Projection
from contracts.registry import ChildRegistered

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
        registered = [
            {
                "child_id": d.event.child_id,
                "county_code": d.event.county_code,
                "risk_level": d.event.risk_level,
                "active": True,
                "next_due_at": d.envelope.time + VISIT_INTERVAL[d.event.risk_level],
                "registered_at": d.envelope.time,
            }
            for d in events
            if isinstance(d.event, ChildRegistered)
        ]
        if registered:
            await conn.execute(insert(EngagementRow), registered)
