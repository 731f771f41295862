"""Donors and campaigns: the 2023 campaign as the seed describes it."""

from __future__ import annotations

import httpx

from tests.helpers import auth

SANJIANG, RONGSHUI, XINGAN = "450226", "450225", "450325"
WINTER = {
    "name": "情暖新春 共护未来",
    "starts_on": "2023-01-10",
    "ends_on": "2023-02-15",
    "counties": [SANJIANG, RONGSHUI],
    "goals": {"warm_pack": 385},
}


async def test_a_campaign_with_its_goals_is_created_and_readable_by_donors(registry: httpx.AsyncClient) -> None:
    coordinator = auth("coordinator", [SANJIANG, RONGSHUI])
    created = await registry.post("/campaigns", json=WINTER, headers=coordinator)
    assert created.status_code == 201, created.text
    read = await registry.get(f"/campaigns/{created.json()['id']}", headers=auth("donor"))
    assert read.json() | {"id": None} == WINTER | {"id": None}
    assert (await registry.get("/campaigns", headers=auth("donor"))).json()["total"] == 1
    elsewhere = await registry.post("/campaigns", json=WINTER, headers=auth("coordinator", [XINGAN]))
    assert elsewhere.status_code == 403
    backwards = await registry.post("/campaigns", json=WINTER | {"ends_on": "2023-01-01"}, headers=coordinator)
    assert backwards.status_code == 422
    unknown_goal = await registry.post("/campaigns", json=WINTER | {"goals": {"gold": 1}}, headers=coordinator)
    assert unknown_goal.status_code == 422


async def test_donors_are_registered_with_their_names_sealed(registry: httpx.AsyncClient) -> None:
    foundation = {"name": "壹基金", "kind": "foundation", "contact_name": "李联络", "phone": "13800001111"}
    created = await registry.post("/donors", json=foundation, headers=auth("coordinator", [XINGAN]))
    assert created.status_code == 201, created.text
    assert created.json()["kind"] == "foundation"
    assert "name" not in created.json()
    refused = await registry.post("/donors", json=foundation, headers=auth("donor"))
    assert refused.status_code == 403
