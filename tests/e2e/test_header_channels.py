"""`X-Correlation-ID` and `traceparent` are no way in for personal data: a name or a phone sent in them, or carried by
an old event on the bus, reaches no answer, log line, stream, database file or NATS store file of any service."""

from __future__ import annotations

import json
import secrets
import uuid
from itertools import cycle
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from tests.e2e.conftest import System
from tests.e2e.test_no_personal_data_on_the_bus import STREAMS, settled
from tests.e2e.test_walking_skeleton import XINGAN
from tests.helpers import auth, child_event, publish, read_stream, wait_until
from tests.integration.test_error_echo import NAME, PHONE, SOMEONE, answer_bytes, forms

pytestmark = pytest.mark.e2e
HOSTILE_IDS = [NAME, PHONE, f"guardian-{PHONE}-{NAME}", "0" * 21 + PHONE, f"wei-xiaofang-{PHONE}"]
HOSTILE_TRACES = [
    NAME,
    PHONE,
    f"00-{PHONE}-{NAME}-01",
    f"ff-a{'0' * 20}{PHONE}-00f067aa0ba902b7-01",  # version ff is forbidden
    f"00-{'0' * 32}-00000{PHONE}-01",  # an all-zero trace id
    f"00-a{'0' * 20}{PHONE}-{'0' * 16}-01",  # an all-zero parent id
]
GOOD_TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def found(raw: bytes) -> list[str]:
    return [secret for secret in (NAME, PHONE) if any(form in raw for form in forms(secret))]


def files(*roots: Path, pattern: str = "*") -> bytes:
    return b"".join(path.read_bytes() for root in roots for path in sorted(root.glob(pattern)) if path.is_file())


def database_files(system: System, *services: str) -> bytes:
    """Every file of each service's SQLite database: the main file, its -wal and -shm."""
    folder = system.services[services[0]].log.parent
    return b"".join(files(folder, pattern=f"{service}.db*") for service in services)


def store_files(system: System, *streams: str) -> bytes:
    """The NATS store's files: every stream's, or only those of `streams`."""
    if not streams:
        return files(system.nats.store_dir, pattern="**/*")
    return b"".join(files(system.nats.store_dir, pattern=f"**/streams/{stream}/**/*") for stream in streams)


def logs(system: System, *services: str) -> bytes:
    return b"".join(system.services[service].log.read_bytes() for service in services)


def raw(messages: list[Msg]) -> bytes:
    return b"".join(m.data + repr(m.headers).encode() for m in messages)


async def streams(system: System) -> dict[str, list[Msg]]:
    client = await nats.connect(system.nats.url)
    try:
        return {stream: await read_stream(client.jetstream(), stream) for stream in STREAMS}
    finally:
        await client.close()


async def until_settled(system: System, notices: int) -> None:
    client = await nats.connect(system.nats.url)
    try:
        js, seen = client.jetstream(), []
        await wait_until(lambda: settled(js, seen, notices), within=60, what="every stream to stop growing")
    finally:
        await client.close()


def envelopes(messages: list[Msg]) -> list[dict[str, Any]]:
    return [json.loads(m.data) for m in messages]


