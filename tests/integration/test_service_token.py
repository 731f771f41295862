"""A service's own token by client credentials (backbone.servicetoken) against the in-process registry, on SQLite and
PostgreSQL: fetched once, reused while valid, fetched again shortly before it expires; a wrong secret is a clear
error that names neither the secret nor a token."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from backbone.clock import SettableClock
from backbone.servicetoken import RENEW_BEFORE, ServiceToken, ServiceTokenRefused
from backbone.settings import Settings
from tests.integration.account_steps import audit, create

TOKEN_URL = "http://registry/auth/token"  # the in-process registry's transport answers any URL of its host


async def service_account(registry: httpx.AsyncClient) -> tuple[str, str]:
    """A service account `demo-loader`: its id and its client secret."""
    created = await create(registry, login="demo-loader", role="service", name="demo loader")
    return created["account"]["id"], created["handover"]["token"]


def sent(answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text
    return answer.request.headers["Authorization"]


async def fetches(registry: httpx.AsyncClient, account_id: str) -> int:
    return sum(entry["action"] == "client_token" for entry in await audit(registry, actor=account_id))


async def test_a_service_token_is_fetched_once_reused_while_valid_and_fetched_again_before_it_expires(
    registry: httpx.AsyncClient, clock: SettableClock
) -> None:
    account_id, secret = await service_account(registry)
    token = ServiceToken(TOKEN_URL, "demo-loader", SecretStr(secret), clock)

    first = await registry.get("/me", auth=token)
    me = first.json()
    assert (me["sub"], me["role"], me["session_id"]) == ("service:demo-loader", "service", None)
    assert await fetches(registry, account_id) == 1
    # A service token acts in every county, as the demo loader needs.
    assert (await registry.get("/children", params={"county_code": "450721"}, auth=token)).status_code == 200
    clock.advance(timedelta(seconds=900) - RENEW_BEFORE - timedelta(seconds=1))  # the registry's 900 s, nearly due
    assert sent(await registry.get("/me", auth=token)) == sent(first)
    assert await fetches(registry, account_id) == 1

    clock.advance(timedelta(seconds=2))  # RENEW_BEFORE less a second before it expires: a new one
    renewed = sent(await registry.get("/me", auth=token))
    assert renewed != sent(first)
    assert sent(await registry.get("/me", auth=token)) == renewed
    assert await fetches(registry, account_id) == 2


@pytest.mark.settings(access_token_seconds=30)
async def test_a_short_lived_token_is_fetched_again_half_way_through_its_life(
    registry: httpx.AsyncClient, clock: SettableClock
) -> None:
    account_id, secret = await service_account(registry)
    token = ServiceToken(TOKEN_URL, "demo-loader", SecretStr(secret), clock)
    first = sent(await registry.get("/me", auth=token))
    clock.advance(timedelta(seconds=14))
    assert sent(await registry.get("/me", auth=token)) == first
    clock.advance(timedelta(seconds=1))
    assert sent(await registry.get("/me", auth=token)) != first
    assert await fetches(registry, account_id) == 2


async def test_a_wrong_secret_is_a_clear_error_naming_neither_secret_nor_token(
    registry: httpx.AsyncClient, clock: SettableClock
) -> None:
    _, secret = await service_account(registry)
    wrong = "w" * len(secret)
    settings = Settings(token_url=TOKEN_URL, service_client_id="demo-loader", service_client_secret=wrong)
    token = ServiceToken.from_settings(settings, clock)
    with pytest.raises(ServiceTokenRefused) as refused:
        await registry.get("/me", auth=token)
    message = str(refused.value)
    assert message.startswith(f"{TOKEN_URL} gave client 'demo-loader' no token (401 invalid_client: ")
    assert wrong not in message
    assert refused.value.__cause__ is None
    assert wrong not in repr(token.__dict__)  # a stray repr (a debugger, a log of the client) shows no secret

    right = ServiceToken(TOKEN_URL, "demo-loader", SecretStr(secret), clock)
    assert (await registry.get("/me", auth=right)).status_code == 200  # the account itself is fine
    assert secret not in repr(right.__dict__)
    with pytest.raises(ValueError, match="SERVICE_CLIENT_ID and SERVICE_CLIENT_SECRET"):
        ServiceToken.from_settings(Settings(service_client_id="demo-loader"))


async def test_a_service_token_acts_where_any_role_may_but_not_where_only_an_admin_may(
    registry: httpx.AsyncClient,
) -> None:
    _, secret = await service_account(registry)
    answer = await registry.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "client_id": "demo-loader", "client_secret": secret},
    )
    assert answer.status_code == 200, answer.text
    service = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    assert (await registry.get("/children", params={"county_code": "450325"}, headers=service)).status_code == 200
    assert (await registry.get("/audit", headers=service)).status_code == 403  # the audit log is an admin's
    listed = await registry.get("/accounts", headers=service)  # it manages a county's volunteers in none
    assert (listed.status_code, listed.json()["items"]) == (200, [])
