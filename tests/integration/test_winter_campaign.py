"""A winter campaign replayed over five weeks with a settable clock: the summary equals the figures counted
independently from the scenario's own inputs, and donors see small counts suppressed."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx

from backbone.clock import SettableClock
from tests.helpers import RegistryEvents, auth, campaign, token, wait_until

XINGAN = "450325"
COORDINATOR = auth("coordinator", [XINGAN])
CAMPAIGN = str(uuid.uuid4())
CHILDREN, VOLUNTEERS, WEEKS = 120, 45, 5
CATEGORIES = ["left_behind"] * 5 + ["de_facto_unsupported"] * 2 + ["orphan", "in_difficulty"]
KINDS = ["caring_parent"] * 5 + ["social_worker", "child_director"]


async def test_the_summary_of_a_five_week_winter_campaign_equals_its_own_inputs(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    rng = random.Random(2023)
    await registry_events.emit(campaign(CAMPAIGN, XINGAN))
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

    contacts: Counter[str] = Counter()
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
                "campaign_id": CAMPAIGN,
            }
            answer = await matching.post(f"/pairings/{proposal['pairing_id']}/contacts", json=body, headers=COORDINATOR)
            assert answer.status_code == 201, answer.text
            contacts[kind] += 1
            if in_person:
                last_visit[proposal["child_id"]] = when
    for child_id in list(children)[:3]:  # three birthdays: a count a donor must not see exactly
        body = {"kind": "birthday", "in_person": False, "occurred_at": clock.now().isoformat(), "duration_minutes": 10}
        answer = await matching.post(
            f"/children/{child_id}/contacts",
            json=body | {"visitor": "cadre", "campaign_id": CAMPAIGN},
            headers=COORDINATOR,
        )
        assert answer.status_code == 201, answer.text
        contacts["birthday"] += 1

    wished = list(children)[:40]
    wish_ids = []
    for child_id in wished:
        body = {"child_id": child_id, "item": "冬衣 winter coat", "category": "clothing", "estimated_value_yuan": "120"}
        body["campaign_id"] = CAMPAIGN
        wish_ids.append((await matching.post("/wishes", json=body, headers=COORDINATOR)).json()["wish_id"])
    for index, wish_id in enumerate(wish_ids[:25]):
        donor = {"Authorization": f"Bearer {token('donor', sub=f'donor-{index % 4}')}"}
        assert (await matching.post(f"/wishes/{wish_id}/claim", headers=donor)).status_code == 200
    for wish_id in wish_ids[:15]:
        await matching.post(f"/wishes/{wish_id}/fulfil", json={}, headers=COORDINATOR)
    for wish_id in wish_ids[:8]:
        await matching.post(f"/wishes/{wish_id}/acknowledge", headers=COORDINATOR)

    targeted = [c for c, facts in children.items() if facts["category"] in ("orphan", "de_facto_unsupported")]
    aid = {"campaign_id": CAMPAIGN, "kind": "warm_pack", "quantity": 1, "value_yuan": "363.64", "child_ids": targeted}
    assert (await matching.post("/aid-distributions", json=aid, headers=COORDINATOR)).status_code == 201

    figures = (
        await matching.get("/views/summary", params={"code": XINGAN, "campaign_id": CAMPAIGN}, headers=COORDINATOR)
    ).json()

    now = clock.now()
    high = [c for c, facts in children.items() if facts["risk"] == "high"]
    overdue_high = [c for c in high if last_visit.get(c, started) + timedelta(days=7) < now]
    paired_volunteers = {p["volunteer_id"] for p in confirmed}
    assert figures["children"] == CHILDREN
    assert figures["children_by_category"] == dict(Counter(f["category"] for f in children.values()))
    assert figures["children_by_risk"] == dict(Counter(f["risk"] for f in children.values()))
    assert figures["children_paired"] == len(confirmed)
    assert figures["volunteers_active"] == len(paired_volunteers)
    assert figures["caring_parents_active"] == sum(1 for v in paired_volunteers if kinds[v] == "caring_parent")
    assert figures["visits"] == contacts["visit"] + contacts["tutoring"]
    assert figures["contacts_by_kind"] == dict(contacts)
    assert figures["wishes"] == {"posted": 40, "on_board": 15, "claimed": 10, "fulfilled": 15, "thanked": 8}
    assert figures["aid"] == {
        "warm_pack": {
            "children": len(targeted),
            "quantity": len(targeted),
            "value_yuan": str(Decimal("363.64") * len(targeted)),
        }
    }
    assert figures["overdue_high_risk"] == len(overdue_high)
    assert 0 < len(overdue_high) < len(high)  # the scenario has both: the figure is not trivially all or none

    public = (
        await matching.get("/views/summary", params={"code": "4503", "campaign_id": CAMPAIGN}, headers=auth("donor"))
    ).json()
    assert public["scope"] == "city"
    assert public["contacts_by_kind"]["birthday"] == "<5"  # three: suppressed for a donor
    assert public["children"] == CHILDREN
    assert "child_id" not in str(public)


async def _known(matching: httpx.AsyncClient, kind: str, count: int) -> None:
    async def arrived() -> bool:
        page = await matching.get(
            f"/views/candidates/{kind}",
            params={"county_code": XINGAN, "eligible": True, "limit": 1},
            headers=COORDINATOR,
        )
        return bool(page.json()["total"] == count)

    await wait_until(arrived, within=30, what=f"{count} candidate {kind}")
