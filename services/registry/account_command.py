"""`python -m services.registry account create`: an account made by the operator where the registry's database is,
for the first admin of a fresh install (nobody can sign in yet to make one); it prints the invitation to hand over.
Also the registry's database without NATS or HTTP, for `make run`'s demo accounts."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import ValidationError
from sqlalchemy import select

from backbone.auth import ROLES, Principal
from backbone.cli import Command
from backbone.runtime import Runtime
from backbone.settings import Settings
from backbone.store import Plumbing
from services.registry import account_handlers as handlers
from services.registry import accounts
from services.registry.account_api import AccountIn
from services.registry.account_records import AccountRecord, login_key
from services.registry.app import SPEC
from services.registry.domain import DomainError

OPERATOR = Principal(sub="operator", role="admin")  # who the audit log says made an account here


@asynccontextmanager
async def registry_database(settings: Settings) -> AsyncIterator[Runtime]:
    """The registry's runtime with its database only (tables made if new): what account handlers need. It derives
    logins' keys from DATA_SECRET, so it refuses the development one outside development, as the registry does."""
    settings.refuse_development_data_secret()
    runtime = Runtime(SPEC, settings)
    try:
        await runtime.db.create(Plumbing.metadata, SPEC.views)
        yield runtime
    finally:
        await runtime.db.dispose()


async def find(runtime: Runtime, login: str) -> handlers.Profile | None:
    """The account with this login, if there is one."""
    key = login_key(runtime.settings.secret, accounts.normal_login(login))
    async with runtime.db.read() as conn:
        rows = (await conn.execute(select(AccountRecord).where(AccountRecord.login_key == key))).all()
        found = await handlers.profiles(conn, rows)
    return found[0] if found else None


def _arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="an invited account and its invitation (a service: its client secret)")
    create.add_argument("--role", choices=ROLES, required=True)
    create.add_argument("--login", required=True, help="a mobile number; an admin's or a service's may be a name")
    create.add_argument("--name", required=True, help="the display name")
    create.add_argument(
        "--county", action="append", default=[], help="a coordinator's or child director's county code; repeat for more"
    )
    create.add_argument("--person-id", help="the registered volunteer or donor (roles volunteer and donor)")
    create.add_argument("--email", help="the owner's email address (optional)")


_OPTIONS = {
    "login": "--login",
    "name": "--name",
    "role": "--role",
    "counties": "--county",
    "person_id": "--person-id",
    "email": "--email",
}


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Settings) -> int:
    fields = {"login": args.login, "name": args.name, "role": args.role, "counties": args.county}
    try:
        body = AccountIn.model_validate(fields | {"person_id": args.person_id, "email": args.email})  # as POST checks
    except ValidationError as error:
        for problem in error.errors(include_input=False):
            print(f"{_OPTIONS[str(problem['loc'][0])]}: {problem['msg']}", file=sys.stderr)
        return 2
    new = handlers.NewAccount(body.login, body.name, body.role, body.counties, body.person_id, body.email)
    try:
        profile, handover = asyncio.run(_create(settings, new))
    except (DomainError, ValueError) as error:  # a rule of accounts, or the development DATA_SECRET in production
        print(f"not created: {error}", file=sys.stderr)
        return 1
    print(f"account {profile.id}: {profile.role}, {profile.state}")
    if handover.kind == "client_secret":
        print(f"client secret (shown this once): {handover.token}")
        print(f"its tokens: POST /auth/token grant_type=client_credentials client_id={profile.login} client_secret=…")
        return 0
    assert handover.expires_at is not None  # an invitation expires
    until = f"{handover.expires_at:%Y-%m-%d %H:%M} UTC"
    print(f"invitation (shown this once; it works once, until {until}): {handover.token}")
    print(f"its owner accepts it with a password of their own ({accounts.MIN_PASSWORD}+ characters, hard to guess):")
    print(f'  POST /auth/invitations/accept {{"token": "{handover.token}", "password": …}}  on the registry,')
    print(f"  or in the console: /accept-invitation#{handover.token}")
    print(f'then signs in: POST /auth/sign-in {{"login": "{profile.login}", "password": …}}')
    if handover.sent:
        print("it is also sent to its owner by SMS or email, once the notifications service runs")
    return 0


async def _create(settings: Settings, new: handlers.NewAccount) -> tuple[handlers.Profile, handlers.Handover]:
    async with registry_database(settings) as runtime:
        return await handlers.create_account(runtime, OPERATOR, new)


ACCOUNT = Command("account", "make an account where the registry's database is (the first admin)", _arguments, _run)
