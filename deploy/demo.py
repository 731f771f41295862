"""Demo data drawn from the seed's counties (2023 情暖新春 campaign, Guangxi): a seeded, repeatable generator.

`load` adds only what is missing per county, so running `make run` again never duplicates a child.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from backbone.clock import local_date

# County code (GB/T 2260) → (name, demo children). Sizes follow the seed's figures, scaled down.
COUNTIES: dict[str, tuple[str, int]] = {
    "450325": ("兴安县 Xing'an", 50),  # 551 caring parents paired with 502 children
    "450721": ("灵山县 Lingshan", 40),  # 853 cadres visited 1,300+ orphans and de-facto-unsupported children
    "450521": ("合浦县 Hepu", 40),  # 1,500+ left-behind children visited; high-risk weekly
    "450981": ("北流市 Beiliu", 20),  # 793 winter clothes to 71 children
    "450226": ("三江侗族自治县 Sanjiang", 15),  # warm packs from the One Foundation
    "450225": ("融水苗族自治县 Rongshui", 15),
    "451081": ("靖西市 Jingxi", 10),
    "450332": ("恭城瑶族自治县 Gongcheng", 10),
}
LANGUAGES = {"450226": "dong", "450225": "miao", "450332": "yao", "451081": "zhuang"}
SURNAMES = "黄韦陆莫蒙覃梁廖李张王刘陈杨赵周吴徐孙马"
GIVEN = "小明华丽芳军伟敏静磊洋艳勇杰娟涛超秀兰霞平刚桂英宇欣怡"
CATEGORIES = ["left_behind"] * 6 + ["de_facto_unsupported"] * 2 + ["orphan", "in_difficulty"]
RISKS = ["low"] * 5 + ["medium"] * 3 + ["high"] * 2
GUARDIANSHIP = {
    "left_behind": ["grandparents", "grandparents", "relative", "parents"],
    "de_facto_unsupported": ["grandparents", "relative", "temporary_state"],
    "orphan": ["relative", "institution", "temporary_state"],
    "in_difficulty": ["parents", "grandparents", "relative"],
}
NEEDS = ["tutoring", "psychological", "companionship", "material", "safety", "family_calls"]


def child(county_code: str, index: int, today: date) -> dict[str, Any]:
    """The `index`-th demo child of a county: the same every time."""
    rng = random.Random(f"{county_code}:{index}")  # noqa: S311 (demo data, not security)
    category = rng.choice(CATEGORIES)
    guardianship = rng.choice(GUARDIANSHIP[category])
    languages = ["zh"] + ([LANGUAGES[county_code]] if county_code in LANGUAGES and rng.random() < 0.6 else [])
    return {
        "name": rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
        "birth_date": (today - timedelta(days=rng.randint(3 * 365, 17 * 365))).isoformat(),
        "gender": rng.choice(["female", "male"]),
        "category": category,
        "county_code": county_code,
        "township": f"第{rng.randint(1, 9)}镇",
        "village": f"第{rng.randint(1, 30)}村",
        "risk_level": "high" if category == "de_facto_unsupported" and rng.random() < 0.5 else rng.choice(RISKS),
        "guardianship": guardianship,
        "guardian_name": None if guardianship == "temporary_state" else rng.choice(SURNAMES) + rng.choice(GIVEN) * 2,
        "guardian_phone": None if guardianship == "temporary_state" else f"139{rng.randint(0, 99_999_999):08d}",
        "needs": sorted(rng.sample(NEEDS, rng.randint(1, 3))),
        "languages": languages,
    }


def volunteer(county_code: str, index: int) -> dict[str, Any]:
    """The `index`-th demo volunteer of a county: mostly caring parents (爱心家长), some child directors."""
    rng = random.Random(f"volunteer:{county_code}:{index}")  # noqa: S311 (demo data, not security)
    return {
        "name": rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
        "phone": f"138{rng.randint(0, 99_999_999):08d}",
        "kind": "child_director" if index % 5 == 0 else "caring_parent",
        "county_code": county_code,
        "township": f"第{rng.randint(1, 9)}镇",
        "village": f"第{rng.randint(1, 30)}村",
        "capacity": rng.randint(1, 3),
        "skills": sorted(rng.sample(NEEDS, rng.randint(1, 3))),
        "languages": ["zh"] + ([LANGUAGES[county_code]] if county_code in LANGUAGES else []),
    }


def consent(client: httpx.Client, registered: dict[str, Any], today: date, index: int) -> None:
    """Guardians consent for most children under 14; one in ten has not yet (the candidate view shows why): no
    pairing, wish, aid or home visit for that child until they do."""
    if index % 10 == 7 or registered["eligible_for_pairing"]:
        return
    guardian = registered.get("guardian_name") or "县未成年人救助保护中心"
    body = {"given_by": guardian, "relation": registered["guardianship"], "given_at": str(today)}
    client.post(
        f"/children/{registered['id']}/consent", json=body | {"scope": ["pairing", "home_visits", "wishes", "aid"]}
    ).raise_for_status()


def vet(client: httpx.Client, volunteer_id: str, today: date, index: int) -> None:
    """Every step passed and a training done; the record query of one in seven lapses within the month."""
    path = f"/volunteers/{volunteer_id}"
    for step in ("application", "interview", "record_check", "references"):
        days = 20 if step == "record_check" and index % 7 == 3 else 365
        screening = {
            "step": step,
            "result": "passed",
            "checked_at": str(today),
            "expires_at": str(today + timedelta(days)),
        }
        client.post(f"{path}/screenings", json=screening).raise_for_status()
    training = {"course": "儿童保护与防疫", "completed_at": str(today), "expires_at": str(today + timedelta(365))}
    client.post(f"{path}/trainings", json=training).raise_for_status()


def load(registry_url: str, auth: httpx.Auth, today: date | None = None) -> int:
    """Register the demo children and volunteers each county is still missing; returns how many were added. The
    counties load side by side: the registry's work for one overlaps the round trips of the others."""
    day = today or local_date(datetime.now(UTC))  # the programme's calendar (China)
    with ThreadPoolExecutor(max_workers=len(COUNTIES)) as pool:
        return sum(pool.map(lambda county_code: _load_county(registry_url, auth, county_code, day), COUNTIES))


