"""Exactly once for the person, across a crash: the registry and the notifications service as real processes, the
notifications service killed (SIGKILL) between deciding and sending, and killed again while a send is in flight; the
event that caused it delivered again and again. One SMS, always under one idempotency key."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NATS

from backbone.natsserver import NatsServer
from contracts.matching import PairingConfirmed, PairingProposed
from tests.helpers import ServiceProcess, auth, wait_until
from tests.integration.account_steps import active, create
from tests.integration.standins import Answer, Gateway, serve_gateway
from tests.integration.test_sending import COORDINATOR, COORDINATOR_PHONE, XINGAN, matching_envelope, put_on_the_bus

pytestmark = pytest.mark.e2e


@pytest.fixture
def registry_process(nats_server: NatsServer, tmp_path: Path) -> Iterator[ServiceProcess]:
    database = f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
    service = ServiceProcess("registry", nats_url=nats_server.url, database_url=database, data_dir=tmp_path)
    yield service.start()
    service.kill()


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    async with serve_gateway() as served:
        yield served


async def notifications_env(registry: ServiceProcess, gateway: Gateway) -> dict[str, str]:
    """A coordinator of Xing'an to be told, and the notifications service's own account and settings."""
    async with httpx.AsyncClient(base_url=registry.url, timeout=30) as client:
        await active(client, COORDINATOR_PHONE, role="coordinator", counties=[XINGAN])
        secret = (await create(client, login="notifications", role="service", name="notifications"))["handover"]
    return {
        "SERVICE_CLIENT_ID": "notifications",
        "SERVICE_CLIENT_SECRET": secret["token"],
        "TOKEN_URL": f"{registry.url}/auth/token",
        "REGISTRY_URL": registry.url,
        "SMS_GATEWAY_URL": gateway.url,
        "SMS_TIMEOUT_SECONDS": "1",  # a try not reported back is taken as lost after 2 x 1 + 5 s
        "SMTP_HOST": "",
        "RETRY_FIRST_SECONDS": "1",
        "TIMER_SECONDS": "0.2",
    }


def notifications(nats_server: NatsServer, database_url: str, data_dir: Path, env: dict[str, str]) -> ServiceProcess:
    return ServiceProcess(
        "notifications", nats_url=nats_server.url, database_url=database_url, data_dir=data_dir, **env
    )


async def messages(service: ServiceProcess) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        answer = await client.get("/views/messages", params={"county_code": XINGAN}, headers=COORDINATOR)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def notices(service: ServiceProcess) -> int:
    params = {"recipient_id": f"county:{XINGAN}:coordinators"}
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        answer = await client.get("/notifications", params=params, headers=auth("coordinator", [XINGAN]))
    return int(answer.json()["total"]) if answer.status_code == 200 else -1


async def test_killed_between_deciding_and_sending_and_told_again_after_the_restart_one_sms_goes(
    nats_server: NatsServer,
    nc: NATS,
    database_url: str,
    tmp_path: Path,
    registry_process: ServiceProcess,
    gateway: Gateway,
) -> None:
    env = await notifications_env(registry_process, gateway)
    # It looks once as it starts, then not for an hour: it decides, and sends nothing.
    deciding = notifications(nats_server, database_url, tmp_path, env | {"SEND_EVERY_SECONDS": "3600"})
    await asyncio.to_thread(deciding.start)
    confirmed = matching_envelope(
        PairingConfirmed(pairing_id=uuid.uuid4(), child_id=uuid.uuid4(), volunteer_id=uuid.uuid4(), county_code=XINGAN)
    )
    try:
        await put_on_the_bus(nc.jetstream(), confirmed, times=3)
        await wait_until(lambda: _is(notices(deciding), 1), within=60, what="the notice decided")
        assert await messages(deciding) == []  # decided, not yet sent
    finally:
        deciding.kill()
    sending = notifications(nats_server, database_url, tmp_path, env | {"SEND_EVERY_SECONDS": "0.2"})
    await asyncio.to_thread(sending.start)
    try:
        await put_on_the_bus(nc.jetstream(), confirmed, times=1, first_copy=3)  # and once more after the restart
        await wait_until(lambda: _sent(sending, 1), within=60, what="the SMS sent after the restart")
        # Something after the fourth copy, on the same consumer (told to the inbox only): once it is there, the
        # fourth copy was seen.
        await put_on_the_bus(nc.jetstream(), matching_envelope(proposal()))
        await wait_until(lambda: _is(notices(sending), 2), within=30, what="the fourth copy seen")
        await asyncio.sleep(1)  # and the sender goes round a few more times
        assert len(gateway.received) == 1
    finally:
        sending.kill()


async def test_killed_while_the_gateway_has_the_sms_the_next_try_carries_the_same_idempotency_key(
    nats_server: NatsServer,
    nc: NATS,
    database_url: str,
    tmp_path: Path,
    registry_process: ServiceProcess,
    gateway: Gateway,
) -> None:
    env = await notifications_env(registry_process, gateway) | {"SEND_EVERY_SECONDS": "0.2"}
    gateway.script = [Answer(hang=True)]  # it has the SMS and has not answered when the service dies
    first = ServiceProcess(
        "notifications", nats_url=nats_server.url, database_url=database_url, data_dir=tmp_path, **env
    )
    await asyncio.to_thread(first.start)
    confirmed = matching_envelope(
        PairingConfirmed(pairing_id=uuid.uuid4(), child_id=uuid.uuid4(), volunteer_id=uuid.uuid4(), county_code=XINGAN)
    )
    try:
        await put_on_the_bus(nc.jetstream(), confirmed)
        await wait_until(lambda: _true(len(gateway.received) == 1), within=60, what="the gateway to have the SMS")
    finally:
        first.kill()
    second = ServiceProcess(
        "notifications", nats_url=nats_server.url, database_url=database_url, data_dir=tmp_path, **env
    )
    await asyncio.to_thread(second.start)
    try:
        await wait_until(lambda: _sent(second, 1), within=60, what="the SMS tried again once the lost try lapsed")
        [sent] = await messages(second)
        assert sent["attempts"] == 2
        keys = [request.headers["idempotency-key"] for request in gateway.received]
        assert keys == [sent["message_id"]] * 2  # the gateway sends the first and drops the second
    finally:
        second.kill()


def proposal() -> PairingProposed:
    return PairingProposed(
        pairing_id=uuid.uuid4(),
        run_id=uuid.uuid4(),
        child_id=uuid.uuid4(),
        volunteer_id=uuid.uuid4(),
        county_code=XINGAN,
        risk_level="high",
        score=80,
        score_parts={"distance": 80},
        expires_at=datetime.now(UTC) + timedelta(days=7),
    )


async def _is(count: Any, expected: int) -> bool:
    return bool(await count == expected)


async def _true(value: bool) -> bool:
    return value


async def _sent(service: ServiceProcess, count: int) -> bool:
    return len([m for m in await messages(service) if m["status"] == "sent"]) == count
