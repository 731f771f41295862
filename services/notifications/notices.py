"""Notices: the service's reaction to other contexts' events, its event stream and its delivery log."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Index, String, Table, Uuid, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from backbone import context
from backbone.database import UtcDateTime
from backbone.projection import Delivered, Projection
from backbone.runtime import Runtime
from backbone.store import Append, upsert
from contracts import CloudEvent
from contracts.catalogue import Event
from contracts.matching import ChildOverdue, PairingClosed, PairingConfirmed
from contracts.notifications import NoticeRecorded
from services.notifications import messages, rules
from services.notifications.outbox import OutboxMessage
from services.notifications.tables import Views


class NoticeRow(Views):
    """The delivery log: one row per notice, with the event that caused it."""

    __tablename__ = "notice_log"  # v2 notices (channels, urgency); the v1 table `notices` is no longer written
    __table_args__ = (Index("ix_notice_log_recipient", "recipient_id", "recorded_at"),)

    notice_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    recipient_id: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(String(64))
    channels: Mapped[list[str]] = mapped_column(JSON)
    urgency: Mapped[str] = mapped_column(String(16))
    county_code: Mapped[str] = mapped_column(String(6))
    about_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    cause_event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class NoticeRead(Views):
    """Who has read which notice in the console's inbox (a group's notice is read by each of its people on their
    own). The person's own state, not a fact of the programme: kept here, not on the bus, and no rebuild drops it."""

    __tablename__ = "notice_reads"

    notice_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    person_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    read_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PairedVolunteer(Views):
    """Which volunteer each child is paired with (confirmed, not yet closed): who hears that a visit is overdue."""

    __tablename__ = "paired_volunteers"

    child_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    volunteer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    pairing_id: Mapped[uuid.UUID] = mapped_column(Uuid)


class Reactions(Projection):
    """Applies the rules (services/notifications/rules.py) to another context's events; what they decide for the
    inbox becomes NOTIFICATIONS events, and what goes beyond it an outbox row (`record`).

    Not a view: it has no rows to drop, and replaying it changes nothing (a notice's id comes from its cause)."""

    views: ClassVar[list[Table]] = []

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def apply(self, conn: AsyncConnection, events: Sequence[Delivered]) -> None:
        """Record each notice the batch decides and none decided before (a replay decides them again), all in one
        append; each names the event that caused it."""
        volunteers = await paired(conn, {d.event.child_id for d in events if isinstance(d.event, ChildOverdue)})
        notices = [
            (decision, delivered.event, delivered.envelope)
            for delivered in events
            for decision in rules.decide(
                delivered.event,
                uuid.UUID(delivered.envelope.id),
                volunteers.get(getattr(delivered.event, "child_id", None)),
            )
        ]
        await record(self.runtime, conn, [Decided(d, event, _causes(envelope)) for d, event, envelope in notices])


@dataclass(frozen=True)
class Decided:
    """A decision, the event it applies to, and what caused it (a delivered event's ids; none: the timer's own)."""

    decision: rules.Decision
    event: Event
    causes: context.Causes | None = None


async def record(runtime: Runtime, conn: AsyncConnection, decided: Sequence[Decided]) -> None:
    """Record each decided notice not recorded before (a replay, a redelivery or another replica decides the same
    ids), all in one append; and, in the same transaction, put what must go beyond the inbox in the outbox. A notice
    for no inbox (a link to choose a password) is no event on the bus: it is only in the outbox, once by its id."""
    known = await runtime.store.versions(conn, [str(d.decision.message_id) for d in decided])
    new = [d for d in decided if str(d.decision.message_id) not in known]
    if not new:
        return
    inbox = [d for d in new if "inbox" in d.decision.channels]
    if inbox:
        await runtime.append(
            conn, *(Append(str(d.decision.message_id), 0, [_recorded(d.decision)], causes=d.causes) for d in inbox)
        )
    now = runtime.clock.now()
    outward = [_outgoing(d.decision, d.event, now) for d in new if set(d.decision.channels) - {"inbox"}]
    if outward:
        await conn.execute(upsert(conn, OutboxMessage, ["notice_id"], set_=()), outward)


