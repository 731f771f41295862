"""New people (children, volunteers) written in bulk: their keys, events, records and import fingerprints."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone import context
from backbone.runtime import Runtime
from backbone.store import Append
from contracts import Event
from services.registry import vault
from services.registry.fingerprints import already_imported
from services.registry.records import ImportFingerprint


@dataclass
class Enrolment:
    now: datetime
    keys: list[dict[str, Any]] = field(default_factory=list)
    appends: list[Append] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    fingerprints: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        person_id: uuid.UUID,
        events: list[Event],
        personal: dict[str, Any],
        fingerprint: str | None,
        causes: context.Causes | None = None,
    ) -> bytes:
        """A new person with a key of their own; returns their personal fields, sealed, for their record. `causes`:
        those of the request that registers them, when it is written with others' (None: the transaction's)."""
        key = vault.new_key()
        sealed = vault.seal(key, person_id, personal)
        self.keys.append({"person_id": person_id, "key": key, "created_at": self.now})
        self.appends.append(Append(str(person_id), 0, events, sealed=[sealed], causes=causes))
        if fingerprint:
            self.fingerprints.append({"fingerprint": fingerprint, "person_id": person_id})
        return sealed

    async def write(self, runtime: Runtime, conn: AsyncConnection, table: Any) -> None:
        if self.appends:
            await conn.execute(insert(vault.PersonKey), self.keys)
            await runtime.append(conn, *self.appends)
            await conn.execute(insert(table), self.records)
        if self.fingerprints:
            await conn.execute(insert(ImportFingerprint), self.fingerprints)


class Registration(Protocol):
    @property
    def fingerprint(self) -> str | None: ...


R = TypeVar("R", bound=Registration)


async def enrol(
    runtime: Runtime, table: Any, registrations: Sequence[R], enter: Callable[[Enrolment, R], None]
) -> set[str]:
    """Register new people in one transaction, `enter` deciding each one's events and record; returns the
    fingerprints that were already imported (those people are skipped)."""
    async with runtime.transaction() as conn:
        known = await already_imported(conn, [r.fingerprint for r in registrations if r.fingerprint])
        enrolment = Enrolment(runtime.clock.now())
        for registration in registrations:
            if registration.fingerprint not in known:
                enter(enrolment, registration)
        await enrolment.write(runtime, conn, table)
    return known
