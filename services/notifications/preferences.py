"""How each person is told: their outward channels, language and quiet hours (Asia/Shanghai), their record, and
when a message may go under them (pure: the moment is passed in)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import JSON, Integer, String, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from backbone.clock import PROGRAMME_TIMEZONE
from backbone.database import UtcDateTime
from backbone.runtime import Runtime
from backbone.store import Append, upsert
from contracts.notifications import Channel, Language, PreferencesSet, Urgency
from services.notifications.tables import Views


@dataclass(frozen=True)
class Preferences:
    """Until a person chooses: SMS and email, in Chinese, no routine SMS from 22:00 to 07:00."""

    channels: tuple[Channel, ...] = ("sms", "email")
    language: Language = "zh-CN"
    quiet_from: str = "22:00"
    quiet_until: str = "07:00"


DEFAULT = Preferences()
PREFERENCE_STREAMS = uuid.UUID("9c4e2b71-3f5a-4d8e-b1c6-7a2d9e0f4b35")


def release_at(now: datetime, channel: Channel, urgency: Urgency, chosen: Preferences) -> datetime:
    """When a message may go: at once, unless it is a routine SMS in the quiet hours, then when they end (an email
    waits in the inbox unread at night anyway; an escalation wakes whoever it must)."""
    if channel != "sms" or urgency == "urgent" or chosen.quiet_from == chosen.quiet_until:
        return now
    local = now.astimezone(PROGRAMME_TIMEZONE)
    start, end = time.fromisoformat(chosen.quiet_from), time.fromisoformat(chosen.quiet_until)
    clock = local.time()
    quiet = start <= clock < end if start < end else (clock >= start or clock < end)  # a window over midnight
    if not quiet:
        return now
    ends = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if ends <= local:
        ends += timedelta(days=1)
    return ends.astimezone(UTC)


def channels_for(rule: tuple[Channel, ...], chosen: Preferences) -> list[Channel]:
    """The rule's channels the person takes, in the rule's order; the inbox, the log of what they were told, always."""
    return [channel for channel in rule if channel == "inbox" or channel in chosen.channels]


class PreferenceRecord(Views):
    """A person's choice, written in the transaction that appends it (the service's own record, not a view: a
    rebuild of the views leaves it)."""

    __tablename__ = "preferences"

    person_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    channels: Mapped[list[Any]] = mapped_column(JSON)
    language: Mapped[str] = mapped_column(String(8))
    quiet_from: Mapped[str] = mapped_column(String(5))
    quiet_until: Mapped[str] = mapped_column(String(5))
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


async def of(conn: AsyncConnection, person_id: str) -> Preferences:
    row = (await conn.execute(select(PreferenceRecord).where(PreferenceRecord.person_id == person_id))).first()
    return DEFAULT if row is None else _chosen(row)


def _chosen(row: Any) -> Preferences:
    return Preferences(tuple(row.channels), row.language, row.quiet_from, row.quiet_until)


async def of_many(conn: AsyncConnection, people: Iterable[str]) -> dict[str, Preferences]:
    """The choices of those of `people` who made one."""
    query = select(PreferenceRecord).where(PreferenceRecord.person_id.in_(list(people)))
    return {row.person_id: _chosen(row) for row in await conn.execute(query)}


async def choose(runtime: Runtime, person_id: str, chosen: Preferences) -> None:
    """Record `chosen` for the person: an event on their stream and their record, in one transaction."""
    event = PreferencesSet(
        person_id=person_id,
        channels=[channel for channel in chosen.channels if channel != "inbox"],
        language=chosen.language,
        quiet_from=chosen.quiet_from,
        quiet_until=chosen.quiet_until,
    )
    values = event.model_dump(exclude={"person_id"})
    stream = str(uuid.uuid5(PREFERENCE_STREAMS, person_id))  # a person's id names another service's stream too
    async with runtime.transaction() as conn:
        version = await runtime.store.version(conn, stream)
        await runtime.append(conn, Append(stream, version, [event]))  # two choices at once: one is a 409
        record = {"person_id": person_id, **values, "version": version + 1, "updated_at": runtime.clock.now()}
        await conn.execute(upsert(conn, PreferenceRecord, ["person_id"]), [record])
