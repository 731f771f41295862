"""The sender: from the outbox to people's phones and mailboxes, on a timer.

Each tick it (1) turns notices not yet expanded into messages, one a person and channel they take (a group looked
up at the registry, each person's preferences applied: quiet hours set when a routine SMS may go), and (2) sends
every message that is due, each channel on its own so a dead one holds up no other: when the channel has room the
message is claimed (a compare-and-set on its tries, state and due time: a replica that read it before anyone moved
it on takes it, any other leaves it), quiet hours are checked again, the words are rendered in the person's language
to the contact the registry gives now; then the outcome is recorded, and a `notifications.message.sent` or `.failed`
event appended with it.

Exactly once for the person: a message's id comes from its notice, person and channel, so deciding or expanding
again writes nothing new, and only one claim of a message's state succeeds. A try that never reported back (the
service died while sending) is tried again once its claim lapses (twice the channel's timeout and 5 s: longer than
any send may take), with the same id, until its tries are used up (then `failed`, `no_answer`): the SMS gateway
drops the copy by its idempotency key; an SMTP server has none, so an email whose sending completed in the instant
before the crash, its outcome not yet committed, is the one duplicate that can remain (with the same Message-ID,
which mail clients use to show it once).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from prometheus_client import Counter, Histogram
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone.runtime import Runtime
from backbone.servicetoken import ServiceToken
from backbone.store import ConcurrencyConflict, upsert
from contracts.notifications import MessageFailed, MessageSent, OutwardChannel
from services.notifications import messages, outbox, preferences
from services.notifications.channels import Channel, Outgoing, SendFailed
from services.notifications.channels.email import SmtpMailer
from services.notifications.channels.sms import SmsGateway
from services.notifications.directory import Contact, Directory, DirectoryUnavailable, is_link, well_formed
from services.notifications.outbox import Delivery, OutboxMessage
from services.notifications.settings import ChannelSettings

log = structlog.get_logger("notifications.sender")

SENT = Counter("notifications_messages_sent_total", "Messages a provider took", ["channel", "reason"])
FAILED = Counter("notifications_messages_failed_total", "Messages given up on", ["channel", "reason", "error"])
RETRIED = Counter("notifications_messages_retried_total", "Tries that failed and will be made again", ["channel"])
HELD = Counter("notifications_messages_held_total", "Messages held until the person's quiet hours end", ["channel"])
UNADDRESSED = Counter(
    "notifications_notices_unaddressed_total", "Notices with nobody to tell beyond the inbox", ["reason"]
)
LATENCY = Histogram(
    "notifications_delivery_seconds",
    "From the decision to the provider taking the message (quiet hours included)",
    ["channel"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 12 * 3600),
)
BATCH = 200  # notices expanded, or messages sent, in one step
IN_FLIGHT = 8  # sends at once through one channel


@dataclass(frozen=True)
class Outbound:
    """What the sender reaches out to: the registry's directory and the channels."""

    settings: ChannelSettings
    directory: Directory
    channels: Mapping[OutwardChannel, Channel]

    @classmethod
    def configured(cls, runtime: Runtime, settings: ChannelSettings | None = None) -> Outbound:
        """From the environment: REGISTRY_URL with the service's token (SERVICE_CLIENT_ID/SECRET), SMS_*, SMTP_*."""
        chosen = settings or ChannelSettings()
        if runtime.settings.environment == "production" and "console_url" not in chosen.model_fields_set:
            raise ValueError("CONSOLE_URL is not set: links would lead to this machine, not to the console")
        token = ServiceToken.from_settings(runtime.settings, runtime.clock)
        client = httpx.AsyncClient(base_url=chosen.registry_url, auth=token, timeout=10)
        return cls(chosen, Directory(client), {"sms": SmsGateway(chosen), "email": SmtpMailer(chosen)})

    async def close(self) -> None:
        await self.directory.close()
        for channel in self.channels.values():
            await channel.close()


