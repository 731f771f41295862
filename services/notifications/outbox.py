"""The outbox: what has been decided and must still go out (one row a notice with outward channels, written in the
transaction that records the notice), and each message to each person through each channel with its state. Plus the
pure decisions about them: a message's id, when to try again, when to give up.

A notice for a county's group becomes messages to its people when the sender looks them up at the registry; a
message is tried until the provider takes it, or a failure says trying again cannot help, or it has been tried
`max_attempts` times. The tables are the service's own records, not views: a rebuild of the views leaves them.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backbone.database import UtcDateTime
from services.notifications.tables import Views

DELIVERY_IDS = uuid.UUID("5d0f1a8e-7c3b-4e59-9a41-2f6b8c1d0e73")
LONGEST_WAIT = timedelta(hours=1)  # between two tries of one message, however many failed before


class OutboxMessage(Views):
    """A notice that must go beyond the inbox: to whom (a person or a county's group), why, through which outward
    channels, how urgently, and the facts its words may use in each language (county, dates, amounts: nobody's
    name or contact). `expanded_at`: when it became deliveries, one a person and channel."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_expanded", "expanded_at", "decided_at"),)

    notice_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    recipient_id: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(String(64))
    channels: Mapped[list[Any]] = mapped_column(JSON)
    urgency: Mapped[str] = mapped_column(String(16))
    county_code: Mapped[str] = mapped_column(String(6))
    facts: Mapped[dict[str, Any]] = mapped_column(JSON)
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expanded_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Delivery(Views):
    """One message to one person through one channel. `due_at`: when it may be tried (now, after a failure's
    back-off, when quiet hours end), or, while `sending`, when a try that has not reported back is taken as lost
    and tried again with the same id. `error`: the last failure's short code."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "status", "due_at"),
        Index("ix_deliveries_county", "county_code", "decided_at"),
    )

    message_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    notice_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    person_id: Mapped[str] = mapped_column(String(80))
    channel: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(64))
    urgency: Mapped[str] = mapped_column(String(16))
    county_code: Mapped[str] = mapped_column(String(6))
    language: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer)
    held: Mapped[bool] = mapped_column(Boolean)  # waited for the person's quiet hours to end
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    error: Mapped[str | None] = mapped_column(String(48), nullable=True)
    provider_id: Mapped[str | None] = mapped_column(String(120), nullable=True)
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    version: Mapped[int] = mapped_column(Integer)  # of its stream of sent/failed events


def message_id(notice_id: uuid.UUID, person_id: str, channel: str) -> uuid.UUID:
    """The same notice to the same person through the same channel is the same message, however often it is
    decided or tried: the provider's idempotency key."""
    return uuid.uuid5(DELIVERY_IDS, f"{notice_id}/{person_id}/{channel}")


def retry_at(now: datetime, attempts: int, first_wait: timedelta) -> datetime:
    """When a message that failed its `attempts`-th try is tried again: the wait doubles each time, up to an hour."""
    wait: timedelta = min(first_wait * 2 ** (attempts - 1), LONGEST_WAIT)
    return now + wait


def gives_up(retryable: bool, attempts: int, max_attempts: int) -> bool:
    """Whether a failure is the end: trying again cannot help, or the message has had all its tries."""
    return not retryable or attempts >= max_attempts
