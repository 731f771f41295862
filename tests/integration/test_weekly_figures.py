"""The figures week by week against real NATS and each database, with a settable clock: visits by the week they took
place (China time, Monday to Sunday, the midnight between counted right), pairings by the week they were confirmed
and their running total, wishes posted and fulfilled; per county, city and region and per campaign; the summary's
access rules and donors' suppression; and 10,000 children's rows counted by a handful of grouped queries."""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, insert

from backbone.clock import PROGRAMME_TIMEZONE as CHINA
from backbone.clock import SettableClock
from backbone.database import Database
from backbone.store import EventRecord
from contracts.matching import PairingConfirmed, WishFulfilled
from services.matching import weekly
from services.matching.pairings import PairingRecord
from services.matching.views import ContactRow, Views
from services.matching.wishes import WishRecord
from tests.helpers import RegistryEvents, auth, campaign, candidates, matching_run, token, wait_until

XINGAN, GUANYANG, LINGSHAN = "450325", "450327", "450721"  # two counties of Guilin (4503), one of Qinzhou
COORDINATOR = auth("coordinator", [XINGAN, GUANYANG, LINGSHAN])
SATURDAY = datetime(2024, 3, 9, 20, 0, tzinfo=CHINA)  # in the week of Monday 4 March
MONDAY = datetime(2024, 3, 11, 9, 0, tzinfo=CHINA)  # the next week
WEEKS = [date(2024, 2, 19), date(2024, 2, 26), date(2024, 3, 4), date(2024, 3, 11)]


