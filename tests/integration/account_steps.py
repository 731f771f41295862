"""Steps the account and sign-in tests share: create an account as an admin would, accept its invitation, sign in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

from tests.helpers import auth
from tests.integration.test_http import assert_error

PASSWORD = "lamp-quiet-orbit-91"
ADMIN = auth("admin")


async def create(registry: httpx.AsyncClient, by: dict[str, str] = ADMIN, **body: Any) -> dict[str, Any]:
    """A new account (`name` defaults to a display name); its answer: the account and what to hand over."""
    answer = await registry.post("/accounts", json={"name": "韦小梅", **body}, headers=by)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def accept(registry: httpx.AsyncClient, handover: dict[str, Any], password: str = PASSWORD) -> httpx.Response:
    return await registry.post("/auth/invitations/accept", json={"token": handover["token"], "password": password})


async def active(
    registry: httpx.AsyncClient,
    login: str,
    role: str = "coordinator",
    counties: Iterable[str] = ("450325",),
    **body: Any,
) -> dict[str, Any]:
    """An account that has accepted its invitation (handed over, not sent), with PASSWORD."""
    created = await create(registry, login=login, role=role, counties=list(counties), send_link=False, **body)
    assert (await accept(registry, created["handover"])).status_code == 204
    account: dict[str, Any] = created["account"]
    return account


async def sign_in(registry: httpx.AsyncClient, login: str, password: str = PASSWORD) -> httpx.Response:
    return await registry.post("/auth/sign-in", json={"login": login, "password": password})


async def signed_in(registry: httpx.AsyncClient, login: str, password: str = PASSWORD) -> dict[str, Any]:
    answer = await sign_in(registry, login, password)
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def refresh(registry: httpx.AsyncClient, tokens: dict[str, Any]) -> httpx.Response:
    return await registry.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})


async def refused_refresh(registry: httpx.AsyncClient, tokens: dict[str, Any]) -> None:
    assert_error(await refresh(registry, tokens), 401, "invalid_refresh_token")


async def audit(registry: httpx.AsyncClient, **filters: str) -> list[dict[str, Any]]:
    """The audit log's entries, oldest first."""
    answer = await registry.get("/audit", params={"limit": 500, **filters}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return list(reversed(answer.json()["items"]))


async def volunteer(registry: httpx.AsyncClient, county: str = "450325", phone: str = "13977310001") -> str:
    """A registered volunteer's id."""
    body = {
        "name": "黄志明",
        "phone": phone,
        "kind": "association_volunteer",
        "county_code": county,
        "township": "湘漓镇",
    }
    answer = await registry.post("/volunteers", json=body, headers=auth("coordinator", [county]))
    assert answer.status_code == 201, answer.text
    volunteer_id: str = answer.json()["id"]
    return volunteer_id