class Sender:
    def __init__(self, runtime: Runtime, outbound: Outbound) -> None:
        self.runtime, self.outbound = runtime, outbound
        settings = outbound.settings
        self.first_wait = timedelta(seconds=settings.retry_first_seconds)
        self.max_attempts = settings.send_max_attempts
        # A try not reported back within this long is taken as lost: longer than any channel lets a send take.
        self.lease = timedelta(seconds=2 * max(settings.sms_timeout_seconds, settings.smtp_timeout_seconds) + 5)
        self._in_flight = {name: asyncio.Semaphore(IN_FLIGHT) for name in outbound.channels}

    async def tick(self) -> None:
        """Expand what was decided, then send what is due; a registry that cannot be reached leaves either for later,
        and does not keep the other from its work."""
        for step in (self.expand, self.send_due):
            try:
                while await step() == BATCH:
                    pass
            except DirectoryUnavailable as error:
                log.warning("sender.directory_unavailable", step=step.__name__, error=str(error))

    async def expand(self) -> int:
        """Notices not yet expanded become messages; returns how many notices were expanded."""
        async with self.runtime.db.read() as conn:
            query = select(OutboxMessage).where(OutboxMessage.expanded_at.is_(None))
            query = query.order_by(OutboxMessage.decided_at, OutboxMessage.notice_id).limit(BATCH)
            notices = (await conn.execute(query)).all()
        if not notices:
            return 0
        asked = sorted({notice.recipient_id for notice in notices if well_formed(notice.recipient_id)})
        found = await self.outbound.directory.lookup(asked) if asked else []
        people: dict[str, list[Contact]] = defaultdict(list)
        for contact in found:
            people[contact.recipient].append(contact)
        async with self.runtime.db.read() as conn:
            chosen = await preferences.of_many(conn, {contact.person_id for contact in found})
        now = self.runtime.clock.now()
        rows = []
        for notice in notices:
            if not people[notice.recipient_id]:  # nobody beyond the inbox: no account, nobody in the group, a dead link
                UNADDRESSED.labels(notice.reason).inc()
                log.info("sender.nobody_to_tell", reason=notice.reason, county_code=notice.county_code)
            for contact in people[notice.recipient_id]:
                rows += _messages(notice, contact, chosen.get(contact.person_id, preferences.DEFAULT), now)
        rows.sort(key=lambda row: row["message_id"])  # one order for every replica: no deadlock between two
        async with self.runtime.transaction() as conn:
            if rows:  # decided again by another replica at the same time: the same ids, written once
                new = upsert(conn, Delivery, ["message_id"], set_=()).returning(Delivery.channel, Delivery.held)
                for channel, held in (await conn.execute(new, rows)).all():
                    if held:
                        HELD.labels(channel).inc()
            ids = [notice.notice_id for notice in notices]
            done = OutboxMessage.notice_id.in_(ids) & OutboxMessage.expanded_at.is_(None)
            await conn.execute(update(OutboxMessage).where(done).values(expanded_at=now))
        return len(notices)

    async def send_due(self) -> int:
        """Send the messages due now, each claimed just before it goes, and record each outcome; returns how many
        were due."""
        now = self.runtime.clock.now()
        # Pending and due, or being sent by a try that never reported back.
        due = Delivery.status.in_(("pending", "sending")) & (Delivery.due_at <= now)
        async with self.runtime.db.read() as conn:
            query = (
                select(*Delivery.__table__.columns, OutboxMessage.facts, OutboxMessage.recipient_id)
                .join(OutboxMessage, OutboxMessage.notice_id == Delivery.notice_id)
                .where(due)
                .order_by(Delivery.due_at, Delivery.message_id)
                .limit(BATCH)
            )
            candidates = (await conn.execute(query)).all()
            chosen = await preferences.of_many(conn, {row.person_id for row in candidates})
        if not candidates:
            return 0
        found = await self.outbound.directory.lookup(sorted({_asked(row) for row in candidates}))
        contacts = {contact.recipient: contact for contact in found}
        outcomes = await asyncio.gather(
            *(
                self._deliver(row, contacts.get(_asked(row)), chosen.get(row.person_id, preferences.DEFAULT))
                for row in candidates
            ),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, Exception):  # the database away mid-way: the message is tried again later
                log.warning("sender.deliver_failed", error=type(outcome).__name__)
        return len(candidates)

    async def _deliver(self, row: Any, contact: Contact | None, chosen: preferences.Preferences) -> None:
        """One message: claimed when its channel has room (so a claim's lease counts from the send, not from the
        wait), sent, its outcome recorded; or held again for quiet hours, or given up when its last try was lost."""
        async with self._in_flight[row.channel]:
            now = self.runtime.clock.now()
            if row.status == "sending" and row.attempts >= self.max_attempts:
                # Its last try never reported back: no more tries (the gateway may have sent it; SMTP may not have).
                await self._failed(_Claimed(row, row.attempts), SendFailed("no_answer", retryable=False))
                return
            release = preferences.release_at(now, row.channel, row.urgency, chosen)
            if release > now:  # quiet hours came while it waited (a back-off, the registry away): it waits again
                await self._hold(row, release)
                return
            claimed = await self._claim(row, now)
            if claimed is None:
                return
            try:
                outgoing = _outgoing(row, contact, self.outbound.settings.console_url)
                provider_id = await self.outbound.channels[row.channel].send(outgoing)
            except SendFailed as failure:
                await self._failed(claimed, failure)
                return
            except Exception as error:  # a fault of ours: never the person's reason to miss the message
                log.error("sender.send_crashed", message_id=str(row.message_id), error=type(error).__name__)
                await self._failed(claimed, SendFailed("internal_error", retryable=True))
                return
        now = self.runtime.clock.now()
        event = MessageSent(
            message_id=row.message_id, notice_id=row.notice_id, person_id=row.person_id, channel=row.channel
        )
        if await self._settle(claimed, event, status="sent", sent_at=now, provider_id=provider_id[:120], error=None):
            SENT.labels(row.channel, row.reason).inc()
            LATENCY.labels(row.channel).observe(max(0.0, (now - row.decided_at).total_seconds()))

    async def _claim(self, row: Any, now: datetime) -> _Claimed | None:
        """Mark the message as being sent, unless anyone moved it on since it was read (another replica claimed,
        sent, failed or held it): a compare-and-set on everything that changes."""
        async with self.runtime.db.begin() as conn:
            taken = await conn.execute(
                update(Delivery)
                .where(*_unchanged(row))
                .values(status="sending", attempts=row.attempts + 1, due_at=now + self.lease)
            )
        return _Claimed(row, row.attempts + 1) if taken.rowcount == 1 else None

    async def _hold(self, row: Any, release: datetime) -> None:
        async with self.runtime.db.begin() as conn:
            held = await conn.execute(
                update(Delivery).where(*_unchanged(row)).values(status="pending", due_at=release, held=True)
            )
        if held.rowcount == 1:
            HELD.labels(row.channel).inc()

    async def _failed(self, claimed: _Claimed, failure: SendFailed) -> None:
        row = claimed.row
        if not outbox.gives_up(failure.retryable, claimed.attempts, self.max_attempts):
            again = outbox.retry_at(self.runtime.clock.now(), claimed.attempts, self.first_wait)
            async with self.runtime.db.begin() as conn:
                await conn.execute(
                    update(Delivery)
                    .where(
                        Delivery.message_id == row.message_id,
                        Delivery.attempts == claimed.attempts,
                        Delivery.status == "sending",
                    )
                    .values(status="pending", due_at=again, error=failure.reason)
                )
            RETRIED.labels(row.channel).inc()
            return
        event = MessageFailed(
            message_id=row.message_id,
            notice_id=row.notice_id,
            person_id=row.person_id,
            channel=row.channel,
            reason=failure.reason,
        )
        if await self._settle(claimed, event, status="failed", error=failure.reason):
            FAILED.labels(row.channel, row.reason, failure.reason).inc()
            log.warning("sender.failed", message_id=str(row.message_id), channel=row.channel, error=failure.reason)

    async def _settle(self, claimed: _Claimed, event: MessageSent | MessageFailed, **values: Any) -> bool:
        """Record the outcome with its event, unless the claim lapsed and another try took the message over."""
        try:
            async with self.runtime.transaction() as conn:
                current = await _current(conn, claimed.row.message_id)
                if current is None or current.attempts != claimed.attempts or current.status != "sending":
                    return False
                await self.runtime.advance(conn, Delivery, current, event, **values)
        except ConcurrencyConflict:  # another try settled it in the same instant
            return False
        return True