def _recorded(decision: rules.Decision) -> NoticeRecorded:
    return NoticeRecorded(
        notice_id=decision.message_id,
        recipient_id=decision.recipient,
        reason=decision.reason,
        channels=list(decision.channels),
        urgency=decision.urgency,
        county_code=decision.county_code,
        about_id=decision.about_id,
        cause_event_id=decision.cause_event_id,
    )


def _outgoing(decision: rules.Decision, event: Event, decided_at: datetime) -> dict[str, Any]:
    return {
        "notice_id": decision.message_id,
        "recipient_id": decision.recipient,
        "reason": decision.reason,
        "channels": [channel for channel in decision.channels if channel != "inbox"],
        "urgency": decision.urgency,
        "county_code": decision.county_code,
        "facts": {language: messages.facts(event, language, decision.county_code) for language in messages.LANGUAGES},
        "decided_at": decided_at,
    }


def _causes(envelope: CloudEvent) -> context.Causes:
    return context.of(envelope.correlationid, envelope.id, envelope.traceparent)


async def paired(conn: AsyncConnection, children: set[uuid.UUID]) -> dict[uuid.UUID | None, uuid.UUID]:
    """The volunteer paired with each of these children that has one."""
    if not children:
        return {}
    query = select(PairedVolunteer.child_id, PairedVolunteer.volunteer_id).where(PairedVolunteer.child_id.in_(children))
    return {child: volunteer for child, volunteer in (await conn.execute(query)).all()}


class RegistryReactions(Reactions):
    name: ClassVar[str] = "notifications-reactions"
    stream: ClassVar[str] = "REGISTRY"
    subjects: ClassVar[list[str]] = ["registry.child.>"]


class LinkReactions(Reactions):
    """Links to choose a password, to their owners. A consumer of its own, on the registry's link events only: the
    child reactions' consumer keeps its subjects (a changed filter would make it start over, or wait for a rebuild)."""

    name: ClassVar[str] = "notifications-links"
    stream: ClassVar[str] = "REGISTRY"
    subjects: ClassVar[list[str]] = ["registry.link.>"]


class MatchingReactions(Reactions):
    # A new name for more subjects than the first matching reactions followed: it starts at the stream's beginning
    # by itself, where the old one would wait for an operator's rebuild.
    name: ClassVar[str] = "notifications-matching-notices"
    stream: ClassVar[str] = "MATCHING"
    # whole aggregates, as all projections: a pairing's, a child's, a wish's and an aid distribution's events
    subjects: ClassVar[list[str]] = ["matching.pairing.>", "matching.child.>", "matching.wish.>", "matching.aid.>"]


class Pairings(Projection):
    """The paired-volunteer view, folded from matching's pairing events."""

    name: ClassVar[str] = "notifications-pairings"
    stream: ClassVar[str] = "MATCHING"
    subjects: ClassVar[list[str]] = ["matching.pairing.>"]
    views: ClassVar[list[Table]] = [PairedVolunteer.__table__]  # type: ignore[list-item]

    async def apply(self, conn: AsyncConnection, events: Sequence[Delivered]) -> None:
        for delivered in events:
            match delivered.event:
                case PairingConfirmed(child_id=child, volunteer_id=volunteer, pairing_id=pairing):
                    row = {"child_id": child, "volunteer_id": volunteer, "pairing_id": pairing}
                    await conn.execute(upsert(conn, PairedVolunteer, ["child_id"]), [row])
                case PairingClosed(pairing_id=pairing):
                    await conn.execute(delete(PairedVolunteer).where(PairedVolunteer.pairing_id == pairing))


class Deliveries(Projection):
    """The delivery log, folded from the service's own NOTIFICATIONS stream."""

    name: ClassVar[str] = "notifications-log"  # v2 notices into `notice_log`
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
