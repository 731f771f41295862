"""`make run`'s demo accounts (deploy.demo_accounts) on the in-process registry's database, SQLite and PostgreSQL:
made once with passwords kept for later runs; when the kept file is lost (a database kept elsewhere), or an account
was disabled meanwhile, the next run gives it a new password or client secret rather than failing."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx

from backbone.settings import Settings
from deploy.demo_accounts import LOADER, Passwords, ensure, service_secret
from services.registry.account_command import registry_database
from services.registry.account_handlers import NewAccount
from tests.integration.account_steps import ADMIN, sign_in


async def loader_secret(settings: Settings, passwords: Passwords) -> str:
    return await service_secret(settings, passwords, LOADER, "演示数据 demo data loader")


async def client_token(registry: httpx.AsyncClient, secret: str) -> int:
    form = {"grant_type": "client_credentials", "client_id": LOADER, "client_secret": secret}
    return (await registry.post("/auth/token", data=form)).status_code


async def test_demo_accounts_are_made_once_and_given_new_secrets_when_the_kept_ones_are_lost(
    registry: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=database_url)
    kept = tmp_path / "demo-accounts.json"
    admin = NewAccount("admin", "管理员 Admin", "admin")

    secret = await loader_secret(settings, Passwords(kept))
    async with registry_database(settings) as runtime:
        password = (await ensure(runtime, admin, Passwords(kept), "")).password
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert await client_token(registry, secret) == 200
    assert (await sign_in(registry, "admin", password)).status_code == 200

    again = Passwords(kept)  # a later run: the same secrets, nothing made
    assert await loader_secret(settings, again) == secret
    async with registry_database(settings) as runtime:
        assert (await ensure(runtime, admin, again, "")).password == password
    assert (await registry.get("/accounts", headers=ADMIN)).json()["total"] == 2

    kept.unlink()  # lost: new ones, the old ones refused
    lost = Passwords(kept)
    renewed = await loader_secret(settings, lost)
    async with registry_database(settings) as runtime:
        reset = (await ensure(runtime, admin, lost, "")).password
    assert (renewed, reset) != (secret, password)
    assert (await client_token(registry, secret), await client_token(registry, renewed)) == (401, 200)
    assert (await sign_in(registry, "admin", password)).status_code == 401
    assert (await sign_in(registry, "admin", reset)).status_code == 200

    listed = (await registry.get("/accounts", params={"role": "admin"}, headers=ADMIN)).json()["items"]
    assert (await registry.post(f"/accounts/{listed[0]['id']}/disable", headers=ADMIN)).status_code == 200
    async with registry_database(settings) as runtime:  # disabled meanwhile: invited again and accepted
        assert (await ensure(runtime, admin, Passwords(kept), "")).password == reset
    assert (await sign_in(registry, "admin", reset)).status_code == 200
    assert (await registry.get("/accounts", headers=ADMIN)).json()["total"] == 2
