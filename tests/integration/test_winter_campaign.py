"""A winter campaign replayed over five weeks with a settable clock: the summary equals the figures counted
independently from the scenario's own inputs, donors see small counts suppressed, and dropping every view and
rebuilding it from the streams gives identical rows and the same figures."""

from __future__ import annotations

import contextlib
import random
import uuid
from collections import Counter, defaultdict
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from backbone.clock import SettableClock
from backbone.database import Database
from backbone.natsserver import NatsServer
from services.matching.app import SPEC
from services.matching.views import Views
from tests.helpers import RegistryEvents, auth, campaign, rebuild_cli, rows, token, wait_until

XINGAN = "450325"
COORDINATOR = auth("coordinator", [XINGAN])
CHILDREN, VOLUNTEERS, CADRES, WEEKS = 120, 45, 3, 5
CATEGORIES = ["left_behind"] * 5 + ["de_facto_unsupported"] * 2 + ["orphan", "in_difficulty"]
KINDS = ["caring_parent"] * 5 + ["social_worker", "child_director"]


async def test_the_summary_of_a_five_week_winter_campaign_equals_its_own_inputs(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    campaign_id, expected = await _winter_campaign(matching, registry_events, clock)

    figures = await _settled(matching, campaign_id, expected)

    assert figures == expected
    assert 0 < figures["overdue_high_risk"] < figures["children_by_risk"]["high"]  # neither all nor none
    public = (
        await matching.get("/views/summary", params={"code": "4503", "campaign_id": campaign_id}, headers=auth("donor"))
    ).json()
    assert public["scope"] == "city"
    assert public["name_zh"] == "桂林市"
    assert public["contacts_by_kind"]["birthday"] == "<5"  # three: suppressed for a donor
    assert public["visitors"]["cadre"]["people"] == "<5"
    assert public["children"] == CHILDREN
    assert "child_id" not in str(public)
    export = await matching.get(
        "/views/summary/export", params={"code": "45", "campaign_id": campaign_id}, headers=auth("donor")
    )
    assert export.status_code == 200, export.text
    header, xingan, *others = export.content.decode("utf-8-sig").splitlines()
    columns = dict(zip(header.split(","), xingan.split(","), strict=True))
    assert not others  # one county has anything to count
    assert (columns["county_code"], columns["name_pinyin"]) == (XINGAN, "Xing'an Xian")
    assert columns["children"] == str(CHILDREN)
    assert columns["contacts_by_kind.birthday"] == "<5"
    assert columns["aid.warm_pack.value_yuan"] == expected["aid"]["warm_pack"]["value_yuan"]


async def test_dropping_every_view_and_rebuilding_gives_identical_rows_and_figures(
    matching: httpx.AsyncClient,
    registry_events: RegistryEvents,
    clock: SettableClock,
    database_url: str,
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    campaign_id, expected = await _winter_campaign(matching, registry_events, clock)
    await _settled(matching, campaign_id, expected)
    db = Database(database_url)
    views = {projection.name: projection.views for projection in SPEC.projections(None)}  # type: ignore[arg-type]
    assert {table.name for tables in views.values() for table in tables} == set(Views.metadata.tables) - COMMAND_SIDE
    try:
        before = {table.name: await rows(db, table) for tables in views.values() for table in tables}
        assert all(before.values()), "every view has rows to lose"

        for name in views:
            rebuilt = await rebuild_cli(name, database_url=database_url, nats_url=nats_server.url, data_dir=tmp_path)
            assert rebuilt.returncode == 0, rebuilt.stderr

        assert {table.name: await rows(db, table) for tables in views.values() for table in tables} == before
    finally:
        await db.dispose()
    assert await _settled(matching, campaign_id, expected) == expected


# The command side's records, written with their events (a wish's claim, a contact's note): not views, not dropped.
COMMAND_SIDE = {"pairings", "visit_schedules", "visit_policies", "contacts", "wishes", "aid_distributions"}


async def _winter_campaign(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> tuple[str, dict[str, Any]]:
    """Five weeks of a county's campaign; returns the campaign and the summary its inputs call for."""
    rng = random.Random(2023)
    campaign_id = str(uuid.uuid4())
    await registry_events.emit(campaign(campaign_id, XINGAN))
    children: dict[str, dict[str, str]] = {}
    for _ in range(CHILDREN):
        facts = {"category": rng.choice(CATEGORIES), "risk": rng.choice(["high", "medium", "medium", "low", "low"])}
        child = await registry_events.child(facts["risk"], category=facts["category"])
        children[str(child)] = facts
    kinds: dict[str, str] = {}
    for _ in range(VOLUNTEERS):
        kind = rng.choice(KINDS)
        kinds[str(await registry_events.volunteer(kind, capacity=rng.choice([1, 2, 3])))] = kind
    await _known(matching, "children", CHILDREN)
    await _known(matching, "volunteers", VOLUNTEERS)
    started = clock.now()

    proposals = (await matching.post("/matching-runs", json={"county_code": XINGAN}, headers=COORDINATOR)).json()[
        "proposals"
    ]
    confirmed = [p for i, p in enumerate(proposals) if i % 10 != 9]  # one in ten left for later
    for proposal in confirmed:
        answer = await matching.post(f"/pairings/{proposal['pairing_id']}/confirm", headers=COORDINATOR)
        assert answer.status_code == 200, answer.text
    cadres = [str(await registry_events.volunteer("cadre")) for _ in range(CADRES)]  # after the run: never paired
    await _known(matching, "volunteers", VOLUNTEERS + CADRES)

    contacts: Counter[str] = Counter()
    visits: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)  # visitor -> (volunteer, child)
    last_visit: dict[str, Any] = {}
    for _week in range(WEEKS):
        clock.advance(timedelta(days=7))
        for proposal in confirmed:
            if rng.random() < 0.3:
                continue  # not every pair meets every week
            kind = rng.choice(["visit", "visit", "call", "family_call", "tutoring"])
            in_person = kind in ("visit", "tutoring")
            when = clock.now() - timedelta(hours=1)
            body = {
                "kind": kind,
                "in_person": in_person,
                "occurred_at": when.isoformat(),
                "duration_minutes": 60,
                "campaign_id": campaign_id,
            }
            answer = await matching.post(f"/pairings/{proposal['pairing_id']}/contacts", json=body, headers=COORDINATOR)
            assert answer.status_code == 201, answer.text
            contacts[kind] += 1
            if in_person:
                last_visit[proposal["child_id"]] = when
                visits["volunteer"].append((proposal["volunteer_id"], proposal["child_id"]))
    for index, child_id in enumerate(list(children)[-20:]):  # the cadres' festival visits, outside any pairing
        cadre = cadres[index % CADRES]
        body = {"kind": "visit", "in_person": True, "occurred_at": clock.now().isoformat(), "duration_minutes": 45}
        body |= {"visitor": "cadre", "volunteer_id": cadre, "campaign_id": campaign_id}
        answer = await matching.post(f"/children/{child_id}/contacts", json=body, headers=COORDINATOR)
        assert answer.status_code == 201, answer.text
        contacts["visit"] += 1
        last_visit[child_id] = clock.now()
        visits["cadre"].append((cadre, child_id))
    for child_id in list(children)[:3]:  # three birthdays: a count a donor must not see exactly
        body = {"kind": "birthday", "in_person": False, "occurred_at": clock.now().isoformat(), "duration_minutes": 10}
        answer = await matching.post(
            f"/children/{child_id}/contacts",
            json=body | {"visitor": "cadre", "campaign_id": campaign_id},
            headers=COORDINATOR,
        )
        assert answer.status_code == 201, answer.text
        contacts["birthday"] += 1

    wish_ids = []
    for child_id in list(children)[:40]:
        body = {"child_id": child_id, "item": "冬衣 winter coat", "category": "clothing", "estimated_value_yuan": "120"}
        body["campaign_id"] = campaign_id
        wish_ids.append((await matching.post("/wishes", json=body, headers=COORDINATOR)).json()["wish_id"])
    for index, wish_id in enumerate(wish_ids[:25]):
        donor = {"Authorization": f"Bearer {token('donor', sub=f'donor-{index % 4}')}"}
        assert (await matching.post(f"/wishes/{wish_id}/claim", headers=donor)).status_code == 200
    for wish_id in wish_ids[:15]:
        await matching.post(f"/wishes/{wish_id}/fulfil", json={}, headers=COORDINATOR)
    for wish_id in wish_ids[:8]:
        await matching.post(f"/wishes/{wish_id}/acknowledge", headers=COORDINATOR)
    withdrawn = {"reason": "no_longer_needed"}
    assert (await matching.post(f"/wishes/{wish_ids[-1]}/withdraw", json=withdrawn, headers=COORDINATOR)).is_success

    targeted = [c for c, facts in children.items() if facts["category"] in ("orphan", "de_facto_unsupported")]
    aid = {"campaign_id": campaign_id, "kind": "warm_pack", "quantity": 1, "value_yuan": "363.64"}
    answer = await matching.post("/aid-distributions", json=aid | {"child_ids": targeted}, headers=COORDINATOR)
    assert answer.status_code == 201, answer.text

    now = clock.now()
    high = [c for c, facts in children.items() if facts["risk"] == "high"]
    interval = {"high": 7, "medium": 14, "low": 30}  # days, the default visit policy
    overdue = {c for c, f in children.items() if last_visit.get(c, started) + timedelta(interval[f["risk"]]) < now}
    paired_volunteers = {p["volunteer_id"] for p in confirmed}
    visited = {child for pairs in visits.values() for _, child in pairs}
    return campaign_id, {
        "scope": "county",
        "code": XINGAN,
        "name_zh": "兴安县",
        "name_pinyin": "Xing'an Xian",
        "campaign_id": campaign_id,
        "children": CHILDREN,
        "children_by_category": dict(Counter(f["category"] for f in children.values())),
        "children_by_risk": dict(Counter(f["risk"] for f in children.values())),
        "caring_parents_active": sum(1 for v in paired_volunteers if kinds[v] == "caring_parent"),
        "volunteers_active": len(paired_volunteers),
        "children_paired": len(confirmed),
        "visits": contacts["visit"] + contacts["tutoring"],
        "children_visited": dict(Counter(children[c]["category"] for c in visited)),
        "visitors": {
            visitor: {
                "people": len({v for v, _ in pairs}),
                "children": len({c for _, c in pairs}),
                "visits": len(pairs),
            }
            for visitor, pairs in visits.items()
        },
        "contacts_by_kind": dict(contacts),
        "wishes": {"posted": 39, "on_board": 14, "claimed": 10, "fulfilled": 15, "thanked": 8},
        "aid": {
            "warm_pack": {
                "children": len(targeted),
                "quantity": len(targeted),
                "value_yuan": str(Decimal("363.64") * len(targeted)),
            }
        },
        "scheduled": dict(Counter(f["risk"] for f in children.values())),
        "overdue": {risk: sum(1 for c in overdue if children[c]["risk"] == risk) for risk in ("high", "medium", "low")},
        "overdue_high_risk": sum(1 for c in high if c in overdue),
    }


async def _settled(matching: httpx.AsyncClient, campaign_id: str, expected: dict[str, Any]) -> dict[str, Any]:
    """The county's campaign summary once the views have taken in the last event (or as it stands at the timeout)."""
    figures: dict[str, Any] = {}

    async def caught_up() -> bool:
        nonlocal figures
        params = {"code": XINGAN, "campaign_id": campaign_id}
        figures = (await matching.get("/views/summary", params=params, headers=COORDINATOR)).json()
        return figures == expected

    with contextlib.suppress(AssertionError):  # the caller's assertion shows what differs
        await wait_until(caught_up, within=20, what="the summary to take in the whole campaign")
    return figures


async def _known(matching: httpx.AsyncClient, kind: str, count: int) -> None:
    async def arrived() -> bool:
        page = await matching.get(
            f"/views/candidates/{kind}",
            params={"county_code": XINGAN, "eligible": True, "limit": 1},
            headers=COORDINATOR,
        )
        return bool(page.json()["total"] == count)

    await wait_until(arrived, within=30, what=f"{count} candidate {kind}")
