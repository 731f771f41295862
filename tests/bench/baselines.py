"""The denominators: what nats-py alone does on the same server (sync_always, as `make run` starts it) with messages
of our real size: publishing with many in flight, and a pull consumer fetching batches and acking each message."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from backbone.streams import stream_config
from contracts.cloudevents import CONTENT_TYPE, CloudEvent, dataschema, encode
from contracts.registry import ChildRegistered

STREAM, SUBJECT = "BENCH", "bench.child.registered"
IN_FLIGHT = 4000  # nats-py's own default bound of publish_async
FETCH_BATCH = 500  # as the projection consumers fetch (CONSUMER_BATCH_SIZE)


def real_message() -> bytes:
    """A ChildRegistered envelope as the relay sends one (every optional field set)."""
    child_id = uuid.uuid4()
    event = ChildRegistered(
        child_id=child_id,
        county_code="450325",
        category="left_behind",
        risk_level="medium",
        age_band="9-11",
        needs=["tutoring", "companionship"],
        languages=["zh"],
        guardianship="grandparents",
        township_key="0123456789abcdef",
        village_key="fedcba9876543210",
        gender="female",
    )
    return encode(
        CloudEvent(
            id=str(uuid.uuid4()),
            source="/registry",
            type=event.type_name,
            subject=str(child_id),
            time=datetime.now(UTC),
            dataschema=dataschema(event.type_name),
            data=event.model_dump(mode="json"),
            sequence=1,
            correlationid=str(uuid.uuid4()),
        )
    )


async def measure(nats_url: str, count: int) -> dict[str, float]:
    """{"publish": events/s, "fetch_ack": events/s, "bytes": message size}."""
    payload = real_message()
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream(publish_async_max_pending=IN_FLIGHT)
        await js.add_stream(stream_config(STREAM, ["bench.>"], 1))
        failed = 0

        def check(future: asyncio.Future[Any]) -> None:
            nonlocal failed
            if future.cancelled() or future.exception() is not None:
                failed += 1

        started = time.perf_counter()
        for i in range(count):
            headers = {"Nats-Msg-Id": f"bench-{i}", "Content-Type": CONTENT_TYPE}
            future = await js.publish_async(SUBJECT, payload, headers=headers, stream=STREAM)
            future.add_done_callback(check)
        await js.publish_async_completed()
        published = count / (time.perf_counter() - started)
        if failed:
            raise RuntimeError(f"{failed} of {count} baseline publishes failed")

        subscription = await js.pull_subscribe(
            SUBJECT,
            durable="bench-fetch-ack",
            stream=STREAM,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, max_ack_pending=FETCH_BATCH * 4
            ),
        )
        done, started = 0, time.perf_counter()
        while done < count:
            for msg in await subscription.fetch(FETCH_BATCH, timeout=10):
                await msg.ack()
                done += 1
        await client.flush()  # the last acks are out
        fetched = done / (time.perf_counter() - started)
        await subscription.unsubscribe()
        await js.delete_stream(STREAM)
        return {"publish": published, "fetch_ack": fetched, "bytes": float(len(payload))}
    finally:
        await client.close()
