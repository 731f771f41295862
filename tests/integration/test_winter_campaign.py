"""A winter campaign replayed over five weeks in two counties with a settable clock: the summary of each county and of
their city equals the figures counted independently from the scenario's own inputs, donors see small counts
suppressed, and dropping every view and rebuilding it from the streams gives identical rows and the same figures."""

from __future__ import annotations

import contextlib
import random
import re
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client as NATS
from sqlalchemy import delete

from backbone.clock import SettableClock
from backbone.database import Database
from backbone.natsserver import NatsServer
from backbone.projection import Projection
from contracts.campaigns import DonorRegistered
from services.matching.app import SPEC
from services.matching.views import Views
from tests.helpers import RegistryEvents, auth, campaign, read_stream, rebuild_cli, rows, token, wait_until

XINGAN, GUANYANG = "450325", "450327"  # two counties of Guilin (4503)
COUNTIES = {XINGAN: ("兴安县", "Xing'an Xian"), GUANYANG: ("灌阳县", "Guanyang Xian")}
COORDINATOR = auth("coordinator", list(COUNTIES))
CHILDREN, VOLUNTEERS, CADRES, WEEKS = 60, 24, 3, 5  # per county
CATEGORIES = ["left_behind"] * 5 + ["de_facto_unsupported"] * 2 + ["orphan", "in_difficulty"]
KINDS = ["caring_parent"] * 5 + ["social_worker", "child_director"]
INTERVAL = {"high": 7, "medium": 14, "low": 30}  # days, the default visit policy
# The command side's records, written with their events (a wish's claim, a contact's note, a calendar feed): not
# views, not dropped.
COMMAND_SIDE = {
    "pairings",
    "visit_schedules",
    "visit_policies",
    "contacts",
    "wishes",
    "aid_distributions",
    "calendar_feeds",
}


