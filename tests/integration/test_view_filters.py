"""The matching views' filters a console page asks for, against real NATS and each database: visits due before a
moment and children with or without a volunteer, wishes by status, candidate children by category, risk, presence
and pairing, paged in a stable order through a county of 10,000; a bad filter is a 422 that repeats nothing."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, inspect, text

from backbone.clock import PROGRAMME_TIMEZONE as SHANGHAI
from backbone.clock import SettableClock
from backbone.database import Database
from contracts.registry import ChildLeftProgramme
from services.matching.api import CandidateChildFilter
from services.matching.candidates import CandidateChild
from tests.helpers import RegistryEvents, candidates, county_of, token, wait_until
from tests.integration.test_engagement import COORDINATOR, XINGAN, at, paired_child, row_where
from tests.integration.test_error_echo import NAME, PHONE, answer_bytes, repeated

HOSTILE = f"{NAME}{PHONE}"  # a child's name and a phone, as a value no filter takes


async def listed(matching: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    answer = await matching.get(path, params={"county_code": XINGAN, "limit": 500, **params}, headers=COORDINATOR)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    assert answer.json()["total"] == len(items)
    return items


def ids(items: list[dict[str, Any]], key: str = "child_id") -> list[str]:
    return [item[key] for item in items]


async def refused_quietly(matching: httpx.AsyncClient, path: str, field: str, value: str) -> None:
    """A bad value of one filter: 422 in the error shape, naming the parameter and nothing of what was sent."""
    answer = await matching.get(path, params={"county_code": XINGAN, field: value}, headers=COORDINATOR)
    assert answer.status_code == 422, (field, answer.text)
    error = answer.json()["error"]
    assert (error["code"], set(error)) == ("invalid", {"code", "message", "details"})
    assert [problem["field"] for problem in error["details"]["problems"]] == [f"query.{field}"]
    assert repeated(answer_bytes(answer)) == []
    assert value not in answer.text


async def test_engagement_lists_the_visits_due_before_a_moment_and_the_children_with_or_without_a_volunteer(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    _, proposal = await paired_child(matching, registry_events)  # a high-risk child with a social worker
    paired = proposal["child_id"]
    medium, low = await registry_events.child("medium"), await registry_events.child("low")
    rows = {paired: await row_where(matching, paired, "the paired child", risk_level="high")}
    for child, risk in ((medium, "medium"), (low, "low")):
        rows[str(child)] = await row_where(matching, child, "the schedule", risk_level=risk)
    due = {child: at(row["next_due_at"]) for child, row in rows.items()}
    everyone = sorted(rows, key=lambda child: (due[child], child))
    assert everyone == [paired, str(medium), str(low)]  # due in 7, 14, 30 days
    path = "/views/engagement"
    assert ids(await listed(matching, path)) == everyone

    medium_due = due[str(medium)]
    assert ids(await listed(matching, path, due_before=medium_due.isoformat())) == [paired]  # strictly before
    just_after = medium_due + timedelta(seconds=1)
    assert ids(await listed(matching, path, due_before=just_after.isoformat())) == [paired, str(medium)]
    local = just_after.astimezone(SHANGHAI).isoformat()  # "+08:00": the same moment in another zone
    assert ids(await listed(matching, path, due_before=local)) == [paired, str(medium)]
    assert ids(await listed(matching, path, paired=True)) == [paired]
    assert [row["volunteer_id"] is None for row in await listed(matching, path, paired=False)] == [True, True]
    assert ids(await listed(matching, path, paired=False)) == [str(medium), str(low)]
    week = {"due_before": just_after.isoformat(), "paired": False}
    assert ids(await listed(matching, path, **week)) == [str(medium)]
    assert ids(await listed(matching, path, due_before=min(due.values()).isoformat())) == []

    export = await matching.get(f"{path}/export", params={"county_code": XINGAN, **week}, headers=COORDINATOR)
    assert export.status_code == 200, export.text
    assert [line["child_id"] for line in csv.DictReader(io.StringIO(export.content.decode("utf-8-sig")))] == [
        str(medium)
    ]
    for value in ("2026-01-05T10:00:00", "0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-01:00", HOSTILE):
        await refused_quietly(matching, path, "due_before", value)  # no zone, out of range, not a moment
        await refused_quietly(matching, f"{path}/export", "due_before", value)
    await refused_quietly(matching, path, "paired", HOSTILE)
    await refused_quietly(matching, f"{path}/export", "paired", HOSTILE)


async def test_the_wishes_view_lists_one_status(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    children = [await registry_events.child("low", gender=gender) for gender in ("female", "male", "female")]
    await candidates(matching, "children", 3)
    wishes = []
    for child in children:
        body = {"child_id": str(child), "item": "一个书包", "category": "study", "estimated_value_yuan": "80"}
        answer = await matching.post("/wishes", json=body, headers=COORDINATOR)
        assert answer.status_code == 201, answer.text
        wishes.append(answer.json()["id"])
        clock.advance(timedelta(minutes=1))  # posted one after another
    donor = {"Authorization": f"Bearer {token('donor', sub='donor-a')}"}
    assert (await matching.post(f"/wishes/{wishes[1]}/claim", headers=donor)).status_code == 200
    withdrawn = await matching.post(f"/wishes/{wishes[2]}/withdraw", json={"reason": "other"}, headers=COORDINATOR)
    assert withdrawn.status_code == 200, withdrawn.text
    path = "/views/wishes"

    claimed = await listed(matching, path, status="claimed")  # claimed, not fulfilled yet

    assert ids(claimed, "id") == [wishes[1]]
    assert (claimed[0]["donor_id"], claimed[0]["child_id"]) == ("donor-a", str(children[1]))
    assert ids(await listed(matching, path, status="posted"), "id") == [wishes[0]]
    assert ids(await listed(matching, path, status="withdrawn"), "id") == [wishes[2]]
    assert ids(await listed(matching, path, status="fulfilled"), "id") == []
    assert ids(await listed(matching, path), "id") == wishes  # every status, oldest first
    one_child = {"status": "claimed", "child_id": str(children[0])}
    assert ids(await listed(matching, path, **one_child), "id") == []
    for value in ("lost", "Claimed", HOSTILE):
        await refused_quietly(matching, path, "status", value)


async def test_candidate_children_filter_by_category_risk_presence_and_pairing_and_show_gender_and_presence(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    await registry_events.volunteer("social_worker")  # one place: the high-risk child's
    orphan = await registry_events.child("high", category="orphan", gender="female")
    boy = await registry_events.child("medium", category="left_behind", gender="male")
    unsaid = await registry_events.child("low", category="left_behind", eligible=False)  # no gender given
    gone = await registry_events.child("low", category="in_difficulty", gender="female")
    await registry_events.emit(ChildLeftProgramme(child_id=gone, reason="moved"))
    path = "/views/candidates/children"

    async def in_the_view() -> bool:
        return len(await listed(matching, path, status="left")) == 1 and len(await listed(matching, path)) == 3

    await wait_until(in_the_view, what="the children in the candidates view")
    await candidates(matching, "volunteers", 1)
    run = await matching.post("/matching-runs", json={"county_code": XINGAN}, headers=COORDINATOR)
    (proposal,) = run.json()["proposals"]
    assert proposal["child_id"] == str(orphan)

    present = sorted(str(child) for child in (orphan, boy, unsaid))
    shown = await listed(matching, path)
    assert ids(shown) == present  # in order of id, as before
    by_id = {item["child_id"]: item for item in shown}
    assert [(by_id[str(c)]["gender"], by_id[str(c)]["active"]) for c in (orphan, boy, unsaid)] == [
        ("female", True),
        ("male", True),
        (None, True),
    ]
    assert not {"name", "township", "village", "township_key", "village_key"} & set(shown[0])
    (left,) = await listed(matching, path, status="left")
    assert (left["child_id"], left["gender"], left["active"]) == (str(gone), "female", False)
    assert ids(await listed(matching, path, status="active")) == present
    assert ids(await listed(matching, path, category="left_behind")) == sorted([str(boy), str(unsaid)])
    assert ids(await listed(matching, path, category="in_difficulty")) == []  # the one who left is not active
    assert ids(await listed(matching, path, category="in_difficulty", status="left")) == [str(gone)]
    assert ids(await listed(matching, path, risk_level="high")) == [str(orphan)]
    (with_one,) = await listed(matching, path, paired=True)  # proposed counts: the child holds a place
    assert (with_one["child_id"], with_one["open_pairing_id"]) == (str(orphan), proposal["pairing_id"])
    assert ids(await listed(matching, path, paired=False)) == sorted([str(boy), str(unsaid)])
    assert ids(await listed(matching, path, needs_pairing=True)) == [str(boy)]
    assert ids(await listed(matching, path, eligible=False)) == [str(unsaid)]
    waiting = {"category": "left_behind", "risk_level": "medium", "paired": False, "eligible": True}
    assert ids(await listed(matching, path, **waiting)) == [str(boy)]
    for field, value in (
        ("category", "abandoned"),
        ("category", HOSTILE),
        ("risk_level", "extreme"),
        ("risk_level", HOSTILE),
        ("status", "all"),
        ("status", HOSTILE),
        ("paired", HOSTILE),
    ):
        await refused_quietly(matching, path, field, value)


@pytest.mark.timer_seconds(3600)  # the rows are put in the view directly: no schedules to plan for them
async def test_candidate_children_of_a_county_of_10000_page_in_one_stable_order_along_an_index(
    matching: httpx.AsyncClient, database_url: str
) -> None:
    children, _ = county_of(10_000, 0)
    left, _ = county_of(200, 0, seed=8)
    elsewhere, _ = county_of(500, 0, county="450721", seed=9)
    db = Database(database_url)
    try:
        async with db.begin() as conn:
            await conn.execute(insert(CandidateChild), children + [row | {"active": False} for row in left] + elsewhere)
        async with db.read() as conn:
            indexes = await conn.run_sync(lambda sync: inspect(sync).get_indexes("candidate_children"))
            plan = await _plan(db, conn)
    finally:
        await db.dispose()
    assert {"name": "ix_candidate_children_county_page", "columns": ["county_code", "active", "child_id"]} in [
        {"name": index["name"], "columns": index["column_names"]} for index in indexes
    ]
    assert "ix_candidate_children_county_page" in plan
    assert "TEMP B-TREE" not in plan  # SQLite: no sort of the county's children
    assert "Sort Key: candidate_children.child_id" not in plan  # PostgreSQL: none either

    pages = []
    for offset in range(0, 10_000, 500):
        answer = await matching.get(
            "/views/candidates/children",
            params={"county_code": XINGAN, "limit": 500, "offset": offset},
            headers=COORDINATOR,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["total"] == 10_000
        pages += ids(answer.json()["items"])

    assert pages == sorted(str(row["child_id"]) for row in children)  # each child once, in order of id
    assert len(set(pages)) == 10_000


async def _plan(db: Database, conn: Any) -> str:
    """How the database would read the view's default page deep into the county."""
    query = CandidateChildFilter(county_code=XINGAN).query().limit(50).offset(5_000)
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    if db.is_sqlite:
        return "\n".join(str(row[-1]) for row in await conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
    await conn.execute(text("ANALYZE candidate_children"))  # the planner's statistics, as autovacuum would have them
    return "\n".join(str(row[0]) for row in await conn.execute(text(f"EXPLAIN {sql}")))
