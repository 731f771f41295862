"""The audit log: every read or change of a child's record, and every refusal of one (who, role, when, what, why);
every sign-in, failure, lockout, password change or reset, and every change an admin or coordinator makes to an
account; every lookup of contact details by a service (and every refused one), by its counts."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from fastapi import Request
from sqlalchemy import BigInteger, Index, Integer, String, Uuid, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from backbone.auth import Principal, Role
from backbone.database import UtcDateTime
from backbone.deps import PrincipalDep, RuntimeDep, admitted
from backbone.errors import ApiError
from backbone.runtime import Runtime
from services.registry.records import ChildRecord, Records


class AuditEntry(Records):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_child", "child_id", "at"), Index("ix_audit_actor", "actor", "at"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    # None: the request named no child (a list, a registration or an import refused)
    child_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    county_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    purpose: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))
    # the account an entry is about (a sign-in, a lockout, a role changed); None: a child's entry, or a login unknown
    account_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)


async def record(
    runtime: Runtime,
    principal: Principal,
    action: str,
    children: list[tuple[uuid.UUID | None, str | None]],
    purpose: str | None,
    outcome: str = "allowed",
) -> None:
    """One entry per child touched (or per county refused), written in a transaction of its own (a refusal is
    logged too). Ids, roles and county codes only: nothing personal goes in."""
    if not children:
        return
    now = runtime.clock.now()
    rows = [
        {
            "at": now,
            "actor": principal.sub[:100],
            "role": principal.role,
            "action": action,
            "child_id": child_id,
            "county_code": county_code,
            "purpose": purpose or "unstated",
            "outcome": outcome,
        }
        for child_id, county_code in children
    ]
    async with runtime.db.begin() as conn:
        await conn.execute(insert(AuditEntry), rows)


async def record_account(
    conn: AsyncConnection,
    at: datetime,
    actor: str,
    role: str,
    action: str,
    account_id: uuid.UUID | None,
    outcome: str = "allowed",
    note: str = "",
) -> None:
    """An account's entry, in the transaction that changes it (a failure is committed with its count): the actor is
    whoever signs in or manages the account (or, `account_id` None, looks up contact details). Ids, roles, county
    codes, counts and keyed client addresses only: never a login, a name, an email address, a phone, a password or a
    token."""
    entry = {"at": at, "actor": actor[:100], "role": role, "action": action, "account_id": account_id}
    await conn.execute(insert(AuditEntry).values(**entry, purpose=note[:200] or action, outcome=outcome))


def require(action: str, *roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """Like `backbone.deps.require` (admins and `roles` pass, services where any role does), but another role's
    attempt at `action` is audit-logged before its 403: a donor or a volunteer trying a child's record is worth
    knowing about."""

    async def check(request: Request, runtime: RuntimeDep, principal: PrincipalDep) -> Principal:
        if admitted(principal.role, roles):
            return principal
        child_id = _child_in(request)
        await record(runtime, principal, action, [(child_id, await _county_of(runtime, child_id))], None, "denied")
        raise ApiError(403, "forbidden", f"role {principal.role!r} may not do this", {"allowed": ["admin", *roles]})

    return check


async def _county_of(runtime: Runtime, child_id: uuid.UUID | None) -> str | None:
    """The county of the child refused, so that its coordinators' entries and this one read alike."""
    if child_id is None:
        return None
    async with runtime.db.read() as conn:
        county: str | None = await conn.scalar(select(ChildRecord.county_code).where(ChildRecord.id == child_id))
    return county


def _child_in(request: Request) -> uuid.UUID | None:
    """The child the request names in its path, if any (a malformed id names none)."""
    try:
        return uuid.UUID(request.path_params["child_id"])
    except (KeyError, ValueError):
        return None
