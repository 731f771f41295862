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
        training = {
            "course": "儿童保护",
            "completed_at": str(today - timedelta(days=1)),
            "expires_at": str(today + timedelta(days=365)),
        }
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


async def test_a_vetted_volunteer_is_proposed_confirmed_and_suspended_when_their_check_fails(system: System) -> None:
    """Registry to matching through the bus: the place keys make the township count, and a failed record query
    suspends the pairing with the reason."""
    coordinator = auth("coordinator", [XINGAN])
    today = date.today()
    async with httpx.AsyncClient(timeout=30) as http:
        registry, matching = system.url("registry"), system.url("matching")
        child = (
            await http.post(f"{registry}/children", json=CHILD | {"township": "  溶江镇 "}, headers=coordinator)
        ).json()
        consent = {"given_by": "韦大山", "relation": "grandfather", "given_at": str(today), "scope": ["pairing"]}
        await http.post(f"{registry}/children/{child['id']}/consent", json=consent, headers=coordinator)
        volunteer = (
            await http.post(
                f"{registry}/volunteers",
                json=VOLUNTEER | {"township": "溶江镇", "village": "五甲村"},
                headers=coordinator,
            )
        ).json()
        for step in ("application", "interview", "record_check", "references"):
            screening = {
                "step": step,
                "result": "passed",
                "checked_at": str(today - timedelta(days=1)),
                "expires_at": str(today + timedelta(days=365)),
            }
            await http.post(f"{registry}/volunteers/{volunteer['id']}/screenings", json=screening, headers=coordinator)
        training = {
            "course": "儿童保护",
            "completed_at": str(today - timedelta(days=1)),
            "expires_at": str(today + timedelta(days=365)),
        }
        await http.post(f"{registry}/volunteers/{volunteer['id']}/trainings", json=training, headers=coordinator)

        async def eligible(kind: str) -> bool:
            page = await http.get(
                f"{matching}/views/candidates/{kind}",
                params={"county_code": XINGAN, "eligible": True},
                headers=coordinator,
            )
            return page.json()["total"] == 1

        await wait_until(lambda: eligible("children"), within=5, what="the child, with consent")
        await wait_until(lambda: eligible("volunteers"), within=5, what="the vetted volunteer")

        run = await http.post(f"{matching}/matching-runs", json={"county_code": XINGAN}, headers=coordinator)
        assert run.status_code == 201, run.text
        (proposal,) = run.json()["proposals"]
        assert proposal["child_id"] == child["id"]
        assert proposal["volunteer_id"] == volunteer["id"]
        assert proposal["score_parts"]["same_township"] == 3  # the same township, however it was typed
        assert proposal["score_parts"]["same_village"] == 2
        confirmed = await http.post(f"{matching}/pairings/{proposal['pairing_id']}/confirm", headers=coordinator)
        assert confirmed.json()["status"] == "confirmed"

        failed = {"step": "record_check", "result": "failed", "checked_at": str(today)}
        await http.post(f"{registry}/volunteers/{volunteer['id']}/screenings", json=failed, headers=coordinator)

        async def suspended() -> bool:
            pairing = (await http.get(f"{matching}/pairings/{proposal['pairing_id']}", headers=coordinator)).json()
            return bool(pairing["status"] == "suspended" and pairing["reason"] == "volunteer_ineligible")

        await wait_until(suspended, within=5, what="the pairing suspended")