async def test_the_weeks_of_visits_pairings_and_wishes_in_a_county_its_city_and_the_region(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    clock.set(SATURDAY)  # first: a timer tick that read the real date must not meet the proposals, to lapse them
    campaign_id = str(uuid.uuid4())
    await registry_events.emit(campaign(campaign_id, XINGAN, GUANYANG, LINGSHAN))
    for county, pairs in ((XINGAN, 5), (GUANYANG, 3), (LINGSHAN, 2)):
        for _ in range(pairs):
            await registry_events.child(county=county)
            await registry_events.volunteer(county=county)
        await candidates(matching, "children", pairs, county=county)
        await candidates(matching, "volunteers", pairs, county=county)

    xingan = (await matching_run(matching, XINGAN))["proposals"]
    assert len(xingan) == 5
    for proposal in xingan[:2]:
        await _confirm(matching, proposal)
    wishes = [await _wish(matching, p["child_id"], campaign_id if i < 2 else None) for i, p in enumerate(xingan[:3])]

    clock.set(MONDAY)
    for proposal in xingan[2:]:
        await _confirm(matching, proposal)
    for county in (GUANYANG, LINGSHAN):
        for proposal in (await matching_run(matching, county))["proposals"]:
            await _confirm(matching, proposal)
    later = [await _wish(matching, p["child_id"], campaign_id) for p in xingan[3:5]]
    for wish_id in wishes[:2]:  # both tagged with the campaign
        await _move(matching, wish_id, "claim", auth("donor"))
        await _move(matching, wish_id, "fulfil")
    await _move(matching, wishes[2], "withdraw", body={"reason": "no_longer_needed"})
    await _move(matching, later[0], "claim", auth("donor"))  # claimed, not fulfilled

    first, second = xingan[0]["pairing_id"], xingan[1]["pairing_id"]
    visits = [  # (pairing, China time, in person, under the campaign)
        (first, datetime(2024, 2, 20, 10, 0), True, True),  # week of 19 Feb
        (first, datetime(2024, 2, 25, 23, 59), True, False),  # Sunday night: still the week of 19 Feb
        (second, datetime(2024, 3, 10, 23, 30), True, True),  # Sunday 23:30 in China (15:30 UTC): week of 4 Mar
        (second, datetime(2024, 3, 11, 0, 30), True, True),  # Monday 00:30 in China (Sunday 16:30 UTC): 11 Mar
        (first, datetime(2024, 3, 11, 8, 0), False, True),  # a call: no visit
        (first, datetime(2024, 1, 15, 10, 0), True, True),  # before the first week shown
    ]
    for pairing_id, when, in_person, tagged in visits:
        body = {"kind": "visit" if in_person else "call", "in_person": in_person, "duration_minutes": 30}
        body |= {"occurred_at": when.replace(tzinfo=CHINA).isoformat()}
        body |= {"campaign_id": campaign_id} if tagged else {}
        answer = await matching.post(f"/pairings/{pairing_id}/contacts", json=body, headers=COORDINATOR)
        assert answer.status_code == 201, answer.text
    guanyang_visit = {"kind": "visit", "in_person": True, "duration_minutes": 30, "occurred_at": MONDAY.isoformat()}
    guanyang = (await _pairings(matching, GUANYANG))[0]
    answer = await matching.post(f"/pairings/{guanyang}/contacts", json=guanyang_visit, headers=COORDINATOR)
    assert answer.status_code == 201, answer.text

    def weeks(
        visits: list[int], confirmed: list[int], total: list[int], posted: list[int], fulfilled: list[int]
    ) -> Any:
        return [
            {"week": str(week), "visits": v, "pairings_confirmed": c, "pairings_total": t}
            | {"wishes_posted": p, "wishes_fulfilled": f}
            for week, v, c, t, p, f in zip(WEEKS, visits, confirmed, total, posted, fulfilled, strict=True)
        ]

    expected = {
        (XINGAN, None): weeks([2, 0, 1, 1], [0, 0, 2, 3], [0, 0, 2, 5], [0, 0, 2, 2], [0, 0, 0, 2]),
        (XINGAN, campaign_id): weeks([1, 0, 1, 1], [0, 0, 2, 3], [0, 0, 2, 5], [0, 0, 2, 2], [0, 0, 0, 2]),
        ("4503", None): weeks([2, 0, 1, 2], [0, 0, 2, 6], [0, 0, 2, 8], [0, 0, 2, 2], [0, 0, 0, 2]),
        ("45", None): weeks([2, 0, 1, 2], [0, 0, 2, 8], [0, 0, 2, 10], [0, 0, 2, 2], [0, 0, 0, 2]),
        (LINGSHAN, campaign_id): weeks([0, 0, 0, 0], [0, 0, 0, 2], [0, 0, 0, 2], [0, 0, 0, 0], [0, 0, 0, 0]),
    }
    for (code, under), wanted in expected.items():
        found = await _settled(matching, code, under, wanted)
        assert found["weeks"] == wanted, (code, under)
        assert (found["code"], found["campaign_id"]) == (code, under)
    city = await _weekly(matching, "4503", weeks=4)
    assert (city["scope"], city["name_zh"], city["name_pinyin"]) == ("city", "桂林市", "Guilin Shi")

    # The running total starts from the pairings confirmed before the first week shown.
    (this_week,) = (await _weekly(matching, XINGAN, weeks=1))["weeks"]
    assert (this_week["week"], this_week["pairings_confirmed"], this_week["pairings_total"]) == ("2024-03-11", 3, 5)
    default = (await _weekly(matching, XINGAN))["weeks"]
    assert len(default) == 12
    assert [date.fromisoformat(w["week"]) for w in default] == [
        WEEKS[-1] - timedelta(weeks=n) for n in range(11, -1, -1)
    ]
    assert len((await _weekly(matching, XINGAN, weeks=104))["weeks"]) == 104

    # The weeks agree with the summary's totals once the window reaches back before anything happened.
    summary = (await matching.get("/views/summary", params={"code": XINGAN}, headers=COORDINATOR)).json()
    whole = (await _weekly(matching, XINGAN, weeks=20))["weeks"]
    assert sum(w["visits"] for w in whole) == summary["visits"] == 5
    assert sum(w["wishes_posted"] for w in whole) == summary["wishes"]["posted"] == 4
    assert sum(w["wishes_fulfilled"] for w in whole) == summary["wishes"]["fulfilled"] == 2
    assert whole[-1]["pairings_total"] == summary["pairings"]["caring_parent"]["pairings"] == 5


async def test_donors_see_small_weeks_hidden_and_no_running_total(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    clock.set(SATURDAY)  # first: a timer tick that read the real date must not meet the proposals, to lapse them
    for _ in range(8):
        await registry_events.child()
        await registry_events.volunteer()
    await candidates(matching, "children", 8)
    await candidates(matching, "volunteers", 8)
    proposals = (await matching_run(matching, XINGAN))["proposals"]
    for proposal in proposals[:6]:
        await _confirm(matching, proposal)
    clock.set(MONDAY)
    for proposal in proposals[6:]:
        await _confirm(matching, proposal)
    wanted = [0, 0, 6, 2]

    async def confirmed() -> bool:
        return [w["pairings_confirmed"] for w in (await _weekly(matching, XINGAN, weeks=4))["weeks"]] == wanted

    await wait_until(confirmed, what="the pairings in their weeks")
    donor = await matching.get("/views/summary/weekly", params={"code": XINGAN, "weeks": 4}, headers=auth("donor"))
    assert donor.status_code == 200, donor.text
    assert str(proposals[0]["child_id"]) not in donor.text
    shown = donor.json()["weeks"]
    # 2 is under 5; 6 beside it would give it away against the summary's total of 8, so it is hidden too
    assert [w["pairings_confirmed"] for w in shown] == [0, 0, "x", "<5"]
    assert [w["pairings_total"] for w in shown] == [None] * 4
    assert [w["visits"] for w in shown] == [0, 0, 0, 0]


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"code": XINGAN, "weeks": "0"}, "weeks"),
        ({"code": XINGAN, "weeks": "105"}, "weeks"),
        ({"code": XINGAN, "weeks": "twelve<script>"}, "weeks"),
        ({"code": "4"}, "code"),
        ({"code": "450325<b>"}, "code"),
        ({"code": XINGAN, "campaign_id": "winter<script>"}, "campaign_id"),
    ],
)
async def test_bad_values_are_refused_without_repeating_them(
    matching: httpx.AsyncClient, params: dict[str, str], problem: str
) -> None:
    answer = await matching.get("/views/summary/weekly", params=params, headers=COORDINATOR)
    assert answer.status_code == 422, answer.text
    assert set(answer.json()["error"]) == {"code", "message", "details"}
    assert {p["field"].split(".")[-1] for p in answer.json()["error"]["details"]["problems"]} == {problem}
    assert not [sent for sent in ("<", "twelve", "winter") if sent in answer.text]


