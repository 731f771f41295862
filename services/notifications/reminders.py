"""Reminders: the rules told before a deadline (services/notifications/rules.py, `before`): a visit due tomorrow, a
wish claim about to lapse, a volunteer's vetting step or training expiring in 30 and in 7 days and expired.

Each thing with a deadline (a child's next visit, a wish's claim, a volunteer's vetting step, their training) is one
row, folded from the event that set the deadline and dropped when it no longer holds (the visit made or moved, the
claim fulfilled or given up, the step recorded again, the volunteer erased). A timer tells, for each row whose next
reminder is due, the latest reminder due by now (a service down for a week sends the 7-day reminder, not the 30-day
one too), then moves the row on to its next reminder, or drops it. A reminder's id comes from the event and its
offset: told once, whatever replica or rebuild decides it again."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, String, Table, Uuid, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from backbone.database import UtcDateTime
from backbone.projection import Delivered, Projection
from backbone.runtime import Runtime
from backbone.store import upsert
from contracts.catalogue import CATALOGUE, Event
from contracts.matching import ChildVisitDue, WishClaimed, WishFulfilled, WishReleased, WishWithdrawn
from contracts.volunteers import (
    VolunteerPersonalDataErased,
    VolunteerRegistered,
    VolunteerScreeningRecorded,
    VolunteerTrainingRecorded,
)
from services.notifications import rules
from services.notifications.notices import Decided, paired, record
from services.notifications.tables import Views


class _Deadline:
    """A thing with a deadline the rules remind of: the event that set it (its data has no one's name or contact)."""

    key: Mapped[str] = mapped_column(String(120), primary_key=True)  # "visit:<child>", "claim:<wish>", …
    event_type: Mapped[str] = mapped_column(String(80))
    event_data: Mapped[dict[str, Any]] = mapped_column(JSON)
    cause_event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    county_code: Mapped[str] = mapped_column(String(6))
    next_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)  # when its next reminder is due


class MatchingDeadline(_Deadline, Views):
    __tablename__ = "matching_deadlines"


class VolunteerDeadline(_Deadline, Views):
    __tablename__ = "volunteer_deadlines"


class VolunteerCounty(Views):
    """Where each volunteer serves: their vetting events do not say, and the coordinators told are that county's."""

    __tablename__ = "volunteer_counties"

    volunteer_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    county_code: Mapped[str] = mapped_column(String(6))


async def _keep(conn: AsyncConnection, model: Any, key: str, delivered: Delivered, county: str) -> None:
    """The deadline `delivered` sets, reminded of from its first reminder on (none: nothing to keep)."""
    first = rules.reminders(delivered.event)
    if not first:
        await conn.execute(delete(model).where(model.key == key))
        return
    row = {
        "key": key,
        "event_type": delivered.event.type_name,
        "event_data": delivered.event.model_dump(mode="json"),
        "cause_event_id": uuid.UUID(delivered.envelope.id),
        "county_code": county,
        "next_at": first[0].at,
    }
    await conn.execute(upsert(conn, model, ["key"]), [row])


class MatchingReminders(Projection):
    name: ClassVar[str] = "notifications-matching-reminders"
    stream: ClassVar[str] = "MATCHING"
    subjects: ClassVar[list[str]] = ["matching.child.>", "matching.wish.>"]
    views: ClassVar[list[Table]] = [MatchingDeadline.__table__]  # type: ignore[list-item]

    async def apply(self, conn: AsyncConnection, events: Sequence[Delivered]) -> None:
        for delivered in events:
            match delivered.event:
                case ChildVisitDue(child_id=child, county_code=county):  # a new due date, or none
                    await _keep(conn, MatchingDeadline, f"visit:{child}", delivered, county)
                case WishClaimed(wish_id=wish, county_code=county):
                    await _keep(conn, MatchingDeadline, f"claim:{wish}", delivered, county)
                case WishFulfilled(wish_id=wish) | WishReleased(wish_id=wish) | WishWithdrawn(wish_id=wish):
                    await conn.execute(delete(MatchingDeadline).where(MatchingDeadline.key == f"claim:{wish}"))


class VolunteerReminders(Projection):
    name: ClassVar[str] = "notifications-volunteer-reminders"
    stream: ClassVar[str] = "REGISTRY"
    subjects: ClassVar[list[str]] = ["registry.volunteer.>"]
    views: ClassVar[list[Table]] = [VolunteerDeadline.__table__, VolunteerCounty.__table__]  # type: ignore[list-item]

    async def apply(self, conn: AsyncConnection, events: Sequence[Delivered]) -> None:
        for delivered in events:
            match delivered.event:
                case VolunteerRegistered(volunteer_id=volunteer, county_code=county):
                    row = {"volunteer_id": volunteer, "county_code": county}
                    await conn.execute(upsert(conn, VolunteerCounty, ["volunteer_id"]), [row])
                case VolunteerScreeningRecorded(volunteer_id=volunteer, step=step):  # the step's latest record counts
                    county = await _county_of(conn, volunteer)
                    await _keep(conn, VolunteerDeadline, f"screening:{volunteer}:{step}", delivered, county)
                case VolunteerTrainingRecorded(volunteer_id=volunteer):  # so does the latest training
                    county = await _county_of(conn, volunteer)
                    await _keep(conn, VolunteerDeadline, f"training:{volunteer}", delivered, county)
                case VolunteerPersonalDataErased(volunteer_id=volunteer):  # gone from the programme: nobody to remind
                    await conn.execute(delete(VolunteerDeadline).where(VolunteerDeadline.key.like(f"%:{volunteer}%")))


async def _county_of(conn: AsyncConnection, volunteer: uuid.UUID) -> str:
    county = await conn.scalar(select(VolunteerCounty.county_code).where(VolunteerCounty.volunteer_id == volunteer))
    if county is None:  # the registration comes first in the volunteer's own stream, which is applied in order
        raise LookupError("a volunteer's vetting arrived before their registration")
    return county


async def remind_due(runtime: Runtime) -> int:
    """Tell the reminders due by now; returns how many deadlines were looked at."""
    return sum([await _remind(runtime, model) for model in (MatchingDeadline, VolunteerDeadline)])


async def _remind(runtime: Runtime, model: Any) -> int:
    now = runtime.clock.now()
    due = select(model).where(model.next_at <= now).order_by(model.next_at)

    async def tell(conn: AsyncConnection, row: Any) -> None:
        event: Event = CATALOGUE[row.event_type].model_validate(row.event_data)
        ahead = rules.reminders(event)
        told = [reminder for reminder in ahead if reminder.at <= now][-1:]
        deadline = rules.deadline_of(event)
        for reminder in told:
            if reminder.before and deadline is not None and now >= deadline:
                continue  # too late to remind of what is coming: it has come
            volunteer = None
            if isinstance(event, ChildVisitDue):  # the visit is the paired volunteer's to make
                volunteer = (await paired(conn, {event.child_id})).get(event.child_id)
            occasion = rules.Occasion(before=reminder.before, county_code=row.county_code)
            decisions = rules.decide(event, row.cause_event_id, volunteer, occasion)
            await record(runtime, conn, [Decided(decision, event) for decision in decisions])
        later = [reminder for reminder in ahead if reminder.at > now]
        if later:
            await conn.execute(update(model).where(model.key == row.key).values(next_at=later[0].at))
        else:
            await conn.execute(delete(model).where(model.key == row.key))

    return await runtime.work_through(due, tell)
