"""NATS and the three services as real processes: a child registered at the registry reaches the others."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import uuid
from datetime import datetime, timedelta

import httpx
import jsonschema
import pytest
from cloudevents.core.formats.json import JSONFormat
from nats.aio.msg import Msg

from contracts.export import schemas
from tests.e2e.conftest import System
from tests.helpers import auth, child_registration, wait_until

pytestmark = pytest.mark.e2e

XINGAN = "450325"
CHILD = child_registration(
    name="韦小芳",
    birth_date="2015-03-02",
    category="left_behind",
    county_code=XINGAN,
    township="溶江镇",
    village="五甲村",
    risk_level="high",
    needs=["tutoring", "family_calls"],
    languages=["zh", "zhuang"],
)


async def test_a_registered_child_shows_in_engagement_and_is_noticed(system: System, wire: list[Msg]) -> None:
    correlation = str(uuid.uuid4())
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(
            f"{system.url('registry')}/children",
            json=CHILD,
            headers={**auth("coordinator", [XINGAN]), "X-Correlation-ID": correlation},
        )
        assert answer.status_code == 201, answer.text
        child_id = answer.json()["id"]
        assert answer.headers["X-Correlation-ID"] == correlation

        engagement: list[dict[str, object]] = []

        async def engaged() -> bool:
            page = await http.get(
                f"{system.url('matching')}/views/engagement",
                params={"county_code": XINGAN},
                headers=auth("coordinator", [XINGAN]),
            )
            engagement[:] = page.json()["items"]
            return any(row["child_id"] == child_id for row in engagement)

        await wait_until(engaged, within=30, what="the child in the engagement view")
        (row,) = engagement
        assert row["risk_level"] == "high"
        assert row["overdue"] is False
        assert row["volunteer_id"] is None

        async def noticed() -> bool:
            page = await http.get(
                f"{system.url('notifications')}/notifications",
                params={"recipient_id": f"county:{XINGAN}:coordinators"},
                headers=auth("coordinator", [XINGAN]),
            )
            return any(item["about_id"] == child_id for item in page.json()["items"])

        await wait_until(noticed, within=5, what="the coordinators' notice")

    wanted = {"registry.child.registered.v2", "notifications.notice.recorded.v2", "matching.child.visit_due.v1"}
    await wait_until(lambda: _types(wire, wanted), within=5, what="the events of all three services on the wire")
    by_type = {json.loads(m.data)["type"]: json.loads(m.data) for m in wire}
    registered = by_type["registry.child.registered.v2"]
    notice = by_type["notifications.notice.recorded.v2"]
    assert registered["subject"] == child_id
    assert registered["correlationid"] == correlation
    # the notice carries the request's correlation and names the registration as its cause
    assert notice["correlationid"] == correlation
    assert notice["causationid"] == registered["id"]
    # so does the visit schedule matching plans in reaction, naming one of the request's events as its cause
    due = by_type["matching.child.visit_due.v1"]
    assert due["correlationid"] == correlation
    assert due["causationid"] in {m["id"] for m in by_type.values() if m["type"].startswith("registry.child.")}


async def _types(wire: list[Msg], wanted: set[str]) -> bool:
    await asyncio.sleep(0)
    return wanted <= {json.loads(m.data)["type"] for m in wire}


async def _subjects(wire: list[Msg], count: int) -> bool:
    await asyncio.sleep(0)
    return len(wire) >= count


async def test_every_message_on_the_wire_is_a_valid_cloudevent_without_personal_data(
    system: System, wire: list[Msg]
) -> None:
    people = [{**CHILD, "name": f"测试儿童{i}", "county_code": code} for i, code in enumerate([XINGAN, "450721"] * 3)]
    async with httpx.AsyncClient(timeout=10) as http:
        for person in people:
            answer = await http.post(f"{system.url('registry')}/children", json=person, headers=auth("admin"))
            assert answer.status_code == 201, answer.text
    await wait_until(lambda: _subjects(wire, 18), within=10, what="six registrations, their eligibility, six notices")
    exported = schemas()
    for msg in wire:
        raw = json.loads(msg.data)
        assert raw.get("id"), "the raw message must carry its own id (the SDK would invent one)"
        assert msg.headers["Nats-Msg-Id"] == raw["id"]
        assert msg.headers["Content-Type"] == "application/cloudevents+json"
        event = JSONFormat().read(None, msg.data)
        assert event.get_id() == raw["id"]
        assert event.get_type() == raw["type"]
        jsonschema.validate(raw, exported[raw["type"]])
        assert msg.subject == raw["type"].rsplit(".", 1)[0]
        for person in people:
            for field in ("name", "birth_date", "township", "village"):
                assert str(person[field]).encode() not in msg.data, f"{field} on the bus"


def test_each_service_answers_its_basics_and_stops_by_itself_on_sigterm(system: System) -> None:
    for name, service in system.services.items():
        for path in ("/health", "/ready", "/metrics", "/docs", "/openapi.json"):
            answer = httpx.get(f"{service.url}{path}", timeout=5)
            assert answer.status_code == 200, f"{name}{path}: {answer.status_code}"
        exposed = httpx.get(f"{service.url}/metrics").text
        for family in ("http_requests_total", "events_appended_total", "events_published_total"):
            assert re.search(rf"^{family}{{[^}}]*}} \d", exposed, re.M), f"{name}: no {family} sample"
        if name != "registry":  # the registry follows no stream
            for family in ("events_consumed_total", "events_dead_lettered_total", "consumer_lag"):
                assert re.search(rf"^{family}{{[^}}]*}} \d", exposed, re.M), f"{name}: no {family} sample"
    for name, service in system.services.items():
        service.stop(timeout=60)  # a bound on waiting only: how fast is for `make bench`
        assert service.process is not None
        # uvicorn, once shut down, raises again the SIGTERM it caught; a kill would end it with -SIGKILL
        assert service.process.returncode == -signal.SIGTERM, name
        logged = [json.loads(line)["event"] for line in service.log.read_text().splitlines() if line.startswith("{")]
        assert logged[-1] == "runtime.stopped", f"{name} did not finish stopping: {logged[-3:]}"


async def test_a_risk_change_replans_the_visit_and_leaving_removes_the_child_without_notes_on_the_bus(
    system: System, wire: list[Msg]
) -> None:
    coordinator = auth("coordinator", [XINGAN])
    async with httpx.AsyncClient(timeout=10) as http:
        child = (await http.post(f"{system.url('registry')}/children", json=CHILD, headers=coordinator)).json()
        path = f"{system.url('registry')}/children/{child['id']}"

        async def row() -> dict[str, object] | None:
            page = await http.get(
                f"{system.url('matching')}/views/engagement", params={"county_code": XINGAN}, headers=coordinator
            )
            return next((r for r in page.json()["items"] if r["child_id"] == child["id"]), None)

        async def due_in(days: int) -> bool:
            found = await row()
            return found is not None and found["risk_level"] == ("high" if days == 7 else "low")

        await wait_until(lambda: due_in(7), within=5, what="the child, high risk")
        first = await row()
        reason = "母亲外出务工，祖母住院"
        changed = await http.patch(path, json={"risk_level": "low", "risk_reason": reason}, headers=coordinator)
        assert changed.status_code == 200, changed.text
        await wait_until(lambda: due_in(30), within=5, what="the re-planned visit")
        replanned = await row()
        assert first is not None
        assert replanned is not None
        gap = datetime.fromisoformat(str(replanned["next_due_at"])) - datetime.fromisoformat(str(first["next_due_at"]))
        assert gap == timedelta(days=23)  # due 30 days after registration instead of 7

        consent = {"given_by": "韦同意人", "relation": "grandmother", "given_at": "2023-01-12", "scope": ["pairing"]}
        assert (await http.post(f"{path}/consent", json=consent, headers=coordinator)).status_code == 200
        assert (await http.post(f"{path}/leave", json={"reason": "moved"}, headers=coordinator)).status_code == 200

        async def gone() -> bool:
            return await row() is None

        await wait_until(gone, within=5, what="the child to leave the engagement view")
    await wait_until(lambda: _subjects(wire, 9), within=5, what="the child's events on the wire")
    types = [json.loads(m.data)["type"] for m in wire if m.subject.startswith("registry.")]
    assert types == [
        "registry.child.registered.v2",
        "registry.child.pairing_eligibility_changed.v1",  # not yet: under 14 without consent
        "registry.child.risk_changed.v1",
        "registry.child.consent_recorded.v1",
        "registry.child.pairing_eligibility_changed.v1",  # consent to pairing given
        "registry.child.purposes_changed.v1",  # the purposes it covers: pairing only
        "registry.child.left_programme.v1",
        "registry.child.pairing_eligibility_changed.v1",  # left
    ]
    for text in (reason, "韦同意人", CHILD["guardian_name"], CHILD["guardian_phone"]):
        assert not any(str(text).encode() in m.data for m in wire), f"{text} on the bus"
