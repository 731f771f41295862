"""Sign-in on the in-process registry over HTTP, on SQLite and PostgreSQL: tokens, refresh rotation and reuse,
sign-out, throttling and lockout, password changes, client credentials."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx

from backbone.clock import SettableClock
from services.registry import accounts
from tests.helpers import auth
from tests.integration.account_steps import (
    ADMIN,
    PASSWORD,
    active,
    audit,
    bearer,
    create,
    refresh,
    refused_refresh,
    sign_in,
    signed_in,
)
from tests.integration.test_http import assert_error

LOGIN = "13907731234"


async def test_sign_in_use_refresh_rotate_detect_reuse_and_sign_out(registry: httpx.AsyncClient) -> None:
    account = await active(registry, LOGIN, counties=["450325"])
    tokens = await signed_in(registry, "+86 139 0773 1234")  # the same login however it is typed
    assert set(tokens) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900

    me = (await registry.get("/me", headers=bearer(tokens))).json()
    assert me["sub"] == account["id"]
    assert (me["role"], me["counties"], me["name"]) == ("coordinator", ["450325"], "韦小梅")
    assert (await registry.get("/children?county_code=450325", headers=bearer(tokens))).status_code == 200
    assert_error(await registry.get("/children?county_code=450721", headers=bearer(tokens)), 403, "forbidden")

    rotated = (await refresh(registry, tokens)).json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert (await registry.get("/me", headers=bearer(rotated))).json()["session_id"] == me["session_id"]
    # The old refresh token again: someone holds a copy. The whole session ends, the new token with it.
    await refused_refresh(registry, tokens)
    await refused_refresh(registry, rotated)
    reuse = [e for e in await audit(registry, actor=account["id"]) if e["action"] == "refresh_reuse"]
    assert len(reuse) == 1
    assert reuse[0]["outcome"] == "denied"
    assert me["session_id"] in reuse[0]["purpose"]

    second = await signed_in(registry, LOGIN)
    assert (await registry.get("/me", headers=bearer(second))).json()["session_id"] != me["session_id"]
    signed_out = await registry.post("/auth/sign-out", json={"refresh_token": second["refresh_token"]})
    assert signed_out.status_code == 204
    await refused_refresh(registry, second)
    # Its access token lives on until it expires: the documented bound.
    assert (await registry.get("/me", headers=bearer(second))).status_code == 200

    entries = [e for e in await audit(registry, actor=account["id"]) if e["account_id"] == account["id"]]
    assert [e["action"] for e in entries] == ["invite_accept", "sign_in", "refresh_reuse", "sign_in", "sign_out"]
    assert all(e["account_id"] == account["id"] for e in entries)
    logged = json.dumps(await audit(registry))
    for secret in (PASSWORD, LOGIN, tokens["refresh_token"], tokens["access_token"], rotated["refresh_token"]):
        assert secret not in logged


async def test_a_refresh_token_sent_twice_at_once_works_once_and_the_second_ends_the_session(
    registry: httpx.AsyncClient,
) -> None:
    await active(registry, LOGIN)
    tokens = await signed_in(registry, LOGIN)
    answers = await asyncio.gather(refresh(registry, tokens), refresh(registry, tokens))
    assert sorted(answer.status_code for answer in answers) == [200, 401]
    (winner,) = [answer for answer in answers if answer.status_code == 200]
    await refused_refresh(registry, winner.json())


async def test_failures_slow_down_then_lock_with_an_audit_row_each_alike_for_a_login_nobody_has(
    registry: httpx.AsyncClient, clock: SettableClock
) -> None:
    account = await active(registry, LOGIN)

    async def attempts(login: str) -> list[tuple[int, str, str | None]]:
        """Wrong passwords, then the right one, at the pace the answers allow; what each answer was."""
        seen = []

        async def attempt(password: str) -> None:
            answer = await sign_in(registry, login, password)
            seen.append(
                (answer.status_code, answer.json().get("error", {}).get("code"), answer.headers.get("retry-after"))
            )

        for _ in range(3):
            await attempt("wrong-password-0")
        await attempt("wrong-password-0")  # at once after the third: wait 1 s
        clock.advance(timedelta(seconds=1))
        await attempt("wrong-password-0")
        await attempt("wrong-password-0")  # at once after the fourth: wait 2 s
        clock.advance(timedelta(seconds=2))
        await attempt("wrong-password-0")  # the fifth: locked
        clock.advance(timedelta(minutes=14))
        await attempt(PASSWORD)  # locked: even the right password waits
        clock.advance(timedelta(minutes=1))
        await attempt(PASSWORD)
        return seen

    expected = [(401, "invalid_credentials", None)] * 3 + [
        (429, "try_later", "1"),
        (401, "invalid_credentials", None),
        (429, "try_later", "2"),
        (401, "invalid_credentials", None),
        (429, "try_later", "60"),
    ]
    assert await attempts(LOGIN) == [*expected, (200, None, None)]
    assert await attempts("13907739999") == [*expected, (401, "invalid_credentials", None)]  # nobody's: alike

    entries = (await audit(registry, actor=account["id"]))[1:]  # after its invitation's acceptance
    assert [(e["action"], e["outcome"]) for e in entries] == [
        *[("sign_in", "denied")] * 5,
        ("lockout", "denied"),
        ("sign_in", "allowed"),
    ]
    assert "wrong password" in entries[0]["purpose"]
    assert f"locked {accounts.LOCKOUT_MINUTES} minutes" in entries[5]["purpose"]
    unknown = await audit(registry, actor="unknown")
    # the right password of another login is a sixth failure here, and locks it again
    assert [e["action"] for e in unknown] == ["sign_in"] * 5 + ["lockout", "sign_in", "lockout"]
    assert "no such login" in unknown[0]["purpose"]
    assert all("wrong-password" not in e["purpose"] for e in entries + unknown)


async def test_a_success_starts_the_count_again(registry: httpx.AsyncClient) -> None:
    await active(registry, LOGIN)
    for _ in range(2):
        assert_error(await sign_in(registry, LOGIN, "wrong-password-0"), 401, "invalid_credentials")
    await signed_in(registry, LOGIN)
    for _ in range(3):  # had the count gone on, the third of these would already have to wait
        assert_error(await sign_in(registry, LOGIN, "wrong-password-0"), 401, "invalid_credentials")


async def test_an_address_with_more_than_twenty_failures_in_fifteen_minutes_waits(
    registry: httpx.AsyncClient, clock: SettableClock
) -> None:
    await active(registry, LOGIN)
    for n in range(accounts.SOURCE_LIMIT + 1):  # each a different login: none of them is slowed down by itself
        body = {"login": f"1390773{n:04d}", "password": "wrong-password-0"}
        forged = {"X-Forwarded-For": f"10.0.0.{n}"}  # a header anyone can write: not the address counted
        assert_error(await registry.post("/auth/sign-in", json=body, headers=forged), 401, "invalid_credentials")
    clock.advance(timedelta(minutes=5))
    waiting = await sign_in(registry, LOGIN)  # a login never tried, and its right password: the address waits
    assert_error(waiting, 429, "try_later")
    assert waiting.headers["retry-after"] == str(10 * 60)
    clock.advance(timedelta(minutes=10))
    await signed_in(registry, LOGIN)


async def test_change_password_checks_the_current_one_and_ends_the_other_sessions(registry: httpx.AsyncClient) -> None:
    await active(registry, LOGIN)
    here, elsewhere = await signed_in(registry, LOGIN), await signed_in(registry, LOGIN)

    async def change(current: str, new: str, tokens: dict[str, str] = here) -> httpx.Response:
        body = {"current_password": current, "new_password": new}
        return await registry.post("/me/password", json=body, headers=bearer(tokens))

    assert_error(await change("wrong-password-0", "a-new-and-better-one"), 403, "wrong_password")
    assert_error(await change(PASSWORD, "韦小梅" + LOGIN), 422, "password_weak")  # the name and login, guessable
    assert_error(await change(PASSWORD, "short"), 422, "password_too_short")
    assert (await change(PASSWORD, "a-new-and-better-one")).status_code == 204
    await refused_refresh(registry, elsewhere)
    assert (await refresh(registry, here)).status_code == 200
    assert_error(await sign_in(registry, LOGIN), 401, "invalid_credentials")
    await signed_in(registry, LOGIN, "a-new-and-better-one")
    # An operator's token (no sign-in session) has no password to change.
    body = {"current_password": PASSWORD, "new_password": "a-new-and-better-one"}
    assert_error(await registry.post("/me/password", json=body, headers=ADMIN), 401, "no_session")


async def test_a_service_gets_its_own_short_token_by_client_credentials(
    registry: httpx.AsyncClient, clock: SettableClock
) -> None:
    created = await create(registry, login="svc-demo", role="service", name="demo loader")
    assert created["account"]["state"] == "active"
    handover = created["handover"]
    assert (handover["kind"], handover["path"], handover["expires_at"]) == ("client_secret", None, None)
    form = {"grant_type": "client_credentials", "client_id": "svc-demo", "client_secret": handover["token"]}

    by_form = await registry.post("/auth/token", data=form)
    assert by_form.status_code == 200, by_form.text
    assert set(by_form.json()) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert by_form.json()["refresh_token"] is None
    me = (await registry.get("/me", headers=bearer(by_form.json()))).json()
    assert (me["sub"], me["role"], me["counties"], me["session_id"]) == ("service:svc-demo", "service", [], None)
    assert (await registry.post("/auth/token", json=form)).status_code == 200

    assert_error(await registry.post("/auth/token", data=form | {"client_secret": "x" * 43}), 401, "invalid_client")
    assert_error(await registry.post("/auth/token", data=form | {"grant_type": "password"}), 422, "invalid")
    assert_error(
        await registry.post("/auth/token", content=b"{", headers={"content-type": "application/json"}), 422, "invalid"
    )
    # A client secret opens no person's session, and a person's password no service token.
    assert_error(await sign_in(registry, "svc-demo", handover["token"]), 401, "invalid_credentials")
    await active(registry, LOGIN)
    person = form | {"client_id": LOGIN, "client_secret": PASSWORD}
    assert_error(await registry.post("/auth/token", data=person), 401, "invalid_client")

    renewed = await registry.post(f"/accounts/{created['account']['id']}/client-secret", headers=ADMIN)
    assert renewed.status_code == 201
    assert_error(await registry.post("/auth/token", data=form), 401, "invalid_client")  # the old secret
    assert (
        await registry.post("/auth/token", data=form | {"client_secret": renewed.json()["token"]})
    ).status_code == 200
    coordinator = auth("coordinator", ["450325"])
    assert_error(
        await registry.post(f"/accounts/{created['account']['id']}/client-secret", headers=coordinator),
        403,
        "forbidden",
    )


async def test_wrong_client_secrets_never_lock_the_service_out_but_the_address_still_waits(
    registry: httpx.AsyncClient,
) -> None:
    created = await create(registry, login="demo-loader", role="service", name="demo loader")
    form = {"grant_type": "client_credentials", "client_id": "demo-loader", "client_secret": "x" * 43}
    for _ in range(accounts.LOCK_AT + 1):  # a person's login would be slowed down, then locked, by these
        assert_error(await registry.post("/auth/token", data=form), 401, "invalid_client")
    right = form | {"client_secret": created["handover"]["token"]}
    assert (await registry.post("/auth/token", data=right)).status_code == 200  # at once, with no wait
    entries = await audit(registry, actor=created["account"]["id"])
    assert [(e["action"], e["outcome"]) for e in entries] == [
        *[("client_token", "denied")] * (accounts.LOCK_AT + 1),  # and no lockout
        ("client_token", "allowed"),
    ]
    for _ in range(accounts.SOURCE_LIMIT - accounts.LOCK_AT - 1):
        assert_error(await registry.post("/auth/token", data=form), 401, "invalid_client")
    assert_error(await registry.post("/auth/token", data=form), 401, "invalid_client")  # the address's 21st
    assert_error(await registry.post("/auth/token", data=right), 429, "try_later")  # now the address waits