def _load_county(registry_url: str, auth: httpx.Auth, county_code: str, today: date) -> int:
    added, size = 0, COUNTIES[county_code][1]
    with httpx.Client(base_url=registry_url, auth=auth, timeout=30) as client:
        have = client.get("/children", params={"county_code": county_code, "limit": 1}).raise_for_status()
        for index in range(have.json()["total"], size):
            answer = client.post("/children", json=child(county_code, index, today))
            if answer.status_code != 201:
                raise RuntimeError(f"demo child refused ({answer.status_code}): {answer.text}")
            consent(client, answer.json(), today, index)
            added += 1
        have = client.get("/volunteers", params={"county_code": county_code, "limit": 1}).raise_for_status()
        for index in range(have.json()["total"], size // 2):
            answer = client.post("/volunteers", json=volunteer(county_code, index))
            if answer.status_code != 201:
                raise RuntimeError(f"demo volunteer refused ({answer.status_code}): {answer.text}")
            vet(client, answer.json()["id"], today, index)
            added += 1
    return added


CAMPAIGN = "情暖新春 共护未来"


def campaign(registry_url: str, auth: httpx.Auth, today: date | None = None) -> str:
    """The demo's winter campaign (as the seed's, around today), created once; returns its id."""
    today = today or local_date(datetime.now(UTC))  # the programme's calendar (China)
    with httpx.Client(base_url=registry_url, auth=auth, timeout=30) as client:
        for existing in client.get("/campaigns", params={"limit": 100}).raise_for_status().json()["items"]:
            if existing["name"] == CAMPAIGN:
                return str(existing["id"])
        body = {
            "name": CAMPAIGN,
            "starts_on": str(today - timedelta(days=30)),
            "ends_on": str(today + timedelta(days=15)),
            "counties": list(COUNTIES),
            "goals": {"warm_pack": 385, "winter_clothes": 793},
        }
        return str(client.post("/campaigns", json=body).raise_for_status().json()["id"])


def engage(matching_url: str, auth: httpx.Auth, campaign_id: str, today: date | None = None, wait: float = 30.0) -> int:
    """Match each county once, confirm most proposals and record visits over the past weeks, some long ago (so a
    few children are overdue); put wishes on the board and hand out warm packs to orphans and de-facto-unsupported
    children; returns how many pairings were confirmed this time."""
    today = today or local_date(datetime.now(UTC))  # the programme's calendar (China)
    confirmed = 0
    with httpx.Client(base_url=matching_url, auth=auth, timeout=60) as client:
        for county_code, (_, size) in COUNTIES.items():
            if client.get("/views/pairings", params={"county_code": county_code, "limit": 1}).json()["total"]:
                continue  # matched on an earlier run
            _wait_for_candidates(client, county_code, size // 2, wait)
            targeted = _wishes_and_aid(client, county_code, campaign_id)
            _director_visits(client, county_code, campaign_id, targeted, today)
            run = client.post("/matching-runs", json={"county_code": county_code}).raise_for_status().json()
            for index, proposal in enumerate(run["proposals"]):
                if index % 6 == 5:
                    continue  # left for the coordinator to confirm or decline
                client.post(f"/pairings/{proposal['pairing_id']}/confirm").raise_for_status()
                confirmed += 1
                rng = random.Random(f"visit:{proposal['child_id']}")  # noqa: S311 (demo data, not security)
                days_ago = rng.choice([1, 3, 6, 10, 20, 40])
                visit = {
                    "kind": rng.choice(["visit", "visit", "tutoring", "birthday"]),
                    "in_person": True,
                    "occurred_at": f"{today - timedelta(days=days_ago)}T10:00:00+08:00",
                    "duration_minutes": rng.choice([30, 60, 90]),
                    "campaign_id": campaign_id,
                }
                client.post(f"/pairings/{proposal['pairing_id']}/contacts", json=visit).raise_for_status()
    return confirmed


def _wishes_and_aid(client: httpx.Client, county_code: str, campaign_id: str) -> list[str]:
    """Four wishes per county (one claimed by the demo donor, one fulfilled and thanked), and a warm pack for each
    orphan and de-facto-unsupported child, under the campaign; returns the children given a warm pack. Only children
    whose data may be processed for wishes, or aid, get them (under 14: a guardian consented)."""
    params: dict[str, str | int] = {"county_code": county_code, "limit": 500}
    children = client.get("/views/candidates/children", params=params).raise_for_status().json()["items"]
    wishing = [child for child in children if "wishes" in child["purposes"]][:4]
    for index, child in enumerate(wishing):
        item, category, value = WISHES[index % len(WISHES)]
        wish = {
            "child_id": child["child_id"],
            "item": item,
            "category": category,
            "estimated_value_yuan": value,
            "campaign_id": campaign_id,
        }
        posted = client.post("/wishes", json=wish).raise_for_status().json()
        for step in ("claim", "fulfil", "acknowledge")[: (1, 3, 0, 0)[index]]:  # one claimed, one already thanked
            client.post(f"/wishes/{posted['id']}/{step}", json={}).raise_for_status()
    listing: dict[str, str | int | list[str]] = {
        "county_code": county_code,
        "campaign_id": campaign_id,
        "kind": "warm_pack",
        "category": ["orphan", "de_facto_unsupported"],
        "limit": 500,
    }
    listed = client.get("/aid-lists", params=listing).raise_for_status().json()["items"]
    targeted = [c["child_id"] for c in listed if c["aid_consent"] and not c["received"]]
    if targeted:
        aid = {"campaign_id": campaign_id, "kind": "warm_pack", "quantity": 1, "value_yuan": "363.64"}
        client.post("/aid-distributions", json=aid | {"child_ids": targeted}).raise_for_status()
    return targeted


def _director_visits(
    client: httpx.Client, county_code: str, campaign_id: str, children: list[str], today: date
) -> None:
    """The county's child directors visit the orphans and de-facto-unsupported children at the festival, outside any
    pairing (the seed's cadres' visits in Lingshan)."""
    params: dict[str, str | int] = {"county_code": county_code, "limit": 500}
    volunteers = client.get("/views/candidates/volunteers", params=params).raise_for_status().json()["items"]
    directors = [v["volunteer_id"] for v in volunteers if v["kind"] == "child_director"]
    for index, child_id in enumerate(children if directors else []):
        visit = {
            "kind": "visit",
            "in_person": True,
            "occurred_at": f"{today - timedelta(days=2)}T15:00:00+08:00",
            "duration_minutes": 40,
            "campaign_id": campaign_id,
            "visitor": "child_director",
            "volunteer_id": directors[index % len(directors)],
        }
        client.post(f"/children/{child_id}/contacts", json=visit).raise_for_status()


WISHES = [
    ("一个新书包", "study", "80"),
    ("一件羽绒服", "clothing", "150"),
    ("一套课外书", "book", "60"),
    ("一个篮球", "sports", "50"),
]


def _wait_for_candidates(client: httpx.Client, county_code: str, volunteers: int, wait: float) -> None:
    """Matching learns of the registry's people through the bus: wait until it knows this county's volunteers."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        params: dict[str, str | int | bool] = {"county_code": county_code, "eligible": True, "limit": 1}
        known = client.get("/views/candidates/volunteers", params=params)
        if known.json()["total"] >= volunteers:
            return
        time.sleep(0.2)
    raise RuntimeError(f"matching did not hear of county {county_code}'s volunteers within {wait} s")