async def test_the_summary_of_a_five_week_winter_campaign_equals_its_own_inputs(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    campaign_id, expected = await _winter_campaign(matching, registry_events, clock)

    for code, wanted in expected.items():
        figures = await _settled(matching, campaign_id, code, wanted)
        assert figures == wanted, code
    xingan = expected[XINGAN]
    assert 0 < xingan["overdue_high_risk"] < xingan["children_by_risk"]["high"]  # neither all nor none
    public = (
        await matching.get("/views/summary", params={"code": "4503", "campaign_id": campaign_id}, headers=auth("donor"))
    ).json()
    assert (public["scope"], public["name_zh"]) == ("city", "桂林市")
    assert public["contacts_by_kind"]["birthday"] == 6  # three in each county: exact for the city
    assert public["visitors"]["cadre"]["people"] == 6
    assert public["children"] == 2 * CHILDREN
    assert "child_id" not in str(public)
    export = await matching.get(
        "/views/summary/export", params={"code": "45", "campaign_id": campaign_id}, headers=auth("donor")
    )
    assert export.status_code == 200, export.text
    header, *lines = export.content.decode("utf-8-sig").splitlines()
    by_county = {line.split(",")[0]: dict(zip(header.split(","), line.split(","), strict=True)) for line in lines}
    assert set(by_county) == set(COUNTIES)  # the counties with anything to count
    columns = by_county[XINGAN]
    assert (columns["name_zh"], columns["name_pinyin"]) == COUNTIES[XINGAN]
    assert columns["children"] == str(CHILDREN)
    assert columns["contacts_by_kind.birthday"] == "<5"  # three in the county: suppressed for a donor
    assert columns["visitors.cadre.people"] == "<5"
    assert columns["aid.warm_pack.value_yuan"] == xingan["aid"]["warm_pack"]["value_yuan"]


async def test_dropping_every_view_and_rebuilding_gives_identical_rows_and_figures(
    matching: httpx.AsyncClient,
    registry_events: RegistryEvents,
    clock: SettableClock,
    database_url: str,
    nats_server: NatsServer,
    nc: NATS,
    tmp_path: Path,
) -> None:
    campaign_id, expected = await _winter_campaign(matching, registry_events, clock)
    await _settled(matching, campaign_id, "4503", expected["4503"])
    db = Database(database_url)
    projections = [p for p in SPEC.projections(None) if p.views]  # type: ignore[arg-type]
    tables = [table for projection in projections for table in projection.views]
    assert {table.name for table in tables} == set(Views.metadata.tables) - COMMAND_SIDE
    try:
        before = {table.name: await rows(db, table) for table in tables}
        assert all(before.values()), "every view has rows to lose"
        async with db.begin() as conn:  # drop every view: whatever comes back, the rebuild read from the streams
            for table in tables:
                await conn.execute(delete(table))
        assert not any([await rows(db, table) for table in tables])

        for projection in projections:
            rebuilt = await rebuild_cli(
                projection.name, database_url=database_url, nats_url=nats_server.url, data_dir=tmp_path
            )
            assert rebuilt.returncode == 0, rebuilt.stderr
            replayed = re.search(rf"rebuilt {projection.name}: (\d+) events", rebuilt.stderr)
            assert replayed is not None, rebuilt.stderr
            assert int(replayed[1]) == await _followed(nc, projection), projection.name

        assert {table.name: await rows(db, table) for table in tables} == before
    finally:
        await db.dispose()
    for code, wanted in expected.items():
        assert await _settled(matching, campaign_id, code, wanted) == wanted, code


async def _followed(nc: NATS, projection: Projection) -> int:
    """How many events of its stream the projection follows, counted message by message."""

    def follows(pattern: str, subject: str) -> bool:
        wanted, tokens = pattern.split("."), subject.split(".")
        if wanted[-1] == ">":
            return len(tokens) >= len(wanted) and all(w in ("*", t) for w, t in zip(wanted[:-1], tokens, strict=False))
        return len(tokens) == len(wanted) and all(w in ("*", t) for w, t in zip(wanted, tokens, strict=True))

    messages = await read_stream(nc.jetstream(), projection.stream)
    return sum(1 for m in messages if any(follows(pattern, m.subject) for pattern in projection.subjects))


@dataclass
class County:
    """What the scenario did in one county, kept to count the figures from."""

    code: str
    children: dict[str, dict[str, str]] = field(default_factory=dict)  # child -> category, risk
    kinds: dict[str, str] = field(default_factory=dict)  # volunteer -> kind
    cadres: list[str] = field(default_factory=list)
    confirmed: list[dict[str, Any]] = field(default_factory=list)
    contacts: Counter[str] = field(default_factory=Counter)
    visits: defaultdict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    last_visit: dict[str, datetime] = field(default_factory=dict)
    wishes: dict[str, str] = field(default_factory=dict)  # wish -> status
    warm_packs: list[str] = field(default_factory=list)


async def _winter_campaign(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> tuple[str, dict[str, dict[str, Any]]]:
    """Five weeks of the campaign in both counties; returns the campaign and, per county and for the city, the
    summary its inputs call for."""
    rng = random.Random(2023)
    campaign_id = str(uuid.uuid4())
    foundation = uuid.uuid4()  # the warm packs' giver (壹基金 in the seed)
    await registry_events.emit(
        campaign(campaign_id, *COUNTIES), DonorRegistered(donor_id=foundation, kind="foundation")
    )
    counties = [County(code) for code in COUNTIES]
    for county in counties:
        await _people(registry_events, rng, county)
    for county in counties:
        await _known(matching, county.code, "children", CHILDREN)
        await _known(matching, county.code, "volunteers", VOLUNTEERS)
    started = clock.now()
    for county in counties:
        run = await matching.post("/matching-runs", json={"county_code": county.code}, headers=COORDINATOR)
        county.confirmed = [p for i, p in enumerate(run.json()["proposals"]) if i % 10 != 9]  # one in ten left
        for proposal in county.confirmed:
            answer = await matching.post(f"/pairings/{proposal['pairing_id']}/confirm", headers=COORDINATOR)
            assert answer.status_code == 200, answer.text
        county.cadres = [str(await registry_events.volunteer("cadre", county=county.code)) for _ in range(CADRES)]
        await _known(matching, county.code, "volunteers", VOLUNTEERS + CADRES)  # after the run: never paired

    for _week in range(WEEKS):
        clock.advance(timedelta(days=7))
        for county in counties:
            await _a_week_of_contacts(matching, rng, county, clock.now(), campaign_id)
    for county in counties:
        await _festival(matching, county, clock.now(), campaign_id, foundation)

    now = clock.now()
    expected = {county.code: _figures(county, campaign_id, started, now) for county in counties}
    expected["4503"] = _city(list(expected.values()), campaign_id)
    return campaign_id, expected


async def _people(registry_events: RegistryEvents, rng: random.Random, county: County) -> None:
    for _ in range(CHILDREN):
        facts = {"category": rng.choice(CATEGORIES), "risk": rng.choice(["high", "medium", "medium", "low", "low"])}
        child = await registry_events.child(facts["risk"], category=facts["category"], county=county.code)
        county.children[str(child)] = facts
    for _ in range(VOLUNTEERS):
        kind = rng.choice(KINDS)
        volunteer = await registry_events.volunteer(kind, capacity=rng.choice([1, 2, 3]), county=county.code)
        county.kinds[str(volunteer)] = kind


async def _a_week_of_contacts(
    matching: httpx.AsyncClient, rng: random.Random, county: County, now: datetime, campaign_id: str
) -> None:
    for proposal in county.confirmed:
        if rng.random() < 0.3:
            continue  # not every pair meets every week
        kind = rng.choice(["visit", "visit", "call", "family_call", "tutoring"])
        in_person = kind in ("visit", "tutoring")
        when = now - timedelta(hours=1)
        body = {"kind": kind, "in_person": in_person, "occurred_at": when.isoformat(), "duration_minutes": 60}
        answer = await matching.post(
            f"/pairings/{proposal['pairing_id']}/contacts",
            json=body | {"campaign_id": campaign_id},
            headers=COORDINATOR,
        )
        assert answer.status_code == 201, answer.text
        county.contacts[kind] += 1
        if in_person:
            county.last_visit[proposal["child_id"]] = when
            county.visits["volunteer"].append((proposal["volunteer_id"], proposal["child_id"]))


async def _festival(
    matching: httpx.AsyncClient, county: County, now: datetime, campaign_id: str, foundation: uuid.UUID
) -> None:
    """The cadres' visits, three birthdays, wishes on their way, and warm packs for the orphans and de-facto-
    unsupported children."""
    children = list(county.children)
    for index, child_id in enumerate(children[-20:]):  # the cadres' festival visits, outside any pairing
        cadre = county.cadres[index % CADRES]
        body = {"kind": "visit", "in_person": True, "occurred_at": now.isoformat(), "duration_minutes": 45}
        body |= {"visitor": "cadre", "volunteer_id": cadre, "campaign_id": campaign_id}
        answer = await matching.post(f"/children/{child_id}/contacts", json=body, headers=COORDINATOR)
        assert answer.status_code == 201, answer.text
        county.contacts["visit"] += 1
        county.last_visit[child_id] = now
        county.visits["cadre"].append((cadre, child_id))
    for child_id in children[:3]:  # three birthdays: a count a donor must not see exactly
        body = {"kind": "birthday", "in_person": False, "occurred_at": now.isoformat(), "duration_minutes": 10}
        answer = await matching.post(
            f"/children/{child_id}/contacts",
            json=body | {"visitor": "cadre", "campaign_id": campaign_id},
            headers=COORDINATOR,
        )
        assert answer.status_code == 201, answer.text
        county.contacts["birthday"] += 1

    for child_id in children[:40]:
        body = {"child_id": child_id, "item": "冬衣 winter coat", "category": "clothing", "estimated_value_yuan": "120"}
        posted = await matching.post("/wishes", json=body | {"campaign_id": campaign_id}, headers=COORDINATOR)
        county.wishes[posted.json()["id"]] = "posted"
    wishes = list(county.wishes)
    steps = [
        (wishes[:25], "claim", "claimed"),
        (wishes[:15], "fulfil", "fulfilled"),
        (wishes[:8], "acknowledge", "acknowledged"),
        (wishes[-1:], "withdraw", "withdrawn"),
    ]
    for chosen, step, status in steps:
        for index, wish_id in enumerate(chosen):
            donor = {"Authorization": f"Bearer {token('donor', sub=f'donor-{index % 4}')}"}
            body = {"reason": "no_longer_needed"} if step == "withdraw" else {}
            answer = await matching.post(
                f"/wishes/{wish_id}/{step}", json=body, headers=donor if step == "claim" else COORDINATOR
            )
            assert answer.status_code == 200, answer.text
            county.wishes[wish_id] = status

    county.warm_packs = [c for c, f in county.children.items() if f["category"] in ("orphan", "de_facto_unsupported")]
    aid = {"campaign_id": campaign_id, "kind": "warm_pack", "quantity": 1, "value_yuan": "363.64"}
    aid["donor_id"] = str(foundation)
    answer = await matching.post("/aid-distributions", json=aid | {"child_ids": county.warm_packs}, headers=COORDINATOR)
    assert answer.status_code == 201, answer.text


def _figures(county: County, campaign_id: str, started: datetime, now: datetime) -> dict[str, Any]:
    """The summary of the county, counted from what the scenario did there."""
    children = county.children
    paired_volunteers = {p["volunteer_id"] for p in county.confirmed}
    visited = {child for pairs in county.visits.values() for _, child in pairs}
    overdue = {
        c for c, f in children.items() if county.last_visit.get(c, started) + timedelta(INTERVAL[f["risk"]]) < now
    }
    wishes = Counter(county.wishes.values())
    by_kind: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for proposal in county.confirmed:
        by_kind[county.kinds[proposal["volunteer_id"]]].append(proposal)
    name_zh, name_pinyin = COUNTIES[county.code]
    return {
        "scope": "county",
        "code": county.code,
        "name_zh": name_zh,
        "name_pinyin": name_pinyin,
        "campaign_id": campaign_id,
        "children": CHILDREN,
        "children_by_category": dict(Counter(f["category"] for f in children.values())),
        "children_by_risk": dict(Counter(f["risk"] for f in children.values())),
        "caring_parents_active": sum(1 for v in paired_volunteers if county.kinds[v] == "caring_parent"),
        "volunteers_active": len(paired_volunteers),
        "children_paired": len(county.confirmed),
        "pairings": {
            kind: {
                "volunteers": len({p["volunteer_id"] for p in pairs}),
                "children": len({p["child_id"] for p in pairs}),
                "pairings": len(pairs),
            }
            for kind, pairs in by_kind.items()
        },
        "visits": county.contacts["visit"] + county.contacts["tutoring"],
        "children_visited": dict(Counter(children[c]["category"] for c in visited)),
        "visitors": {
            visitor: {"people": len(dict(pairs)), "children": len({c for _, c in pairs}), "visits": len(pairs)}
            for visitor, pairs in county.visits.items()
        },
        "contacts_by_kind": dict(county.contacts),
        "wishes": {
            "posted": len(county.wishes) - wishes["withdrawn"],
            "on_board": wishes["posted"],
            "claimed": wishes["claimed"],
            "fulfilled": wishes["fulfilled"] + wishes["acknowledged"],
            "thanked": wishes["acknowledged"],
        },
        "aid": {
            "warm_pack": {
                "children": len(county.warm_packs),
                "quantity": len(county.warm_packs),
                "value_yuan": str(Decimal("363.64") * len(county.warm_packs)),
            }
        },
        "scheduled": dict(Counter(f["risk"] for f in children.values())),
        "overdue": {risk: sum(1 for c in overdue if children[c]["risk"] == risk) for risk in INTERVAL},
        "overdue_high_risk": sum(1 for c in overdue if children[c]["risk"] == "high"),
    }


def _city(counties: list[dict[str, Any]], campaign_id: str) -> dict[str, Any]:
    """The city's summary: its counties' figures added up (each child and volunteer belongs to one county)."""

    def added(values: list[Any]) -> Any:
        if isinstance(values[0], dict):
            keys = {key for value in values for key in value}
            return {key: added([value[key] for value in values if key in value]) for key in keys}
        if isinstance(values[0], str):  # yuan
            return str(sum((Decimal(value) for value in values), Decimal(0)))
        return sum(values)

    figures = {key: added([county[key] for county in counties]) for key in counties[0] if key not in SCOPE}
    return (
        figures
        | {"scope": "city", "code": "4503", "name_zh": "桂林市", "name_pinyin": "Guilin Shi"}
        | {"campaign_id": campaign_id}
    )


SCOPE = {"scope", "code", "name_zh", "name_pinyin", "campaign_id"}


async def _settled(
    matching: httpx.AsyncClient, campaign_id: str, code: str, expected: dict[str, Any]
) -> dict[str, Any]:
    """The area's campaign summary once the views have taken in the last event (or as it stands at the timeout)."""
    figures: dict[str, Any] = {}

    async def caught_up() -> bool:
        nonlocal figures
        params = {"code": code, "campaign_id": campaign_id}
        figures = (await matching.get("/views/summary", params=params, headers=COORDINATOR)).json()
        return figures == expected

    with contextlib.suppress(AssertionError):  # the caller's assertion shows what differs
        await wait_until(caught_up, within=30, what="the summary to take in the whole campaign")
    return figures


async def _known(matching: httpx.AsyncClient, county: str, kind: str, count: int) -> None:
    async def arrived() -> bool:
        page = await matching.get(
            f"/views/candidates/{kind}",
            params={"county_code": county, "eligible": True, "limit": 1},
            headers=COORDINATOR,
        )
        return bool(page.json()["total"] == count)

    await wait_until(arrived, within=30, what=f"{count} candidate {kind} in {county}")