def _unchanged(row: Any) -> tuple[Any, ...]:
    """The message is as `row` read it."""
    return (
        Delivery.message_id == row.message_id,
        Delivery.attempts == row.attempts,
        Delivery.status == row.status,
        Delivery.due_at == row.due_at,
    )


def _asked(row: Any) -> str:
    """Whom to ask the registry for to reach a message's person: the person, or for a link the link's owner (who
    may not be able to sign in yet), with the link's token."""
    recipient: str = row.recipient_id
    return recipient if is_link(recipient) else row.person_id


def _outgoing(row: Any, contact: Contact | None, console_url: str) -> Outgoing:
    """The message in the person's words, to their address as the registry has it now; a link's, with the link."""
    token, kind = (contact.token, contact.kind) if contact else (None, None)  # a link's, while it works
    if (token is None or kind not in messages.LINK_PAGES) and is_link(row.recipient_id):
        raise SendFailed("link_not_valid", retryable=False)  # used, replaced by a newer one, expired, or disabled
    address = contact.address(row.channel) if contact else None
    if address is None:  # the person left, or no longer has that contact
        raise SendFailed("no_address", retryable=False)
    language = messages.language_of(row.language)
    facts = row.facts[language]
    if token is not None and kind is not None:
        facts = messages.with_link(facts, kind, console_url, token)
    said = messages.words(row.reason, language, facts)
    return Outgoing(
        message_id=row.message_id,
        to=address,
        text=said.sms if row.channel == "sms" else said.text,
        subject=said.subject,
        html=said.html,
        template_id=f"{row.reason}.{language}",
        params=facts,
        language=language,
        sms_segments=messages.sms_segments(row.reason),
    )


