"""Notices: the service's reaction to other contexts' events, its event stream and its delivery log."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from sqlalchemy import Index, MetaData, String, Table, Uuid, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backbone import context
from backbone.database import UtcDateTime
from backbone.projection import Delivered, Projection
from backbone.runtime import Runtime
from backbone.store import Append
from contracts import CloudEvent
from contracts.matching import ChildOverdue, WishAcknowledged
from contracts.notifications import NoticeRecorded
from contracts.registry import ChildRegistered

NOTICE_IDS = uuid.UUID("6f1d2b1e-4c1a-4d8e-9a57-3f7f5d0c2a10")


class Views(DeclarativeBase):
    metadata = MetaData()


class NoticeRow(Views):
    """The delivery log: one row per notice, with the event that caused it."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_recipient", "recipient_id", "recorded_at"),)

    notice_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    recipient_id: Mapped[str] = mapped_column(String(80))
    channel: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64))
    county_code: Mapped[str] = mapped_column(String(6))
    about_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    cause_event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


def coordinators_of(county_code: str) -> str:
    return f"county:{county_code}:coordinators"


def child_directors_of(county_code: str) -> str:
    return f"county:{county_code}:child_directors"


class Reactions(Projection):
    """Decides whom to tell about another context's events; what it decides becomes NOTIFICATIONS events.

    Not a view: it has no rows to drop, and replaying it changes nothing (a notice's id comes from its cause).
    """

    views: ClassVar[list[Table]] = []

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def tell(self, conn: AsyncConnection, notices: Sequence[Notice]) -> None:
        """Record each notice not decided before (a replay of the stream decides them again), all in one append;
        each names the event that caused it."""
        decided = await self.runtime.store.versions(conn, [str(n.notice_id) for n in notices])
        appends = [
            Append(str(n.notice_id), 0, [n.event], causes=n.causes) for n in notices if str(n.notice_id) not in decided
        ]
        if appends:
            await self.runtime.append(conn, *appends)


@dataclass(frozen=True)
class Notice:
    event: NoticeRecorded
    causes: context.Causes

    @property
    def notice_id(self) -> uuid.UUID:
        return self.event.notice_id


def notice(envelope: CloudEvent, recipient: str, reason: str, county: str, about: uuid.UUID) -> Notice:
    """What to tell `recipient` because of the event `envelope` carries; its id comes from its cause."""
    event = NoticeRecorded(
        notice_id=uuid.uuid5(NOTICE_IDS, f"{envelope.id}/{recipient}"),
        recipient_id=recipient,
        channel="inbox",
        reason=reason,
        county_code=county,
        about_id=about,
        cause_event_id=uuid.UUID(envelope.id),
    )
    return Notice(event, context.of(envelope.correlationid, envelope.id, envelope.traceparent))


class RegistryReactions(Reactions):
    """Coordinators hear of each child registered in their county."""

    name: ClassVar[str] = "notifications-reactions"
    stream: ClassVar[str] = "REGISTRY"
    subjects: ClassVar[list[str]] = ["registry.child.>"]

    async def apply(self, conn: AsyncConnection, events: Sequence[Delivered]) -> None:
        registered = [(d.envelope, d.event) for d in events if isinstance(d.event, ChildRegistered)]
        await self.tell(
            conn,
            [
                notice(cause, coordinators_of(child.county_code), "child_registered", child.county_code, child.child_id)
                for cause, child in registered
            ],
        )


class MatchingReactions(Reactions):
    """The county's child directors hear of every high-risk child whose visit is overdue (an escalation); a donor
    hears that the child thanked them for a wish (about the wish: nothing says who the child is)."""

    name: ClassVar[str] = "notifications-matching-reactions"
    stream: ClassVar[str] = "MATCHING"
    subjects: ClassVar[list[str]] = ["matching.child.>", "matching.wish.>"]  # whole aggregates, as all projections

    async def apply(self, conn: AsyncConnection, events: Sequence[Delivered]) -> None:
        notices = []
        for delivered in events:
            match delivered.event:
                case ChildOverdue(escalated_to="child_director") as late:
                    recipient = child_directors_of(late.county_code)
                    notices.append(
                        notice(delivered.envelope, recipient, "overdue_high_risk", late.county_code, late.child_id)
                    )
                case WishAcknowledged() as thanked:
                    donor, county = thanked.donor_id, thanked.county_code
                    notices.append(notice(delivered.envelope, donor, "wish_thanked", county, thanked.wish_id))
        await self.tell(conn, notices)


class Deliveries(Projection):
    """The delivery log, folded from the service's own NOTIFICATIONS stream."""

    name: ClassVar[str] = "notifications-deliveries"
    stream: ClassVar[str] = "NOTIFICATIONS"
    subjects: ClassVar[list[str]] = ["notifications.notice.>"]
    views: ClassVar[list[Table]] = [NoticeRow.__table__]  # type: ignore[list-item]

    async def apply(self, conn: AsyncConnection, events: Sequence[Delivered]) -> None:
        recorded = [
            {**d.event.model_dump(), "status": "recorded", "recorded_at": d.envelope.time}
            for d in events
            if isinstance(d.event, NoticeRecorded)
        ]
        if recorded:
            await conn.execute(insert(NoticeRow), recorded)