@pytest.mark.parametrize("code", ["4507", LINGSHAN, "44"])
async def test_a_coordinator_outside_the_area_is_refused_its_weeks(matching: httpx.AsyncClient, code: str) -> None:
    outside = auth("coordinator", [XINGAN])
    answer = await matching.get("/views/summary/weekly", params={"code": code}, headers=outside)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["code"] == "forbidden"
    for code_inside in (XINGAN, "4503", "45"):  # their county, its city and the region: counts only
        answer = await matching.get("/views/summary/weekly", params={"code": code_inside}, headers=outside)
        assert answer.status_code == 200, answer.text
    volunteer = {"Authorization": f"Bearer {token('volunteer', [XINGAN])}"}
    assert (await matching.get("/views/summary/weekly", params={"code": XINGAN}, headers=volunteer)).status_code == 403
    assert (await matching.get("/views/summary/weekly", params={"code": XINGAN})).status_code == 401


async def test_ten_thousand_childrens_weeks_are_counted_by_a_few_grouped_queries(database_url: str) -> None:
    """The rows put straight into the tables (no service: nothing relayed), counted as the endpoint counts them."""
    db = Database(database_url)
    try:
        await db.create(Views.metadata, EventRecord.metadata)
        now = datetime(2024, 6, 5, 12, 0, tzinfo=UTC)
        expected = await _ten_thousand_children(db, now)
        statements: list[str] = []

        def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement)

        event.listen(db.reader.sync_engine, "before_cursor_execute", seen)  # the engine's too, on PostgreSQL
        async with db.read() as conn:
            found = await weekly.figures(conn, "4503", None, now, 26)
    finally:
        await db.dispose()
    queries = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(queries) == 5  # one grouped query per series, and the running total's start
    assert [{k: v for k, v in week.items() if k != "pairings_total"} for week in found] == expected
    assert found[-1]["pairings_total"] == 10_000


