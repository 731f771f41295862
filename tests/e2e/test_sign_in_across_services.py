"""Sign-in on real HTTP against the running services: the registry signs (with the test session's key), matching and
notifications read its public keys from its JWKS URL. Accounts are made and invitations accepted over HTTP; then
sign-in, use everywhere, refresh, reuse detection, sign-out and disabling; a coordinator moved to another county loses
the old one within ACCESS_TOKEN_SECONDS + TOKEN_LEEWAY_SECONDS; five wrong passwords lock a login, each audit-logged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backbone.natsserver import NatsServer
from services.registry import accounts
from tests.e2e.test_tokens_across_services import cli_token
from tests.helpers import ServiceProcess, wait_until
from tests.integration.account_steps import (
    PASSWORD,
    active,
    audit,
    bearer,
    refresh,
    refused_refresh,
    sign_in,
    signed_in,
)
from tests.integration.test_http import assert_error

pytestmark = pytest.mark.e2e
XINGAN, LINGSHAN = "450325", "450721"
COORDINATOR = "13907731234"
WRONG = "wrong-password-0"
READS = {"registry": "/children", "matching": "/views/engagement", "notifications": "/views/deliveries"}  # a county's

Start = Callable[..., dict[str, ServiceProcess]]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Starts the registry and the services named, each with the settings given, the others verifying tokens with
    the keys the registry serves (as in production)."""
    nats = NatsServer(tmp_path / "nats").start()
    started: list[ServiceProcess] = []

    def run(*others: str, **env: str) -> dict[str, ServiceProcess]:
        def process(name: str, jwks_url: str | None = None) -> ServiceProcess:
            database_url = f"sqlite+aiosqlite:///{tmp_path / name}.db"
            service = ServiceProcess(
                name,
                nats_url=nats.url,
                database_url=database_url,
                data_dir=tmp_path,
                jwks_url=jwks_url,
                port=None,
                **env,
            )
            started.append(service)
            return service.start()

        registry = process("registry")
        return {"registry": registry} | {
            name: process(name, f"{registry.url}/.well-known/jwks.json") for name in others
        }

    try:
        yield run
    finally:
        for service in started:
            service.kill()
        nats.kill()


async def operator() -> dict[str, str]:
    """An admin's header from the operators' CLI, signed with the registry's key: how the first accounts are made."""
    token = await asyncio.to_thread(cli_token, "--role", "admin", "--sub", "ops-bootstrap")
    return {"Authorization": f"Bearer {token}"}


async def read(service: ServiceProcess, tokens: dict[str, Any], county: str = XINGAN) -> httpx.Response:
    """A coordinator's read of a county on `service`, with the access token of `tokens`."""
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        answer = await client.get(READS[service.name], params={"county_code": county}, headers=bearer(tokens))
    assert tokens["access_token"] not in answer.text  # a refusal never repeats the token
    return answer


async def status_everywhere(services: dict[str, ServiceProcess], tokens: dict[str, Any]) -> dict[str, int]:
    return {name: (await read(service, tokens)).status_code for name, service in services.items()}


async def test_sign_in_use_refresh_reuse_sign_out_and_disable_across_the_running_services(start: Start) -> None:
    services = start("matching", "notifications")
    everywhere = dict.fromkeys(services, 200)
    async with httpx.AsyncClient(base_url=services["registry"].url, timeout=30) as registry:
        await active(registry, "ops-admin", role="admin", counties=(), by=await operator())
        admin = bearer(await signed_in(registry, "ops-admin"))
        account = await active(registry, COORDINATOR, counties=[XINGAN], by=admin)

        tokens = await signed_in(registry, COORDINATOR)
        me = (await registry.get("/me", headers=bearer(tokens))).json()
        assert (me["sub"], me["role"], me["counties"]) == (account["id"], "coordinator", [XINGAN])
        assert await status_everywhere(services, tokens) == everywhere

        answer = await refresh(registry, tokens)
        assert answer.status_code == 200, answer.text
        rotated = answer.json()
        assert rotated["refresh_token"] != tokens["refresh_token"]
        assert rotated["access_token"] != tokens["access_token"]
        assert await status_everywhere(services, rotated) == everywhere

        elsewhere = await signed_in(registry, COORDINATOR)  # a second session, on another device
        # The used refresh token again: someone holds a copy. Refused, and its whole session ends, the newest too.
        await refused_refresh(registry, tokens)
        await refused_refresh(registry, rotated)
        answer = await refresh(registry, elsewhere)  # the other session runs on
        assert answer.status_code == 200, answer.text
        elsewhere = answer.json()

        signed_out = await registry.post("/auth/sign-out", json={"refresh_token": elsewhere["refresh_token"]})
        assert signed_out.status_code == 204
        await refused_refresh(registry, elsewhere)

        last = await signed_in(registry, COORDINATOR)
        disabled = await registry.post(f"/accounts/{account['id']}/disable", headers=admin)
        assert disabled.status_code == 200, disabled.text
        assert disabled.json()["state"] == "disabled"
        await refused_refresh(registry, last)  # at once
        assert_error(await sign_in(registry, COORDINATOR), 401, "invalid_credentials")
        # Its access token lives on until it expires (the documented bound, shown below with short tokens).
        assert (await read(services["matching"], last)).status_code == 200

        entries = await audit(registry, actor=account["id"])
        assert [(e["action"], e["outcome"]) for e in entries] == [
            ("invite_accept", "allowed"),
            ("sign_in", "allowed"),
            ("sign_in", "allowed"),
            ("refresh_reuse", "denied"),
            ("sign_out", "allowed"),
            ("sign_in", "allowed"),
            ("sign_in", "denied"),
        ]
        assert me["session_id"] in entries[3]["purpose"]
        assert "disabled account" in entries[6]["purpose"]