async def test_a_name_or_phone_in_the_headers_reaches_no_answer_log_stream_database_or_store(system: System) -> None:
    admin, coordinator = auth("admin"), auth("coordinator", [XINGAN])
    answers: list[httpx.Response] = []
    registered = 0
    async with (
        httpx.AsyncClient(base_url=system.url("registry"), timeout=30) as registry,
        httpx.AsyncClient(base_url=system.url("matching"), timeout=30) as matching,
        httpx.AsyncClient(base_url=system.url("notifications"), timeout=30) as notifications,
    ):
        # What a proxy or a client library sends is kept, echoed and carried on: the search below can see it.
        good_id, nginx_id = str(uuid.uuid4()), secrets.token_hex(16)
        for correlation_id in (good_id, nginx_id):
            headers = admin | {"X-Correlation-ID": correlation_id, "traceparent": GOOD_TRACE}
            created = await registry.post("/children", json=SOMEONE, headers=headers)
            assert created.status_code == 201, created.text
            assert created.headers["X-Correlation-ID"] == correlation_id
            registered += 1

        for correlation_id, traceparent in zip(HOSTILE_IDS, cycle(HOSTILE_TRACES), strict=False):
            sent = {"X-Correlation-ID": correlation_id.encode(), "traceparent": traceparent.encode()}
            list_children = {"county_code": XINGAN}
            for answer in (
                await registry.post("/children", json=SOMEONE, headers=admin | sent),
                await registry.get("/children", params=list_children, headers=admin | sent),
                await registry.post("/children", json=SOMEONE | {"risk_level": "grave"}, headers=admin | sent),
                await registry.get(f"/children/{uuid.uuid4()}", headers=admin | sent),
                await matching.get("/views/candidates/children", params=list_children, headers=coordinator | sent),
                await notifications.get("/views/deliveries", params=list_children, headers=coordinator | sent),
            ):
                assert answer.status_code in (200, 201, 404, 422), answer.text
                assert uuid.UUID(answer.headers["X-Correlation-ID"]).version == 4  # a new one, not what was sent
                registered += answer.status_code == 201
                answers.append(answer)
    assert {answer.status_code for answer in answers} == {200, 201, 404, 422}
    assert registered == 2 + len(HOSTILE_IDS)

    await until_settled(system, notices=registered)
    messages = await streams(system)
    assert len(messages["NOTIFICATIONS"]) >= registered
    registry_events = envelopes(messages["REGISTRY"])
    assert {good_id, nginx_id} <= {event["correlationid"] for event in registry_events}
    assert GOOD_TRACE in {event.get("traceparent") for event in registry_events}
    assert good_id in {event["correlationid"] for event in envelopes(messages["NOTIFICATIONS"])}
    await wait_until(
        lambda: _holds(good_id, system), within=30, what="the good id in every store the search reads (the NATS files)"
    )

    assert [found(answer_bytes(answer)) for answer in answers] == [[]] * len(answers)
    for service in ("registry", "matching", "notifications"):
        assert found(logs(system, service)) == [], f"{service}'s log"
        assert found(database_files(system, service)) == [], f"{service}'s database files"
    for stream, captured in messages.items():
        assert found(raw(captured)) == [], f"the {stream} stream"
    assert found(store_files(system)) == [], "the NATS store's files"


async def _holds(value: str, system: System) -> bool:
    """Whether `value` sits in the registry's log and database files and in the NATS store's files of REGISTRY and
    NOTIFICATIONS (the notice carries the registration's correlation)."""
    every = (
        logs(system, "registry"),
        database_files(system, "registry"),
        database_files(system, "notifications"),
        store_files(system, "REGISTRY"),
        store_files(system, "NOTIFICATIONS"),
    )
    return all(value.encode() in stored for stored in every)


async def test_an_old_event_with_a_name_and_phone_as_its_ids_does_not_spread_them(system: System) -> None:
    """Events recorded before ids were checked may carry anything: a reaction to one (the coordinators' notice)
    starts a new correlation and trace instead of copying them into its own event, stream and database."""
    bad, good = str(uuid.uuid4()), str(uuid.uuid4())
    good_id = str(uuid.uuid4())
    hostile = child_event(bad, 1).model_copy(
        update={"correlationid": f"guardian-{PHONE}-{NAME}", "traceparent": HOSTILE_TRACES[3]}  # version ff
    )
    fine = child_event(good, 1).model_copy(update={"correlationid": good_id, "traceparent": GOOD_TRACE})
    client = await nats.connect(system.nats.url)
    try:
        js: JetStreamContext = client.jetstream()
        await publish(js, [hostile, fine])
        await wait_until(lambda: _notices(js, 2), within=60, what="a notice for each of the two children")
        notices = {event["data"]["about_id"]: event for event in envelopes(await read_stream(js, "NOTIFICATIONS"))}
    finally:
        await client.close()
    await until_settled(system, notices=2)

    assert (notices[good]["correlationid"], notices[good]["traceparent"]) == (good_id, GOOD_TRACE)
    assert uuid.UUID(notices[bad]["correlationid"]).version == 4
    assert notices[bad]["causationid"] == hostile.id
    assert notices[bad]["traceparent"] != hostile.traceparent
    await wait_until(
        lambda: _spread(good_id, system), within=30, what="the good id in notifications' database and NATS files"
    )

    messages = await streams(system)
    for stream in ("MATCHING", "NOTIFICATIONS"):
        assert found(raw(messages[stream])) == [], f"the {stream} stream"
        assert found(store_files(system, stream)) == [], f"the NATS store's files of {stream}"
    for service in ("matching", "notifications"):
        assert found(logs(system, service)) == [], f"{service}'s log"
        assert found(database_files(system, service)) == [], f"{service}'s database files"


async def _notices(js: JetStreamContext, count: int) -> bool:
    return (await js.stream_info("NOTIFICATIONS")).state.messages >= count


async def _spread(value: str, system: System) -> bool:
    every = (database_files(system, "notifications"), store_files(system, "NOTIFICATIONS"))
    return all(value.encode() in stored for stored in every)
