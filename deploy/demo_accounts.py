"""`make run`'s demo accounts: the service account the demo data is loaded under, and one person of each kind, each
made once through the registry's account handlers (created, invitation accepted), as an operator would.

Their passwords are random and kept in DATA_DIR/demo-accounts.json (mode 0600), so every run prints the same ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from backbone.auth import Role
from backbone.runtime import Runtime
from backbone.settings import Settings
from services.registry import account_handlers as handlers
from services.registry import accounts
from services.registry.account_command import OPERATOR, find, registry_database
from services.registry.account_handlers import NewAccount
from services.registry.domain import DomainError

FILE = "demo-accounts.json"
LOADER = "demo-loader"
NOTIFIER = "notifications"  # the notifications service's own account: it looks contacts up at the registry
COORDINATOR = "13907730325"  # a coordinator of Xing'an and Lingshan
FOUNDATION = "13907710520"  # the One Foundation, which gave the seed's warm packs
XINGAN = "450325"
_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # nothing to misread: no l, 1, I, O or 0


@dataclass(frozen=True)
class DemoAccount:
    """A demo account as `make run` prints it: who it stands for, in a few words."""

    login: str
    role: Role
    password: str
    who: str


class Passwords:
    """The demo accounts' passwords and the loader's client secret, by login, in a file only its owner reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}

    def get(self, login: str) -> str | None:
        return self.known.get(login)

    def keep(self, login: str, secret: str) -> None:
        if self.known.get(login) == secret:
            return
        self.known[login] = secret
        draft = self.path.with_name(f".{self.path.name}.draft")
        draft.unlink(missing_ok=True)
        with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            json.dump(self.known, file, indent=2)
        draft.replace(self.path)  # whole or not at all


def passphrase(hints: Sequence[str]) -> str:
    """Four groups of four random characters (about 90 bits), drawn again until the password rules take it."""
    while True:
        candidate = "-".join("".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(4))
        with contextlib.suppress(DomainError):
            accounts.check_password(candidate, hints)
            return candidate


async def service_secret(settings: Settings, passwords: Passwords, login: str, name: str) -> str:
    """The client secret of a service account (the one the demo data is loaded under, the notifications service's):
    made on the first run, given a new secret if the kept one was lost."""
    async with registry_database(settings) as runtime:
        found = await find(runtime, login)
        if found is not None and (known := passwords.get(login)):
            return known
        if found is None:
            _, handover = await handlers.create_account(runtime, OPERATOR, NewAccount(login, name, "service"))
        else:
            handover = await handlers.new_client_secret(runtime, OPERATOR, found.id)
    passwords.keep(login, handover.token)
    return handover.token


async def people(
    settings: Settings, registry_url: str, matching_url: str, auth: httpx.Auth, passwords: Passwords
) -> list[DemoAccount]:
    """An admin, a coordinator of Xing'an and Lingshan, a child director and two caring parents of Xing'an (linked
    to their registrations, signing in with their registered mobile numbers; those with children paired come first),
    and a foundation (a registered donor): each made once, active, with its kept password."""
    async with (
        registry_database(settings) as runtime,
        httpx.AsyncClient(base_url=registry_url, auth=auth, timeout=30) as registry,
        httpx.AsyncClient(base_url=matching_url, auth=auth, timeout=30) as matching,
    ):
        paired = await _paired(matching)
        volunteers = [
            *await _volunteers(registry, "child_director", 1, paired),
            *await _volunteers(registry, "caring_parent", 2, paired),
        ]
        foundation = None if await find(runtime, FOUNDATION) else await _foundation(registry)
        wanted = [
            (NewAccount("admin", "管理员 Admin", "admin"), "every county; manages accounts"),
            (
                NewAccount(COORDINATOR, "协调员 Coordinator", "coordinator", [XINGAN, "450721"]),
                "Xing'an 450325 and Lingshan 450721",
            ),
            *[
                (
                    NewAccount(v["phone"], v["name"], "volunteer", person_id=uuid.UUID(v["id"])),
                    f"{v['kind'].replace('_', ' ')}, Xing'an",
                )
                for v in volunteers
            ],
            (NewAccount(FOUNDATION, "壹基金 One Foundation", "donor", person_id=foundation), "a foundation (donor)"),
        ]
        return [await ensure(runtime, new, passwords, who) for new, who in wanted]


async def ensure(runtime: Runtime, new: NewAccount, passwords: Passwords, who: str) -> DemoAccount:
    """The account active with its kept password: created and its invitation accepted the first time; if its password
    was lost (the file removed, the database kept), given a new one by a reset link, or by a new invitation when it
    is not active."""
    found = await find(runtime, new.login)
    kept = passwords.get(new.login)
    password = kept or passphrase([new.login, new.name])
    if found is None:
        # Used here and now: no link is sent to anyone.
        _, handover = await handlers.create_account(runtime, OPERATOR, replace(new, send_link=False))
        await handlers.accept_invitation(runtime, handover.token, password)
    elif found.state != "active":
        invitation = await handlers.reinvite(runtime, OPERATOR, found.id, send=False)
        await handlers.accept_invitation(runtime, invitation.token, password)
    elif kept is None:
        reset = await handlers.reset_link(runtime, OPERATOR, found.id, send=False)
        await handlers.complete_reset(runtime, reset.token, password)
    passwords.keep(new.login, password)
    return DemoAccount(new.login, new.role, password, who)


async def _paired(matching: httpx.AsyncClient) -> set[str]:
    """The volunteers of Xing'an with a confirmed pairing."""
    params: dict[str, str | int] = {"county_code": XINGAN, "status": "confirmed", "limit": 500}
    listed = (await matching.get("/views/pairings", params=params)).raise_for_status().json()["items"]
    return {pairing["volunteer_id"] for pairing in listed}


async def _volunteers(registry: httpx.AsyncClient, kind: str, count: int, paired: set[str]) -> list[dict[str, Any]]:
    """The first `count` registered volunteers of a kind in Xing'an whose personal data is still there, those with
    children paired first (the phone page has something to show)."""
    params: dict[str, str | int] = {"county_code": XINGAN, "kind": kind, "limit": 100}
    listed = (await registry.get("/volunteers", params=params)).raise_for_status().json()["items"]
    kept = [volunteer for volunteer in listed if volunteer["phone"]]
    return sorted(kept, key=lambda volunteer: volunteer["id"] not in paired)[:count]


async def _foundation(registry: httpx.AsyncClient) -> uuid.UUID:
    donor = {"name": "壹基金 One Foundation", "kind": "foundation"}
    return uuid.UUID((await registry.post("/donors", json=donor)).raise_for_status().json()["id"])
