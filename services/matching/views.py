"""The matching service's read models, folded from the streams; disposable and rebuildable."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Uuid,
    case,
    func,
    insert,
    literal,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backbone.database import UtcDateTime
from backbone.projection import Delivered, Projection
from backbone.store import upsert
from contracts.matching import (
    AidDistributed,
    ChildOverdue,
    ChildVisitDue,
    ContactRecorded,
    PairingClosed,
    PairingConfirmed,
    PairingResumed,
    PairingSuspended,
    WishAcknowledged,
    WishClaimed,
    WishFulfilled,
    WishPosted,
    WishReleased,
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


class ContactFacts:
    """A contact's columns, as the command side records it and as the figures count it."""

    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    child_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    county_code: Mapped[str] = mapped_column(String(6))
    volunteer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    visitor: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    in_person: Mapped[bool] = mapped_column(Boolean)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


class ContactRow(ContactFacts, Views):
    """A contact in the view: the note stays with the command side (`contacts`), never here."""

    __tablename__ = "engagement_contacts"
    __table_args__ = (Index("ix_engagement_contacts_county", "county_code", "campaign_id"),)


class PairingRow(Views):
    """A pairing that was confirmed, whatever became of it since: the person-times the figures count."""

    __tablename__ = "engagement_pairings"
    __table_args__ = (Index("ix_engagement_pairings_county", "county_code"),)

    pairing_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    child_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    volunteer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    county_code: Mapped[str] = mapped_column(String(6))


class WishRow(Views):
    """Where each wish stands, for the figures."""

    __tablename__ = "engagement_wishes"
    __table_args__ = (Index("ix_engagement_wishes_county", "county_code", "campaign_id"),)

    wish_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    county_code: Mapped[str] = mapped_column(String(6))
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    status: Mapped[str] = mapped_column(String(12))


class AidFacts:
    """One child's share of a distribution, as the command side records it and as the figures count it."""

    distribution_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    child_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    county_code: Mapped[str] = mapped_column(String(6))
    campaign_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    kind: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[int] = mapped_column(Integer)
    value_yuan: Mapped[Decimal] = mapped_column(Numeric(10, 2))


class AidRow(AidFacts, Views):
    __tablename__ = "engagement_aid"
    __table_args__ = (Index("ix_engagement_aid_county", "county_code", "campaign_id"),)


WISH_STATUS: dict[type[Any], str] = {
    WishClaimed: "claimed",
    WishReleased: "posted",
    WishFulfilled: "fulfilled",
    WishAcknowledged: "acknowledged",
    WishWithdrawn: "withdrawn",
}


class Engagement(Projection):
    """Folded from matching's own stream: each child's visit schedule, pairing, contacts and wishes, and the
    contacts, wishes and aid every figure of the summary counts."""

    name: ClassVar[str] = "matching-engagement"
    stream: ClassVar[str] = "MATCHING"
    subjects: ClassVar[list[str]] = [
        "matching.child.>",
        "matching.pairing.>",
        "matching.contact.>",
        "matching.wish.>",
        "matching.aid.>",
    ]
    views: ClassVar[list[Table]] = [
        EngagementRow.__table__,  # type: ignore[list-item]
        PairingRow.__table__,  # type: ignore[list-item]
        ContactRow.__table__,  # type: ignore[list-item]
        WishRow.__table__,  # type: ignore[list-item]
        AidRow.__table__,  # type: ignore[list-item]
    ]

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
                case ChildOverdue() as overdue if overdue.escalated_to:
                    await self._row(conn, overdue.child_id, overdue.county_code, escalated_for=overdue.due_at)
                case PairingConfirmed() | PairingResumed() as paired:
                    if isinstance(paired, PairingConfirmed):
                        fields = {"pairing_id", "child_id", "volunteer_id", "county_code"}
                        await conn.execute(insert(PairingRow).values(**paired.model_dump(include=fields)))
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
                    await conn.execute(insert(ContactRow).values(contact.model_dump(include=_CONTACT_FIELDS)))
                case WishPosted() as wish:
                    await self._wishes(conn, wish.child_id, wish.county_code, +1)
                    await conn.execute(
                        insert(WishRow).values(
                            **wish.model_dump(include={"wish_id", "county_code", "campaign_id"}), status="posted"
                        )
                    )
                case WishClaimed() | WishReleased() | WishFulfilled() | WishAcknowledged() | WishWithdrawn() as wish:
                    if isinstance(wish, WishFulfilled | WishWithdrawn):
                        await self._wishes(conn, wish.child_id, wish.county_code, -1)
                    await conn.execute(
                        update(WishRow).where(WishRow.wish_id == wish.wish_id).values(status=WISH_STATUS[type(wish)])
                    )
                case AidDistributed() as aid:
                    await conn.execute(insert(AidRow).values(aid.model_dump(exclude={"donor_id"})))

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


_CONTACT_FIELDS = set(ContactFacts.__annotations__)


def _later(column: Any, at: datetime) -> Any:
    """The later of the column and `at`, the same on SQLite and PostgreSQL (a NULL column is earlier than all)."""
    moment = literal(at, type_=column.type)
    return case((column.is_(None), moment), (column < moment, moment), else_=column)
