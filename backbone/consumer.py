"""Durable JetStream pull consumers that feed a projection in batches, with retries and a dead-letter stream.

One transaction per batch: the view changes and the tracking rows commit together, then the batch is acked.
If the batch fails, each event is retried on its own, so one poison event never holds back the others; after
`max_deliveries` attempts it goes to the dead-letter stream with its error and the aggregate moves on.
An unreachable database is not the events' fault: the batch is held and retried, and nothing is dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from sqlalchemy.exc import InterfaceError, OperationalError

from backbone import context
from backbone.database import Database
from backbone.metrics import CONSUMER_LAG, EVENTS_CONSUMED, EVENTS_DEAD_LETTERED, PROJECTION_REPLAYING
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
from contracts import CloudEvent, MalformedMessage, decode

log = structlog.get_logger("consumer")
UNAVAILABLE = (OperationalError, InterfaceError, ConnectionError, TimeoutError)
UNBOUNDED = -1
# Once an event has come, how long a fetch goes on gathering the ones right behind it into the same batch.
GATHER_SECONDS = 0.005


class Unavailable(Exception):
    """The database could not be reached; the batch is kept and tried again, not blamed."""


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


def envelope_of(msg: Msg) -> CloudEvent | None:
    """The envelope alone (aggregate, version, correlation), even when the data is of a type we cannot read."""
    try:
        return decode(msg.data)
    except MalformedMessage:
        return None


class SubjectsChanged(Exception):
    """The projection's durable consumer follows other subjects than the projection does now."""