ACCESS_SECONDS, LEEWAY_SECONDS = 4, 1


async def test_a_coordinator_moved_to_another_county_loses_the_old_one_within_the_documented_bound(
    start: Start,
) -> None:
    services = start("matching", ACCESS_TOKEN_SECONDS=str(ACCESS_SECONDS), TOKEN_LEEWAY_SECONDS=str(LEEWAY_SECONDS))
    matching = services["matching"]
    admin = await operator()
    async with httpx.AsyncClient(base_url=services["registry"].url, timeout=30) as registry:
        account = await active(registry, COORDINATOR, counties=[XINGAN], by=admin)
        tokens = await signed_in(registry, COORDINATOR)
        assert tokens["expires_in"] == ACCESS_SECONDS
        assert (await read(matching, tokens)).status_code == 200

        changed = await registry.patch(f"/accounts/{account['id']}", json={"counties": [LINGSHAN]}, headers=admin)
        assert changed.status_code == 200, changed.text
        assert changed.json()["counties"] == [LINGSHAN]
        await refused_refresh(registry, tokens)  # at once: the session ended with the change

        # The access token still names Xing'an: matching refuses it there once it has expired, at the latest
        # ACCESS_TOKEN_SECONDS + TOKEN_LEEWAY_SECONDS after it was signed (waited for with a margin, well below
        # the 30 s the default leeway alone would add).
        async def refused() -> bool:
            return (await read(matching, tokens)).status_code == 401

        await wait_until(refused, within=ACCESS_SECONDS + LEEWAY_SECONDS + 15, what="the old token refused")
        error = assert_error(await read(matching, tokens), 401, "unauthorized")
        assert "expired" in str(error["message"])

        again = await signed_in(registry, COORDINATOR)
        assert (await read(matching, again, LINGSHAN)).status_code == 200
        assert_error(await read(matching, again, XINGAN), 403, "forbidden")


async def test_five_wrong_passwords_lock_the_login_with_an_audit_row_each_and_neither_password_nor_login_in_them(
    start: Start,
) -> None:
    services = start()
    async with httpx.AsyncClient(base_url=services["registry"].url, timeout=30) as registry:
        account = await active(registry, COORDINATOR, counties=[XINGAN], by=await operator())
        for failures in range(accounts.LOCK_AT):
            answer = await sign_in(registry, COORDINATOR, WRONG)
            if answer.status_code == 429:
                assert_error(answer, 429, "try_later")
                # From the third failure in a row on, each attempt waits 2^(n-3) s after the last one.
                assert failures >= accounts.SLOW_AFTER
                retry_after = int(answer.headers["retry-after"])
                assert 1 <= retry_after <= 2 ** (failures - accounts.SLOW_AFTER)
                await asyncio.sleep(retry_after)  # as a client does: the attempt after the wait is looked at
                answer = await sign_in(registry, COORDINATOR, WRONG)
            assert_error(answer, 401, "invalid_credentials")  # a wait as long as Retry-After said is enough

        locked = await sign_in(registry, COORDINATOR)  # even the right password waits now
        assert_error(locked, 429, "try_later")
        retry_after = int(locked.headers["retry-after"])
        assert accounts.LOCKOUT_MINUTES * 60 / 2 < retry_after <= accounts.LOCKOUT_MINUTES * 60  # locked, not slowed
        assert locked.json()["error"]["details"] == {"retry_after": retry_after}

        entries = await audit(registry, actor=account["id"])
        assert [(e["action"], e["outcome"]) for e in entries] == [
            ("invite_accept", "allowed"),
            *[("sign_in", "denied")] * accounts.LOCK_AT,
            ("lockout", "denied"),
        ]
        assert all("wrong password" in e["purpose"] for e in entries[1:-1])
        assert f"locked {accounts.LOCKOUT_MINUTES} minutes" in entries[-1]["purpose"]
        logged = json.dumps(await audit(registry))
        for secret in (WRONG, PASSWORD, COORDINATOR):
            assert secret not in logged
