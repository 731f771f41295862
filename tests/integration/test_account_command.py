"""The operator's `python -m services.registry account create` (the first admin of a fresh install), run as a process
on the in-process registry's database, SQLite and PostgreSQL: its invitation works once, through the registry's
HTTP API, and the account signs in; refusals are short messages on stderr and make no account."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.integration.account_steps import ADMIN, PASSWORD, accept, audit, bearer, signed_in
from tests.integration.test_http import assert_error


async def command(database_url: str, data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ENVIRONMENT", "DATA_SECRET")}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.registry", "account", "create", *args],
        env=clean | {"DATABASE_URL": database_url, "DATA_DIR": str(data_dir)} | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def accounts(registry: httpx.AsyncClient) -> list[dict[str, object]]:
    answer = await registry.get("/accounts", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, object]] = answer.json()["items"]
    return items


async def test_the_first_admin_is_made_by_the_command_and_signs_in_after_accepting_its_invitation(
    registry: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    made = await command(database_url, tmp_path, "--role", "admin", "--login", "Ops-Li", "--name", "李运维")
    assert made.returncode == 0, made.stderr
    assert made.stderr == ""
    account_id = re.search(r"^account ([0-9a-f-]{36}): admin, invited$", made.stdout, re.M)
    invitation = re.search(
        r"^invitation \(shown this once; it works once, until [^)]+ UTC\): (\S+)$", made.stdout, re.M
    )
    assert account_id, made.stdout
    assert invitation, made.stdout
    assert "POST /auth/invitations/accept" in made.stdout
    assert f"/accept-invitation#{invitation.group(1)}" in made.stdout

    handover = {"token": invitation.group(1)}
    assert (await accept(registry, handover)).status_code == 204
    assert_error(await accept(registry, handover), 400, "invalid_link")  # once only
    tokens = await signed_in(registry, "ops-li")  # the login as it is kept: a name in lower case
    me = (await registry.get("/me", headers=bearer(tokens))).json()
    assert (me["sub"], me["role"], me["counties"], me["name"]) == (account_id.group(1), "admin", [], "李运维")
    # The admin manages accounts over HTTP from now on: no more commands needed.
    coordinator = await registry.post(
        "/accounts",
        json={"login": "13907731234", "name": "韦小梅", "role": "coordinator", "counties": ["450325"]},
        headers=bearer(tokens),
    )
    assert coordinator.status_code == 201, coordinator.text
    made_by = [e for e in await audit(registry, actor="operator") if e["action"] == "account_create"]
    assert [(e["role"], e["account_id"]) for e in made_by] == [("admin", account_id.group(1))]
    assert PASSWORD not in made.stdout


async def test_refusals_are_short_messages_and_make_no_account(
    registry: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    first = await command(database_url, tmp_path, "--role", "service", "--login", "demo-loader", "--name", "loader")
    assert first.returncode == 0, first.stderr
    assert re.search(r"^client secret \(shown this once\): \S{43}$", first.stdout, re.M), first.stdout

    again = await command(database_url, tmp_path, "--role", "admin", "--login", "Demo-Loader", "--name", "x")
    assert (again.returncode, again.stdout, again.stderr) == (1, "", "not created: an account with this login exists\n")
    invalid = await command(database_url, tmp_path, "--role", "coordinator", "--login", "13907731234", "--name", "x")
    assert (invalid.returncode, invalid.stdout) == (1, "")
    assert invalid.stderr == "not created: a coordinator acts in at least one county\n"
    malformed = await command(
        database_url, tmp_path, "--role", "coordinator", "--login", "13907731234", "--name", " ", "--county", "45032x"
    )
    assert (malformed.returncode, malformed.stdout) == (2, "")
    assert malformed.stderr.splitlines()[0].startswith("--name: ")
    assert malformed.stderr.splitlines()[1].startswith("--county: ")
    production = await command(
        database_url, tmp_path, "--role", "admin", "--login", "ops-wang", "--name", "x", ENVIRONMENT="production"
    )
    assert (production.returncode, production.stdout) == (1, "")
    assert "DATA_SECRET is left at its development default" in production.stderr
    assert [account["login"] for account in await accounts(registry)] == ["demo-loader"]
