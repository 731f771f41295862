"""The audit log: every read of a child's personal record, allowed or refused (who, role, when, why)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Uuid, insert
from sqlalchemy.orm import Mapped, mapped_column

from backbone.auth import Principal
from backbone.database import UtcDateTime
from backbone.runtime import Runtime
from services.registry.records import Records


class AuditEntry(Records):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_child", "child_id", "at"), Index("ix_audit_actor", "actor", "at"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    child_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    county_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    purpose: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))


async def record(
    runtime: Runtime,
    principal: Principal,
    action: str,
    children: list[tuple[uuid.UUID, str | None]],
    purpose: str | None,
    outcome: str = "allowed",
) -> None:
    """One entry per child touched, written in a transaction of its own (a refusal is logged too)."""
    if not children:
        return
    now = runtime.clock.now()
    rows = [
        {
            "at": now,
            "actor": principal.sub,
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
