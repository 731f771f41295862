"""A service's timers tick until it stops, and then close what their ticks held open (the sender's HTTP clients and
channels), once, even when closing fails."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import MetaData
from structlog.testing import capture_logs

from backbone.runtime import Runtime, ServiceSpec, Timer
from backbone.settings import Settings
from tests.helpers import wait_until


async def test_a_timer_closes_what_it_held_when_the_service_stops_and_a_failed_close_is_logged(
    tmp_path: Path,
) -> None:
    ticks: list[str] = []
    closed: list[str] = []

    async def tick() -> None:
        ticks.append("tick")

    async def close() -> None:
        closed.append("closed")

    async def broken() -> None:
        closed.append("broken")
        raise OSError("the socket is gone already")

    spec = ServiceSpec(
        name="notifications",
        default_port=0,
        views=MetaData(),
        routers=[],
        timers=lambda _: [
            Timer("held", 0.05, tick, close),
            Timer("broken", 0.05, tick, broken),
            Timer("bare", 1, tick),
        ],
    )
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'timers.db'}", nats_url="nats://127.0.0.1:9")
    runtime = Runtime(spec, settings)
    await runtime.start()

    async def ticking() -> bool:
        return len(ticks) >= 4

    await wait_until(ticking, what="the timers to tick")
    assert closed == []
    with capture_logs() as logs:
        await runtime.stop()

    assert sorted(closed) == ["broken", "closed"]
    assert [(e["event"], e["timer"]) for e in logs if e["event"] == "timer.close_failed"] == [
        ("timer.close_failed", "broken")
    ]
