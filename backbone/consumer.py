"""Durable JetStream pull consumers that feed a projection in batches, with retries and a dead-letter stream.

One transaction per batch: the view changes and the tracking rows commit together, then the batch is acked.
If the batch fails, each event is retried on its own, so one poison event never holds back the others; after
`max_deliveries` attempts it goes to the dead-letter stream with its error and the aggregate moves on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from backbone.database import Database
from backbone.metrics import CONSUMER_LAG, EVENTS_CONSUMED, EVENTS_DEAD_LETTERED
from backbone.projection import (
    Delivered,
    Projection,
    StaleGeneration,
    State,
    begin_batch,
    cursors,
    register,
    save_cursors,
    state,
)
from backbone.streams import DEADLETTER
from contracts import MalformedMessage, decode

log = structlog.get_logger("consumer")


@dataclass
class Outcome:
    done: list[Msg] = field(default_factory=list)  # applied now or before: ack
    waiting: list[Msg] = field(default_factory=list)  # an earlier version of the aggregate is still missing
    failed: list[tuple[Msg, Exception]] = field(default_factory=list)  # unreadable, or the projection raised


def durable_name(projection: Projection, generation: int) -> str:
    return f"{projection.name}-g{generation}"


def read(msg: Msg) -> Delivered:
    envelope = decode(msg.data)
    return Delivered(envelope, envelope.event(), msg.metadata.sequence.stream)


def correlation_of(msg: Msg) -> str | None:
    """For logs: the correlation id the event carries, if it can be read at all."""
    try:
        return decode(msg.data).correlationid
    except MalformedMessage:
        return None


class ProjectionConsumer:
    def __init__(
        self,
        db: Database,
        js: JetStreamContext,
        projection: Projection,
        *,
        batch_size: int = 500,
        max_deliveries: int = 5,
        max_waits: int = 600,
        fetch_timeout: float = 1.0,
        ack_wait: float = 30.0,
    ) -> None:
        self.db, self.js, self.projection = db, js, projection
        self.batch_size, self.max_deliveries, self.max_waits = batch_size, max_deliveries, max_waits
        self.fetch_timeout, self.ack_wait = fetch_timeout, ack_wait
        self._lag_checked = 0.0
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Finish the batch in hand, then return from `run`."""
        self._stopping.set()

    def config(self, generation: int, start: int | None = None) -> ConsumerConfig:
        """The durable consumer of a generation: from the first event, or from stream sequence `start`."""
        return ConsumerConfig(
            durable_name=durable_name(self.projection, generation),
            deliver_policy=DeliverPolicy.ALL if start is None else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            # Our own count decides dead-lettering (max_deliveries for failures, max_waits for a missing
            # predecessor); the server's bound sits above both so that it never drops a message silently.
            max_deliver=max(self.max_deliveries, self.max_waits) + 10,
            max_ack_pending=self.batch_size * 4,
            filter_subjects=self.projection.subjects,
        )

    async def state(self) -> State:
        """The projection's generation and whether a rebuild is replaying it; registers it on first use."""
        async with self.db.read() as conn:
            found = await state(conn, self.projection.name)
        if found is not None:
            return found
        async with self.db.begin() as conn:
            return await register(conn, self.projection.name)

    async def subscribe(self, generation: int) -> JetStreamContext.PullSubscription:
        """Bind to the generation's durable consumer; create it (from the first event) if it does not exist."""
        name = durable_name(self.projection, generation)
        try:
            await self.js.consumer_info(self.projection.stream, name)
        except NotFoundError:
            await self.js.add_consumer(self.projection.stream, self.config(generation))
        return await self.js.pull_subscribe_bind(durable=name, stream=self.projection.stream)

    async def run(self) -> None:
        """Consume forever; follows the projection into a new generation when it is rebuilt."""
        pause = 0.1
        while not self._stopping.is_set():
            try:
                await self._consume_generation()
                pause = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("consumer.retrying", projection=self.projection.name, error=repr(error), pause=pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)

    async def _consume_generation(self) -> None:
        current = await self.state()
        if current.replaying:
            await asyncio.sleep(self.fetch_timeout)  # a rebuild is replaying the stream; it hands over when done
            return
        generation = current.generation
        subscription = await self.subscribe(generation)
        try:
            while not self._stopping.is_set():
                try:
                    msgs = await subscription.fetch(self.batch_size, timeout=self.fetch_timeout)
                except nats.errors.TimeoutError:
                    if (await self.state()).generation != generation:
                        return
                    await self._report_lag(subscription, force=True)
                    continue
                try:
                    await self.handle(msgs, generation)
                except StaleGeneration:
                    return
                await self._report_lag(subscription)
        finally:
            await subscription.unsubscribe()

    async def handle(self, msgs: Sequence[Msg], generation: int) -> None:
        """Apply a fetched batch, then ack what is done, hold back what waits, retry or dead-letter failures."""
        outcome = await self.apply(msgs, generation)
        for msg in outcome.done:
            await msg.ack()
        for msg in outcome.waiting:
            await self._wait_for_predecessor(msg, generation)
        for msg, problem in outcome.failed:
            await self._retry_or_dead_letter(msg, problem, generation)

    async def apply(self, msgs: Sequence[Msg], generation: int) -> Outcome:
        """All in one transaction, or, if that fails, one message at a time so that only the culprit fails."""
        readable: list[tuple[Msg, Delivered]] = []
        unreadable: list[tuple[Msg, Exception]] = []
        for msg in msgs:
            try:
                readable.append((msg, read(msg)))
            except MalformedMessage as error:
                unreadable.append((msg, error))
        try:
            outcome = await self._apply(readable, generation)
        except StaleGeneration:
            raise
        except Exception:
            outcome = Outcome()
            for msg, delivered in readable:
                try:
                    single = await self._apply([(msg, delivered)], generation)
                except StaleGeneration:
                    raise
                except Exception as error:
                    outcome.failed.append((msg, error))
                    continue
                outcome.done += single.done
                outcome.waiting += single.waiting
        outcome.failed += unreadable
        return outcome

    async def _apply(self, batch: Sequence[tuple[Msg, Delivered]], generation: int) -> Outcome:
        outcome = Outcome()
        if not batch:
            return outcome
        name = self.projection.name
        async with self.db.begin() as conn:
            await begin_batch(conn, name, generation)
            known = await cursors(conn, name, {delivered.aggregate_id for _, delivered in batch})
            fresh: list[Delivered] = []
            advanced: dict[str, int] = {}
            for msg, delivered in batch:
                last = known.get(delivered.aggregate_id, 0)
                if delivered.version <= last:
                    outcome.done.append(msg)  # a redelivery: its effect is already in the view
                elif delivered.version == last + 1:
                    fresh.append(delivered)
                    outcome.done.append(msg)
                    known[delivered.aggregate_id] = advanced[delivered.aggregate_id] = delivered.version
                else:
                    outcome.waiting.append(msg)
            await self.projection.apply(conn, fresh)
            await save_cursors(conn, name, advanced)
        EVENTS_CONSUMED.labels(name).inc(len(fresh))
        return outcome

    async def _wait_for_predecessor(self, msg: Msg, generation: int) -> None:
        deliveries = msg.metadata.num_delivered
        if deliveries >= self.max_waits:
            await self.dead_letter(msg, "an earlier version of the aggregate never arrived", generation)
        else:
            await msg.nak(delay=0.05 if deliveries < 5 else 0.5)

    async def _retry_or_dead_letter(self, msg: Msg, error: Exception, generation: int) -> None:
        deliveries = msg.metadata.num_delivered
        log.warning(
            "consumer.event_failed",
            projection=self.projection.name,
            correlation_id=correlation_of(msg),
            stream_sequence=msg.metadata.sequence.stream,
            deliveries=deliveries,
            error=repr(error),
        )
        if deliveries >= self.max_deliveries:
            await self.dead_letter(msg, repr(error), generation)
        else:
            await msg.nak(delay=min(0.2 * 2 ** (deliveries - 1), 10.0))

    async def dead_letter(self, msg: Msg, reason: str, generation: int) -> None:
        """Park the message in DEADLETTER with why, let its aggregate move past it, and stop redelivering."""
        name = self.projection.name
        headers = {
            "Nats-Msg-Id": f"{name}:{msg.metadata.stream}:{msg.metadata.sequence.stream}",
            "Projection": name,
            "Original-Stream": msg.metadata.stream,
            "Original-Subject": msg.subject,
            "Original-Sequence": str(msg.metadata.sequence.stream),
            "Deliveries": str(msg.metadata.num_delivered),
            "Error": reason[:2000],
        }
        await self.js.publish(f"deadletter.{name}", msg.data, headers=headers, stream=DEADLETTER)
        try:
            delivered = read(msg)
        except MalformedMessage:
            delivered = None
        if delivered is not None:
            async with self.db.begin() as conn:
                await begin_batch(conn, name, generation)
                known = await cursors(conn, name, {delivered.aggregate_id})
                if delivered.version > known.get(delivered.aggregate_id, 0):
                    await save_cursors(conn, name, {delivered.aggregate_id: delivered.version})
        await msg.term()
        EVENTS_DEAD_LETTERED.labels(name).inc()
        log.error(
            "consumer.dead_lettered",
            projection=name,
            stream_sequence=msg.metadata.sequence.stream,
            correlation_id=correlation_of(msg),
            reason=reason,
        )

    async def _report_lag(self, subscription: JetStreamContext.PullSubscription, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._lag_checked > 1.0:
            self._lag_checked = now
            info = await subscription.consumer_info()
            CONSUMER_LAG.labels(self.projection.name).set(info.num_pending or 0)
