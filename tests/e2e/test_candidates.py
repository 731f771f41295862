"""The matching service's candidate view follows the registry's decisions on who may be paired."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest

from tests.e2e.conftest import System
from tests.e2e.test_walking_skeleton import CHILD, XINGAN
from tests.helpers import auth, wait_until

pytestmark = pytest.mark.e2e
VOLUNTEER = {
    "name": "黄爱心",
    "phone": "13907731234",
    "kind": "child_director",
    "county_code": XINGAN,
    "township": "兴安镇",
    "capacity": 2,
    "skills": ["safety"],
    "languages": ["zh"],
}


async def test_children_and_volunteers_become_candidates_as_the_registry_decides(system: System) -> None:
    coordinator = auth("coordinator", [XINGAN])
    today = date.today()
    async with httpx.AsyncClient(timeout=10) as http:
        registry, matching = system.url("registry"), system.url("matching")
        child = (await http.post(f"{registry}/children", json=CHILD, headers=coordinator)).json()
        volunteer = (await http.post(f"{registry}/volunteers", json=VOLUNTEER, headers=coordinator)).json()

        async def candidate(kind: str, key: str, wanted: bool) -> bool:
            page = await http.get(
                f"{matching}/views/candidates/{kind}", params={"county_code": XINGAN}, headers=coordinator
            )
            return any(
                row[key] in (child["id"], volunteer["id"]) and row["eligible"] is wanted for row in page.json()["items"]
            )

        await wait_until(lambda: candidate("children", "child_id", False), within=5, what="the child, not yet")
        await wait_until(lambda: candidate("volunteers", "volunteer_id", False), within=5, what="the volunteer")

        consent = {"given_by": "韦大山", "relation": "grandfather", "given_at": str(today), "scope": ["pairing"]}
        await http.post(f"{registry}/children/{child['id']}/consent", json=consent, headers=coordinator)
        for step in ("application", "interview", "record_check", "references"):
            screening = {
                "step": step,
                "result": "passed",
                "checked_at": str(today - timedelta(days=1)),
                "expires_at": str(today + timedelta(days=365)),
            }
            await http.post(f"{registry}/volunteers/{volunteer['id']}/screenings", json=screening, headers=coordinator)
        training = {"course": "儿童保护", "completed_at": str(today - timedelta(days=1))}
        await http.post(f"{registry}/volunteers/{volunteer['id']}/trainings", json=training, headers=coordinator)

        await wait_until(lambda: candidate("children", "child_id", True), within=5, what="the child with consent")
        await wait_until(lambda: candidate("volunteers", "volunteer_id", True), within=5, what="the vetted volunteer")

        await http.delete(f"{registry}/children/{child['id']}/consent", headers=coordinator)
        await wait_until(lambda: candidate("children", "child_id", False), within=5, what="consent withdrawn")
        outsider = await http.get(
            f"{matching}/views/candidates/children",
            params={"county_code": XINGAN},
            headers=auth("coordinator", ["450721"]),
        )
        assert outsider.status_code == 403