class ProjectionConsumer:
    def __init__(
        self,
        db: Database,
        js: JetStreamContext,
        projection: Projection,
        *,
        batch_size: int = 500,
        max_deliveries: int = 5,
        warn_after_waits: int = 600,
        fetch_timeout: float = 1.0,
        ack_wait: float = 30.0,
        notice_every: float = 30.0,
        committed: Callable[[], object] | None = None,
    ) -> None:
        self.db, self.js, self.projection = db, js, projection
        self.committed = committed  # told after each batch that changed something commits (e.g. to wake the relay)
        self.batch_size, self.max_deliveries, self.warn_after_waits = batch_size, max_deliveries, warn_after_waits
        self.fetch_timeout, self.ack_wait, self.notice_every = fetch_timeout, ack_wait, notice_every
        self._lag_checked = self._replay_reported = 0.0
        self._stopping = asyncio.Event()
        self._waiting: asyncio.Future[list[Msg]] | None = None  # a fetch waiting for messages, if any
        self.blocked: str | None = None  # why it cannot consume until an operator acts, if so

    def stop(self) -> None:
        """Finish the batch in hand, then return from `run`; a fetch still waiting for messages is called off."""
        self._stopping.set()
        if self._waiting is not None:
            self._waiting.cancel()

    def config(self, generation: int, start: int | None = None) -> ConsumerConfig:
        """The durable consumer of a generation: from the first event, or from stream sequence `start`."""
        return ConsumerConfig(
            durable_name=durable_name(self.projection, generation),
            deliver_policy=DeliverPolicy.ALL if start is None else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            # Our own count decides dead-lettering (max_deliveries for failures); an event whose predecessor has not
            # arrived yet waits for as long as it takes (the relay never skips one), so the server must never give
            # up on redelivering it: no bound of its own.
            max_deliver=UNBOUNDED,
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
        """Bind to the generation's durable consumer; create it (from the first event) if it does not exist.

        A durable that follows other subjects than the projection does now (a newer version follows more) would never
        deliver the events it lacks: it is refused, and the service reports itself not ready, until an operator
        rebuilds the projection (a new generation, replayed with the hooks held back, then followed live)."""
        name = durable_name(self.projection, generation)
        try:
            info = await self.js.consumer_info(self.projection.stream, name)
        except NotFoundError:
            await self.js.add_consumer(self.projection.stream, self.config(generation))
        else:
            followed = sorted(s for s in info.config.filter_subjects or [info.config.filter_subject] if s)
            if followed != sorted(self.projection.subjects):
                self.blocked = f"follows {followed}, not {sorted(self.projection.subjects)}: rebuild it"
                raise SubjectsChanged(self.blocked)
            if info.config.max_deliver != UNBOUNDED:  # made by an older version, which let the server give up
                await self.js.add_consumer(self.projection.stream, replace(info.config, max_deliver=UNBOUNDED))
        self.blocked = None
        return await self.js.pull_subscribe_bind(durable=name, stream=self.projection.stream)

    async def run(self) -> None:
        """Consume until stopped; follows the projection into a new generation when it is rebuilt."""
        pause = 0.1
        while not self._stopping.is_set():
            try:
                await self._consume_generation()
                pause = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("consumer.retrying", projection=self.projection.name, error=repr(error), pause=pause)
                await self._sleep(pause)
                pause = min(pause * 2, 5.0)

    async def _consume_generation(self) -> None:
        current = await self.state()
        PROJECTION_REPLAYING.labels(self.projection.name).set(int(current.replaying))
        if current.replaying:  # a rebuild is replaying the stream; it hands over when done
            if time.monotonic() - self._replay_reported > self.notice_every:
                self._replay_reported = time.monotonic()
                log.warning("consumer.waiting_for_rebuild", projection=self.projection.name)
            await self._sleep(self.fetch_timeout)
            return
        generation = current.generation
        try:
            subscription = await self.subscribe(generation)
        except SubjectsChanged as changed:
            if time.monotonic() - self._replay_reported > self.notice_every:
                self._replay_reported = time.monotonic()
                log.error("consumer.subjects_changed", projection=self.projection.name, problem=str(changed))
            await self._sleep(self.fetch_timeout)
            return
        try:
            if (await self.state()).generation != generation:
                with contextlib.suppress(NotFoundError):  # reset meanwhile: do not leave the old durable behind
                    await self.js.delete_consumer(self.projection.stream, durable_name(self.projection, generation))
                return
            while not self._stopping.is_set():
                self._waiting = asyncio.ensure_future(self._next_batch(subscription))
                try:
                    msgs = await self._waiting
                except asyncio.CancelledError:
                    if self._stopping.is_set() and not _cancelling():
                        return  # called off by stop(); anything it had received is redelivered after ack_wait
                    raise
                except TimeoutError:
                    if (await self.state()).generation != generation:
                        return
                    await self._report_lag(subscription, force=True)
                    continue
                finally:
                    self._waiting = None
                try:
                    await self.handle(msgs, generation)
                except StaleGeneration:
                    return
                await self._report_lag(subscription)
        finally:
            await subscription.unsubscribe()

    async def _next_batch(self, subscription: JetStreamContext.PullSubscription) -> list[Msg]:
        """Wait up to `fetch_timeout` for the next event, then take what is right behind it, up to a batch: a batch
        goes as soon as it has what is there (a fetch of a whole batch would linger until it is full)."""
        first = await subscription.fetch(1, timeout=self.fetch_timeout)
        if self.batch_size == 1:
            return first
        try:
            return first + await subscription.fetch(self.batch_size - 1, timeout=GATHER_SECONDS)
        except TimeoutError:
            return first

    async def handle(self, msgs: Sequence[Msg], generation: int) -> None:
        """Apply a fetched batch, then ack what is done, hold back what waits, retry or dead-letter failures."""
        pause = 0.5
        while True:
            try:
                outcome = await self.apply(msgs, generation)
                break
            except Unavailable as error:
                log.warning("consumer.database_unavailable", projection=self.projection.name, error=repr(error))
                if self._stopping.is_set():
                    return  # unacked: redelivered after ack_wait, to this or another replica
                for msg in msgs:
                    await msg.in_progress()  # keep them ours while we wait, without counting a delivery
                await self._sleep(pause)
                pause = min(pause * 2, self.ack_wait / 3)
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
        except (StaleGeneration, Unavailable):
            raise
        except Exception:
            outcome = Outcome()
            for msg, delivered in readable:
                try:
                    single = await self._apply([(msg, delivered)], generation)
                except (StaleGeneration, Unavailable):
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
        try:
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
                _bind_causes(fresh)
                await self.projection.apply(conn, fresh)
                await save_cursors(conn, name, advanced)
        except UNAVAILABLE as error:
            raise Unavailable(repr(error)) from error
        finally:
            context.clear()
        EVENTS_CONSUMED.labels(name).inc(len(fresh))
        if fresh and self.committed is not None:
            self.committed()
        return outcome

    async def _wait_for_predecessor(self, msg: Msg, generation: int) -> None:
        """Hold an event back until its aggregate's earlier version has been applied. It is never dead-lettered for
        that: the earlier version may be late (a relay that cannot publish for a while), never missing, and moving
        the aggregate past it would drop it when it comes. A long wait is logged, so that it can be looked at."""
        deliveries = msg.metadata.num_delivered
        if deliveries % self.warn_after_waits == 0:
            log.warning(
                "consumer.predecessor_late",
                projection=self.projection.name,
                stream_sequence=msg.metadata.sequence.stream,
                waits=deliveries,
            )
        await msg.nak(delay=0.05 if deliveries < 5 else 0.5)

    async def _retry_or_dead_letter(self, msg: Msg, error: Exception, generation: int) -> None:
        deliveries = msg.metadata.num_delivered
        envelope = envelope_of(msg)
        log.warning(
            "consumer.event_failed",
            projection=self.projection.name,
            correlation_id=context.safe_id(envelope.correlationid) if envelope else None,
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
        envelope = envelope_of(msg)
        if envelope is not None:  # even an event of a type we cannot read yet must not block its aggregate
            async with self.db.begin() as conn:
                await begin_batch(conn, name, generation)
                known = await cursors(conn, name, {envelope.subject})
                if envelope.sequence > known.get(envelope.subject, 0):
                    await save_cursors(conn, name, {envelope.subject: envelope.sequence})
        await msg.term()
        EVENTS_DEAD_LETTERED.labels(name).inc()
        log.error(
            "consumer.dead_lettered",
            projection=name,
            stream_sequence=msg.metadata.sequence.stream,
            correlation_id=context.safe_id(envelope.correlationid) if envelope else None,
            reason=reason,
        )

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _report_lag(self, subscription: JetStreamContext.PullSubscription, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._lag_checked > 1.0:
            self._lag_checked = now
            info = await subscription.consumer_info()
            CONSUMER_LAG.labels(self.projection.name).set(info.num_pending or 0)


def _cancelling() -> bool:
    """Whether the running task itself is being cancelled (not just something it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _bind_causes(events: Sequence[Delivered]) -> None:
    """Events a projection's reaction appends, and its log lines, carry the correlation of what it reacts to, and
    name as their cause the batch's last event: the reaction answers the state after it."""
    last = events[-1].envelope if events else None
    context.caused_by(
        {delivered.envelope.correlationid for delivered in events},
        last.id if last else None,
        last.traceparent if last else None,
    )
