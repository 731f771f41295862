"""A registry whose PostgreSQL database was restored into another server: its event log's transaction ids are ahead
of the new server's, so events appended now would sort before ones already published and be skipped. The relay
refuses to publish, says why, and publishes nothing. PostgreSQL only: SQLite has no transaction ids."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
from nats.aio.client import Client as NATS
from sqlalchemy.engine import make_url

from backbone.natsserver import NatsServer
from tests.helpers import ServiceProcess, auth, child_registration, wait_until

XINGAN = "450325"
COORDINATOR = auth("coordinator", [XINGAN])
CHILD = child_registration(county_code=XINGAN)
AHEAD = 2**40  # transaction ids the old server had used and this one has not


async def restored_into_another_server(postgres_url: str) -> None:
    """What a restore into another PostgreSQL server leaves: the log's (and the relay's) transaction ids far ahead."""
    conn = await asyncpg.connect(make_url(postgres_url).set(drivername="postgresql").render_as_string(False))
    try:
        async with conn.transaction():
            await conn.execute("UPDATE events SET tx_id = tx_id + $1", AHEAD)
            await conn.execute("UPDATE relay_positions SET tx_id = tx_id + $1", AHEAD)
    finally:
        await conn.close()


async def test_the_relay_refuses_a_log_restored_into_another_postgresql_server_and_publishes_nothing(
    nats_server: NatsServer, nc: NATS, postgres_url: str, tmp_path: Path
) -> None:
    js = nc.jetstream()
    registry = ServiceProcess("registry", nats_url=nats_server.url, database_url=postgres_url, data_dir=tmp_path)
    try:
        async with httpx.AsyncClient(base_url=registry.start().url, timeout=30) as http:
            assert (await http.post("/children", json=CHILD, headers=COORDINATOR)).status_code == 201

            async def published() -> bool:
                return (await js.stream_info("REGISTRY")).state.messages > 0

            await wait_until(published, what="the first child's events on REGISTRY")
        registry.stop()
        before = (await js.stream_info("REGISTRY")).state.messages
        await restored_into_another_server(postgres_url)

        async with httpx.AsyncClient(base_url=registry.start().url, timeout=30) as http:
            again = await http.post("/children", json=CHILD | {"name": "莫小红"}, headers=COORDINATOR)
            assert again.status_code == 201, again.text  # the log takes it; the relay must not publish it

            def refusals() -> list[str]:
                return [line for line in registry.log.read_text().splitlines() if "ahead of this server" in line]

            async def refused_twice() -> bool:  # the second time, it has tried again since and still refuses
                return len(refusals()) >= 2

            await wait_until(refused_twice, what="the relay to refuse the restored log twice")
        assert '"relay.retrying"' in refusals()[0]
        assert (await js.stream_info("REGISTRY")).state.messages == before
    finally:
        registry.kill()
