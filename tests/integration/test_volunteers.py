"""Volunteers: vetting that blocks pairing until it clears, checks that expire by the clock, and scope."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
from nats.aio.client import Client as NATS

from backbone.clock import SettableClock, local_date
from tests.helpers import auth, read_stream, wait_until
from tests.unit.test_volunteer_import import chinese as chinese_volunteers
from tests.unit.test_volunteer_import import volunteer as volunteer_row

XINGAN, LINGSHAN = "450325", "450721"
VOLUNTEER = {
    "name": "黄爱心",
    "phone": "13907731234",
    "kind": "caring_parent",
    "county_code": XINGAN,
    "township": "兴安镇",
    "capacity": 2,
    "skills": ["tutoring", "companionship"],
    "languages": ["zh", "zhuang"],
    "availability": "weekends",
}
STEPS = ("application", "interview", "record_check", "references")


async def vetted(registry: httpx.AsyncClient, clock: SettableClock, record_check_days: int = 30) -> dict[str, object]:
    """A volunteer who passed every step (the record check valid for `record_check_days`) and is trained."""
    coordinator = auth("coordinator", [XINGAN])
    created = await registry.post("/volunteers", json=VOLUNTEER, headers=coordinator)
    assert created.status_code == 201, created.text
    path = f"/volunteers/{created.json()['id']}"
    today = clock.now().date()
    for step in STEPS:
        expires = today + timedelta(days=record_check_days if step == "record_check" else 365)
        screening = {"step": step, "result": "passed", "checked_at": str(today), "expires_at": str(expires)}
        assert (await registry.post(f"{path}/screenings", json=screening, headers=coordinator)).status_code == 200
    training = {"course": "儿童保护与防疫", "completed_at": str(today), "expires_at": str(today + timedelta(days=365))}
    answer = await registry.post(f"{path}/trainings", json=training, headers=coordinator)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_a_volunteer_is_eligible_only_once_every_step_passed_and_trained(
    registry: httpx.AsyncClient, clock: SettableClock
) -> None:
    coordinator = auth("coordinator", [XINGAN])
    fresh = (await registry.post("/volunteers", json=VOLUNTEER, headers=coordinator)).json()
    assert fresh["eligible"] is False
    assert fresh["reasons"] == [f"{step}: not done" for step in STEPS] + ["training: none current"]
    assert (fresh["name"], fresh["phone"]) == (VOLUNTEER["name"], VOLUNTEER["phone"])
    path = f"/volunteers/{fresh['id']}"
    failed = {"step": "record_check", "result": "failed", "checked_at": str(clock.now().date())}
    after_failure = (await registry.post(f"{path}/screenings", json=failed, headers=coordinator)).json()
    assert "record_check: failed" in after_failure["reasons"]

    volunteer = await vetted(registry, clock)
    assert (volunteer["eligible"], volunteer["reasons"]) == (True, [])
    eligible = await registry.get("/volunteers", params={"county_code": XINGAN, "eligible": True}, headers=coordinator)
    assert [v["id"] for v in eligible.json()["items"]] == [volunteer["id"]]


async def test_an_expired_record_check_makes_the_volunteer_ineligible_with_nobody_touching_it(
    registry: httpx.AsyncClient, clock: SettableClock, nc: NATS
) -> None:
    volunteer = await vetted(registry, clock, record_check_days=30)
    assert volunteer["eligible"] is True
    clock.advance(timedelta(days=31))  # the Art. 62 record query lapses; only the timer is running

    async def lapsed() -> bool:
        read = await registry.get(f"/volunteers/{volunteer['id']}", headers=auth("admin"))
        return read.json()["eligible"] is False

    await wait_until(lapsed, within=10, what="the timer to notice the expiry")
    read = (await registry.get(f"/volunteers/{volunteer['id']}", headers=auth("admin"))).json()
    assert [r for r in read["reasons"] if r.startswith("record_check: expired on")]

    async def announced() -> list[dict[str, object]]:
        messages = await read_stream(nc.jetstream(), "REGISTRY", "registry.volunteer.eligibility_changed")
        return [json.loads(m.data)["data"] for m in messages]

    async def on_the_bus() -> bool:
        return any(d["eligible"] is False and d["volunteer_id"] == volunteer["id"] for d in await announced())

    await wait_until(on_the_bus, within=10, what="the eligibility change on the bus")
    flips = [d["eligible"] for d in await announced()]
    flips = [e for i, e in enumerate(flips) if i == 0 or e != flips[i - 1]]  # each vetting step says why, too
    assert flips == [False, True, False]  # registered, vetted, expired
    for raw in await read_stream(nc.jetstream(), "REGISTRY", "registry.volunteer.>"):
        assert VOLUNTEER["name"].encode() not in raw.data
        assert VOLUNTEER["phone"].encode() not in raw.data


async def test_service_hours_add_up_and_vetting_dates_must_make_sense(
    registry: httpx.AsyncClient, clock: SettableClock
) -> None:
    coordinator = auth("coordinator", [XINGAN])
    volunteer = (await registry.post("/volunteers", json=VOLUNTEER, headers=coordinator)).json()
    path, today = f"/volunteers/{volunteer['id']}", local_date(clock.now())
    for hours in (3.5, 2.0):
        served = await registry.post(
            f"{path}/service-hours", json={"served_on": str(today), "hours": hours}, headers=coordinator
        )
        assert served.status_code == 200, served.text
    assert served.json()["service_hours"] == 5.5
    tomorrow = str(today + timedelta(days=1))
    future = await registry.post(f"{path}/service-hours", json={"served_on": tomorrow, "hours": 1}, headers=coordinator)
    assert future.json()["error"]["code"] == "in_future"
    backwards = {"step": "interview", "result": "passed", "checked_at": str(today), "expires_at": str(today)}
    refused = await registry.post(f"{path}/screenings", json=backwards, headers=coordinator)
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "expires_before_done")
    bad_phone = await registry.post("/volunteers", json=VOLUNTEER | {"phone": "110"}, headers=coordinator)
    assert bad_phone.status_code == 422


async def test_a_pass_or_a_training_without_an_expiry_is_refused_so_nobody_stays_eligible_for_ever(
    registry: httpx.AsyncClient, clock: SettableClock
) -> None:
    coordinator = auth("coordinator", [XINGAN])
    volunteer = (await registry.post("/volunteers", json=VOLUNTEER, headers=coordinator)).json()
    path, today = f"/volunteers/{volunteer['id']}", str(local_date(clock.now()))
    for step in STEPS:  # the Art. 62 record query, and every other step too
        unbounded = {"step": step, "result": "passed", "checked_at": today}
        refused = await registry.post(f"{path}/screenings", json=unbounded, headers=coordinator)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert (error["code"], set(error)) == ("expiry_required", {"code", "message", "details"})
        assert f"passed {step} needs its expiry date (expires_at)" in error["message"]
    training = await registry.post(
        f"{path}/trainings", json={"course": "儿童保护", "completed_at": today}, headers=coordinator
    )
    assert (training.status_code, training.json()["error"]["code"]) == (422, "invalid")
    assert [p["field"] for p in training.json()["error"]["details"]["problems"]] == ["body.expires_at"]
    read = (await registry.get(path, headers=coordinator)).json()
    assert (read["screenings"], read["trainings"], read["version"]) == ({}, [], volunteer["version"])  # nothing kept
    failed = {"step": "record_check", "result": "failed", "checked_at": today}  # a failure needs no expiry
    assert (await registry.post(f"{path}/screenings", json=failed, headers=coordinator)).status_code == 200


async def test_volunteers_see_only_themselves_and_coordinators_only_their_counties(
    registry: httpx.AsyncClient,
) -> None:
    volunteer = (await registry.post("/volunteers", json=VOLUNTEER, headers=auth("admin"))).json()
    path = f"/volunteers/{volunteer['id']}"
    itself = {"Authorization": "Bearer " + _token_for(volunteer["id"])}
    assert (await registry.get(path, headers=itself)).json()["name"] == VOLUNTEER["name"]
    assert (await registry.get(path, headers=auth("volunteer"))).status_code == 403  # another volunteer
    assert (await registry.get(path, headers=auth("donor"))).status_code == 403
    assert (await registry.get(path, headers=auth("coordinator", [LINGSHAN]))).status_code == 403
    outsider = await registry.post("/volunteers", json=VOLUNTEER, headers=auth("coordinator", [LINGSHAN]))
    assert outsider.status_code == 403


def _token_for(volunteer_id: str) -> str:
    from tests.helpers import token

    return token("volunteer", sub=volunteer_id)


async def test_volunteers_import_from_csv_once_with_bad_rows_reported(registry: httpx.AsyncClient) -> None:
    rows = [
        volunteer_row(name="黄一", phone="13907730001", kind="爱心家长"),
        volunteer_row(name="黄二", phone="13907730002", kind="社工"),
        volunteer_row(name="黄三", phone="110"),  # a bad phone
        volunteer_row(name="黄四", phone="13907730004", county_code=LINGSHAN),  # outside the coordinator's county
    ]
    raw = chinese_volunteers(*rows)
    coordinator = auth("coordinator", [XINGAN]) | {"Content-Type": "text/csv"}
    first = (await registry.post("/volunteers/import", content=raw, headers=coordinator)).json()
    assert (first["imported"], first["already_imported"]) == (2, 0)
    assert [r["line"] for r in first["rejected"]] == [4, 5]
    again = (await registry.post("/volunteers/import", content=raw, headers=coordinator)).json()
    assert (again["imported"], again["already_imported"]) == (0, 2)
    listed = await registry.get("/volunteers", params={"county_code": XINGAN}, headers=coordinator)
    assert sorted(v["kind"] for v in listed.json()["items"]) == ["caring_parent", "social_worker"]
    assert all("黄三" not in error for r in first["rejected"] for error in r["errors"])


async def test_erasing_a_volunteer_leaves_the_hours_and_ends_eligibility(
    registry: httpx.AsyncClient, clock: SettableClock
) -> None:
    volunteer = await vetted(registry, clock)
    path, coordinator = f"/volunteers/{volunteer['id']}", auth("coordinator", [XINGAN])
    await registry.post(
        f"{path}/service-hours", json={"served_on": str(clock.now().date()), "hours": 2}, headers=coordinator
    )
    assert (await registry.delete(f"{path}/personal-data", headers=coordinator)).status_code == 204
    read = (await registry.get(path, headers=coordinator)).json()
    assert (read["name"], read["phone"], read["eligible"], read["service_hours"]) == (None, None, False, 2.0)
    assert read["reasons"] == ["personal data erased"]
    assert (await registry.delete(f"{path}/personal-data", headers=coordinator)).status_code == 204


async def test_volunteers_filter_by_kind_and_export_as_csv(registry: httpx.AsyncClient) -> None:
    coordinator = auth("coordinator", [XINGAN])
    for kind in ("caring_parent", "child_director"):
        created = await registry.post("/volunteers", json=VOLUNTEER | {"kind": kind}, headers=coordinator)
        assert created.status_code == 201
    directors = await registry.get(
        "/volunteers", params={"county_code": XINGAN, "kind": "child_director"}, headers=coordinator
    )
    assert [v["kind"] for v in directors.json()["items"]] == ["child_director"]
    exported = await registry.get("/volunteers/export", params={"county_code": XINGAN}, headers=coordinator)
    lines = exported.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("id,name,phone,township,village,kind")
    assert len(lines) == 3
