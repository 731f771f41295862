"""The matching service's read models, folded from the streams; disposable and rebuildable."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import Boolean, Index, Integer, MetaData, Numeric, String, Table, Uuid, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backbone.database import UtcDateTime
from backbone.projection import Delivered, Projection, insert_rows, update_rows
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
        """The batch folded in memory over the rows it touches (read in one query), then written set-wise: one
        statement per table."""
        children = await _Children.load(conn, {child_id for d in events if (child_id := _child_of(d.event))})
        pairings: list[dict[str, Any]] = []
        contacts: list[dict[str, Any]] = []
        wishes: dict[uuid.UUID, dict[str, Any]] = {}  # posted in this batch
        statuses: dict[uuid.UUID, dict[str, Any]] = {}  # of wishes posted before
        aid: list[dict[str, Any]] = []
        for delivered in events:
            match delivered.event:
                case ChildVisitDue() as due:
                    children.set(
                        due.child_id,
                        due.county_code,
                        risk_level=due.risk_level,
                        next_due_at=due.due_at,
                        active=due.due_at is not None,
                    )
                case ChildOverdue() as overdue if overdue.escalated_to:
                    children.set(overdue.child_id, overdue.county_code, escalated_for=overdue.due_at)
                case PairingConfirmed() | PairingResumed() as paired:
                    if isinstance(paired, PairingConfirmed):
                        pairings.append(
                            paired.model_dump(include={"pairing_id", "child_id", "volunteer_id", "county_code"})
                        )
                    children.set(
                        paired.child_id,
                        paired.county_code,
                        pairing_id=paired.pairing_id,
                        pairing_status="confirmed",
                        volunteer_id=paired.volunteer_id,
                    )
                case PairingSuspended() as held:
                    children.pairing(held.child_id, held.pairing_id, pairing_status="suspended")
                case PairingClosed() as closed:
                    children.pairing(
                        closed.child_id, closed.pairing_id, pairing_id=None, pairing_status=None, volunteer_id=None
                    )
                case ContactRecorded() as contact:
                    row = children.set(contact.child_id, contact.county_code)
                    row["last_contact_at"] = _later(row["last_contact_at"], contact.occurred_at)
                    if contact.in_person:
                        row["last_in_person_at"] = _later(row["last_in_person_at"], contact.occurred_at)
                    contacts.append(contact.model_dump(include=_CONTACT_FIELDS))
                case WishPosted() as wish:
                    children.set(wish.child_id, wish.county_code)["open_wishes"] += 1
                    wishes[wish.wish_id] = {
                        **wish.model_dump(include={"wish_id", "county_code", "campaign_id"}),
                        "status": "posted",
                    }
                case WishClaimed() | WishReleased() | WishFulfilled() | WishAcknowledged() | WishWithdrawn() as wish:
                    if isinstance(wish, WishFulfilled | WishWithdrawn):
                        children.set(wish.child_id, wish.county_code)["open_wishes"] -= 1
                    (wishes.get(wish.wish_id) or statuses.setdefault(wish.wish_id, {}))["status"] = WISH_STATUS[
                        type(wish)
                    ]
                case AidDistributed() as aid_given:
                    aid.append(aid_given.model_dump(exclude={"donor_id"}))
        await children.save(conn)
        await insert_rows(conn, PairingRow, pairings)
        await insert_rows(conn, ContactRow, contacts)
        await insert_rows(conn, WishRow, list(wishes.values()))
        await update_rows(conn, WishRow, "wish_id", statuses)
        await insert_rows(conn, AidRow, aid)


class _Children:
    """The engagement rows a batch touches, as they stand and as its events change them."""

    def __init__(self, rows: dict[uuid.UUID, dict[str, Any]]) -> None:
        self.rows = rows
        self.changed: set[uuid.UUID] = set()

    @classmethod
    async def load(cls, conn: AsyncConnection, child_ids: set[uuid.UUID]) -> _Children:
        rows: dict[uuid.UUID, dict[str, Any]] = {}
        ids = sorted(child_ids)
        for start in range(0, len(ids), 500):
            query = select(_ENGAGEMENT).where(_ENGAGEMENT.c.child_id.in_(ids[start : start + 500]))
            rows |= {row.child_id: dict(row._mapping) for row in await conn.execute(query)}
        return cls(rows)

    def set(self, child_id: uuid.UUID, county_code: str, **values: Any) -> dict[str, Any]:
        """The child's row with these values, created if it is new (events of different aggregates meet here)."""
        row = self.rows.get(child_id)
        if row is None:
            row = self.rows[child_id] = {**_NEW_ROW, "child_id": child_id, "county_code": county_code}
        row.update(values)
        self.changed.add(child_id)
        return row

    def pairing(self, child_id: uuid.UUID, current: uuid.UUID, **values: Any) -> None:
        """Change the child's current pairing only if it is this one (an older pairing's late news changes nothing)."""
        row = self.rows.get(child_id)
        if row is not None and row["pairing_id"] == current:
            row.update(values)
            self.changed.add(child_id)

    async def save(self, conn: AsyncConnection) -> None:
        if self.changed:
            await conn.execute(upsert(conn, EngagementRow, ["child_id"]), [self.rows[c] for c in sorted(self.changed)])


_ENGAGEMENT: Table = EngagementRow.__table__  # type: ignore[assignment]
_NEW_ROW: dict[str, Any] = {column.name: None for column in _ENGAGEMENT.columns} | {"active": True, "open_wishes": 0}


def _child_of(event: object) -> uuid.UUID | None:
    return getattr(event, "child_id", None)


def _later(current: datetime | None, at: datetime) -> datetime:
    """Latest contact times only ever move forward, whatever order contacts arrive in."""
    return at if current is None or current < at else current


_CONTACT_FIELDS = set(ContactFacts.__annotations__)
_PAIRING_FIELDS = {"pairing_id", "child_id", "volunteer_id", "county_code"}