async def _ten_thousand_children(db: Database, now: datetime) -> list[dict[str, Any]]:
    """A contact, a pairing and a wish for each of 10,000 children of Xing'an (and some elsewhere), spread over 30
    weeks; returns the last 26 weeks' counts as they should come out."""
    mondays = [weekly.monday(now) - timedelta(weeks=n) for n in range(29, -1, -1)]
    contacts, pairings, wishes, events = [], [], [], []
    counts: dict[str, Counter[date]] = {name: Counter() for name in weekly.SERIES}
    for index in range(10_500):
        county = XINGAN if index < 10_000 else LINGSHAN
        week = mondays[index % 30]
        at = datetime(week.year, week.month, week.day, tzinfo=CHINA) + timedelta(hours=(index * 7) % (7 * 24))
        at = min(at, now)
        child_id, pairing_id, wish_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        in_person = index % 3 != 0
        contacts.append(
            {"contact_id": uuid.uuid4(), "child_id": child_id, "county_code": county, "visitor": "volunteer"}
            | {"kind": "visit", "in_person": in_person, "occurred_at": at, "duration_minutes": 30}
        )
        pairings.append(
            {"pairing_id": pairing_id, "run_id": uuid.uuid4(), "child_id": child_id, "volunteer_id": uuid.uuid4()}
            | {"county_code": county, "risk_level": "low", "status": "confirmed", "score": 1, "score_parts": {}}
            | {"proposed_at": at, "expires_at": at, "changed_at": at, "version": 2}
        )
        status = ("posted", "claimed", "fulfilled", "withdrawn")[index % 4]
        wishes.append(
            {"wish_id": wish_id, "child_id": child_id, "county_code": county, "age_band": "9-11", "item": "书包"}
            | {"category": "study", "estimated_value_yuan": 80, "status": status, "posted_at": at, "version": 1}
        )
        confirmed = PairingConfirmed(
            pairing_id=pairing_id, child_id=child_id, volunteer_id=uuid.uuid4(), county_code=county
        )
        events.append(_event(str(pairing_id), confirmed.type_name, at))
        if status == "fulfilled":
            events.append(_event(str(wish_id), WishFulfilled.type_name, at))
        if county == XINGAN:
            counts["visits"][week] += in_person
            counts["pairings_confirmed"][week] += 1
            counts["wishes_posted"][week] += status != "withdrawn"
            counts["wishes_fulfilled"][week] += status == "fulfilled"
    async with db.begin() as conn:
        for table, rows in ((ContactRow, contacts), (PairingRecord, pairings), (WishRecord, wishes)):
            await conn.execute(insert(table), rows)
        await conn.execute(insert(EventRecord), events)
    return [{"week": week} | {name: counts[name][week] for name in weekly.SERIES} for week in mondays[-26:]]


def _event(stream_id: str, type_name: str, at: datetime) -> dict[str, Any]:
    return {"event_id": uuid.uuid4(), "stream_id": stream_id, "version": 2, "type": type_name, "data": {}} | {
        "recorded_at": at,
        "correlation_id": "weekly-figures-test",
    }


async def _confirm(matching: httpx.AsyncClient, proposal: dict[str, Any]) -> None:
    answer = await matching.post(f"/pairings/{proposal['pairing_id']}/confirm", headers=COORDINATOR)
    assert answer.status_code == 200, answer.text


async def _wish(matching: httpx.AsyncClient, child_id: str, campaign_id: str | None) -> str:
    body = {"child_id": child_id, "item": "一个新书包", "category": "study", "estimated_value_yuan": "80"}
    answer = await matching.post(
        "/wishes", json=body | ({"campaign_id": campaign_id} if campaign_id else {}), headers=COORDINATOR
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def _move(
    matching: httpx.AsyncClient, wish_id: str, step: str, headers: dict[str, str] = COORDINATOR, body: Any = None
) -> None:
    answer = await matching.post(f"/wishes/{wish_id}/{step}", json=body or {}, headers=headers)
    assert answer.status_code == 200, answer.text


async def _pairings(matching: httpx.AsyncClient, county: str) -> list[str]:
    page = await matching.get(
        "/views/pairings", params={"county_code": county, "status": "confirmed"}, headers=COORDINATOR
    )
    return [row["pairing_id"] for row in page.json()["items"]]


async def _weekly(
    matching: httpx.AsyncClient, code: str, campaign_id: str | None = None, weeks: int | None = None
) -> Any:
    params = {"code": code, "campaign_id": campaign_id, "weeks": weeks}
    answer = await matching.get(
        "/views/summary/weekly", params={k: v for k, v in params.items() if v is not None}, headers=COORDINATOR
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _settled(matching: httpx.AsyncClient, code: str, campaign_id: str | None, wanted: Any) -> Any:
    """The weeks once the engagement view has taken in the visits (or as they stand at the timeout)."""
    found: Any = {}

    async def caught_up() -> bool:
        nonlocal found
        found = await _weekly(matching, code, campaign_id, weeks=4)
        return bool(found["weeks"] == wanted)

    with contextlib.suppress(AssertionError):  # the caller's assertion shows what differs
        await wait_until(caught_up, within=30, what=f"the weeks of {code}")
    return found
