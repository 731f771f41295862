"""Campaign aid against real NATS and each database: a distribution list from the candidate view's filters, a receipt
per child, all or none, never twice for the same campaign and kind."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from contracts.campaigns import DonorRegistered
from tests.helpers import RegistryEvents, auth, campaign, candidates, wait_until

LINGSHAN = "450721"
COORDINATOR = auth("coordinator", [LINGSHAN])
CAMPAIGN = str(uuid.uuid4())


async def test_warm_packs_go_to_the_listed_orphans_once_each_with_a_receipt(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    await registry_events.emit(campaign(CAMPAIGN, LINGSHAN))
    orphans = [await registry_events.child("low", county=LINGSHAN, category="orphan") for _ in range(3)]
    await registry_events.child("low", county=LINGSHAN)  # left behind: not on this campaign's list
    listing = {"county_code": LINGSHAN, "campaign_id": CAMPAIGN, "kind": "warm_pack", "category": ["orphan"]}

    async def listed() -> bool:
        page = await matching.get("/aid-lists", params=listing, headers=COORDINATOR)
        return page.status_code == 200 and page.json()["total"] == 3

    await wait_until(listed, what="the orphans on the distribution list")
    body = {"campaign_id": CAMPAIGN, "kind": "warm_pack", "quantity": 1, "value_yuan": "363.64"}

    given = await matching.post(
        "/aid-distributions", json=body | {"child_ids": [str(c) for c in orphans]}, headers=COORDINATOR
    )

    assert given.status_code == 201, given.text
    result = given.json()
    assert result["quantity"] == 3
    assert result["value_yuan"] == "1090.92"
    assert sorted(r["child_id"] for r in result["receipts"]) == sorted(str(c) for c in orphans)
    receipt = await matching.get(f"/aid-distributions/{result['receipts'][0]['distribution_id']}", headers=COORDINATOR)
    assert receipt.json()["kind"] == "warm_pack"
    page = (await matching.get("/aid-lists", params=listing, headers=COORDINATOR)).json()
    assert all(child["received"] for child in page["items"])

    twice = await matching.post("/aid-distributions", json=body | {"child_ids": [str(orphans[0])]}, headers=COORDINATOR)
    assert twice.status_code == 409
    assert twice.json()["error"]["details"]["child_ids"] == [str(orphans[0])]
    clothes = await matching.post(
        "/aid-distributions",
        json=body | {"kind": "winter_clothes", "child_ids": [str(orphans[0])]},
        headers=COORDINATOR,
    )
    assert clothes.status_code == 201


async def test_a_list_with_an_unknown_child_or_another_countys_gives_nothing(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    await registry_events.emit(campaign(CAMPAIGN, LINGSHAN))
    ours = await registry_events.child("low", county=LINGSHAN)
    theirs = await registry_events.child("low", county="450325")

    await candidates(matching, "children", 1, county=LINGSHAN)
    body = {"campaign_id": CAMPAIGN, "kind": "health_pack", "quantity": 1, "value_yuan": "50"}
    unknown = await matching.post(
        "/aid-distributions", json=body | {"child_ids": [str(ours), str(uuid.uuid4())]}, headers=COORDINATOR
    )
    assert unknown.status_code == 422

    await candidates(matching, "children", 1, county="450325")
    other = await matching.post(
        "/aid-distributions", json=body | {"child_ids": [str(ours), str(theirs)]}, headers=COORDINATOR
    )
    assert other.status_code == 403
    listing = {"county_code": LINGSHAN, "campaign_id": CAMPAIGN, "kind": "health_pack"}
    page = (await matching.get("/aid-lists", params=listing, headers=COORDINATOR)).json()
    assert [child["received"] for child in page["items"]] == [False]  # nothing half-given
    typo = await matching.get("/aid-lists", params=listing | {"campaign_id": str(uuid.uuid4())}, headers=COORDINATOR)
    assert typo.json()["error"]["code"] == "unknown_campaign"
    negative = await matching.post(
        "/aid-distributions", json=body | {"value_yuan": "-5", "child_ids": [str(ours)]}, headers=COORDINATOR
    )
    assert negative.status_code == 422


async def test_aid_wishes_and_contacts_name_only_a_campaign_of_the_registry_that_covers_the_county(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    elsewhere = str(uuid.uuid4())
    await registry_events.emit(campaign(CAMPAIGN, LINGSHAN), campaign(elsewhere, "450325"))
    child = await registry_events.child("low", county=LINGSHAN)

    await candidates(matching, "children", 1, county=LINGSHAN)
    aid = {"kind": "warm_pack", "quantity": 1, "value_yuan": "363.64", "child_ids": [str(child)]}
    wish = {"child_id": str(child), "item": "a ball", "category": "sports", "estimated_value_yuan": "30"}
    visit = {"kind": "visit", "in_person": True, "occurred_at": "2023-01-20T10:00:00+08:00", "duration_minutes": 30}
    for campaign_id, code in ((str(uuid.uuid4()), "unknown_campaign"), (elsewhere, "campaign_not_in_county")):
        for path, body in (
            ("/aid-distributions", aid),
            ("/wishes", wish),
            (f"/children/{child}/contacts", visit | {"visitor": "cadre"}),
        ):
            answer = await matching.post(path, json=body | {"campaign_id": campaign_id}, headers=COORDINATOR)
            assert answer.status_code == 422, (path, answer.text)
            assert answer.json()["error"]["code"] == code
    given = await matching.post("/aid-distributions", json=aid | {"campaign_id": CAMPAIGN}, headers=COORDINATOR)
    assert given.status_code == 201


async def test_two_coordinators_giving_the_same_aid_at_once_give_it_once(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    await registry_events.emit(campaign(CAMPAIGN, LINGSHAN))
    children = [str(await registry_events.child("low", county=LINGSHAN, category="orphan")) for _ in range(20)]
    await candidates(matching, "children", 20, county=LINGSHAN)
    body = {"campaign_id": CAMPAIGN, "kind": "warm_pack", "quantity": 1, "value_yuan": "363.64", "child_ids": children}

    answers = await asyncio.gather(
        *(matching.post("/aid-distributions", json=body, headers=COORDINATOR) for _ in range(4))
    )

    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409], [a.text for a in answers]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"already_received"}
    listing = {"county_code": LINGSHAN, "campaign_id": CAMPAIGN, "kind": "warm_pack", "limit": 100}
    page = (await matching.get("/aid-lists", params=listing, headers=COORDINATOR)).json()
    assert page["total"] == 20
    assert all(child["received"] for child in page["items"])


async def test_aid_names_as_its_giver_only_a_donor_the_registry_registered(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    foundation = uuid.uuid4()  # 壹基金, say: its name stays sealed in the registry
    await registry_events.emit(campaign(CAMPAIGN, LINGSHAN), DonorRegistered(donor_id=foundation, kind="foundation"))
    child = await registry_events.child("low", county=LINGSHAN, category="orphan")
    await candidates(matching, "children", 1, county=LINGSHAN)  # the donor's event came before the child's
    body = {"campaign_id": CAMPAIGN, "kind": "warm_pack", "quantity": 1, "value_yuan": "363.64"}
    body |= {"child_ids": [str(child)]}

    unknown = await matching.post(
        "/aid-distributions", json=body | {"donor_id": str(uuid.uuid4())}, headers=COORDINATOR
    )
    given = await matching.post("/aid-distributions", json=body | {"donor_id": str(foundation)}, headers=COORDINATOR)

    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "unknown_donor"
    assert given.status_code == 201, given.text
    (receipt,) = given.json()["receipts"]
    assert receipt["donor_id"] == str(foundation)