@dataclass(frozen=True)
class _Claimed:
    row: Any  # the message as read, with its notice's facts
    attempts: int  # this try's number


async def _current(conn: AsyncConnection, message_id: uuid.UUID) -> Any:
    return (await conn.execute(select(Delivery).where(Delivery.message_id == message_id))).first()


def _messages(notice: Any, contact: Contact, chosen: preferences.Preferences, now: datetime) -> list[dict[str, Any]]:
    """The messages a notice makes for one person: one a channel of the rule's that they take and can be reached
    by, due at once or when their quiet hours end."""
    rows = []
    # A link goes through every channel it can: its owner asked for it, or cannot sign in to choose otherwise.
    rule = tuple(notice.channels)
    channels = rule if is_link(notice.recipient_id) else preferences.channels_for(rule, chosen)
    for channel in channels:
        if channel == "inbox" or contact.address(channel) is None:
            continue
        release = preferences.release_at(now, channel, notice.urgency, chosen)
        rows.append(
            {
                "message_id": outbox.message_id(notice.notice_id, contact.person_id, channel),
                "notice_id": notice.notice_id,
                "person_id": contact.person_id,
                "channel": channel,
                "reason": notice.reason,
                "urgency": notice.urgency,
                "county_code": notice.county_code,
                "language": chosen.language,
                "status": "pending",
                "attempts": 0,
                "held": release > now,
                "due_at": release,
                "decided_at": notice.decided_at,
                "version": 0,
            }
        )
    return rows
