"""The registry's volunteer list for a console page, against real NATS and each database: the volunteers eligible now
whose vetting or training expires before a moment ("within 30 days"), on the page and in the export; a bad moment is
a 422 that repeats nothing."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import httpx

from backbone.clock import PROGRAMME_TIMEZONE as SHANGHAI
from backbone.clock import SettableClock
from tests.helpers import auth, wait_until
from tests.integration.test_error_echo import NAME, PHONE, answer_bytes, repeated
from tests.integration.test_volunteers import VOLUNTEER, XINGAN, vetted

COORDINATOR = auth("coordinator", [XINGAN])


async def expiring(registry: httpx.AsyncClient, before: str, **params: Any) -> list[str]:
    query = {"county_code": XINGAN, "expiring_before": before, **params}
    page = await registry.get("/volunteers", params=query, headers=COORDINATOR)
    assert page.status_code == 200, page.text
    assert page.json()["total"] == len(page.json()["items"])
    export = await registry.get("/volunteers/export", params=query, headers=COORDINATOR)
    assert export.status_code == 200, export.text
    exported = [line["id"] for line in csv.DictReader(io.StringIO(export.content.decode("utf-8-sig")))]
    listed = [volunteer["id"] for volunteer in page.json()["items"]]
    assert exported == listed  # the page and its CSV: the same volunteers, in the same order
    return listed


async def test_volunteers_eligible_now_whose_vetting_or_training_expires_before_a_moment(
    registry: httpx.AsyncClient, clock: SettableClock
) -> None:
    soon = await vetted(registry, clock, record_check_days=20)  # the record check lapses in 20 days
    clock.advance(timedelta(minutes=1))  # registered one after the other: the list's order
    later = await vetted(registry, clock, record_check_days=60)
    unvetted = (await registry.post("/volunteers", json=VOLUNTEER, headers=COORDINATOR)).json()
    today = clock.now().date()
    training = {"course": "儿童保护", "completed_at": str(today), "expires_at": str(today + timedelta(days=10))}
    trained = await registry.post(f"/volunteers/{unvetted['id']}/trainings", json=training, headers=COORDINATOR)
    assert trained.json()["eligible"] is False  # a training that expires in 10 days, but no vetting: not eligible
    now = clock.now()
    in_30_days = (now + timedelta(days=30)).isoformat()

    assert await expiring(registry, in_30_days) == [soon["id"]]
    assert await expiring(registry, (now + timedelta(days=90)).isoformat()) == [soon["id"], later["id"]]
    assert await expiring(registry, (now + timedelta(days=1)).isoformat()) == []
    local = (now + timedelta(days=30)).astimezone(SHANGHAI).isoformat()  # "+08:00": the same moment in another zone
    assert await expiring(registry, local) == [soon["id"]]
    assert await expiring(registry, in_30_days, kind="caring_parent") == [soon["id"]]
    assert await expiring(registry, in_30_days, kind="social_worker") == []
    assert await expiring(registry, in_30_days, eligible=False) == []  # those not eligible have nothing to expire

    clock.advance(timedelta(days=21))  # the record check lapsed: no longer eligible, so no longer "expiring"

    async def lapsed() -> bool:
        read = await registry.get(f"/volunteers/{soon['id']}", headers=COORDINATOR)
        return read.json()["eligible"] is False

    await wait_until(lapsed, within=10, what="the timer to notice the lapsed record check")
    assert await expiring(registry, (clock.now() + timedelta(days=45)).isoformat()) == [later["id"]]


async def test_a_bad_expiring_before_is_a_422_that_repeats_nothing(registry: httpx.AsyncClient) -> None:
    for value in ("2026-01-05T10:00:00", "0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-01:00", f"{NAME}{PHONE}"):
        for path in ("/volunteers", "/volunteers/export"):  # no zone, out of range, not a moment
            params = {"county_code": XINGAN, "expiring_before": value}
            answer = await registry.get(path, params=params, headers=COORDINATOR)
            assert answer.status_code == 422, (path, value, answer.text)
            error = answer.json()["error"]
            assert (error["code"], set(error)) == ("invalid", {"code", "message", "details"})
            assert [problem["field"] for problem in error["details"]["problems"]] == ["query.expiring_before"]
            assert repeated(answer_bytes(answer)) == []
            assert value not in answer.text
