"""Which volunteer may read what a visit needs of which child: the registry's own view of matching's pairing events.
A volunteer holds it only while their pairing is confirmed; suspended, closed, declined or lapsed, it is gone at once.
The registry reads no other database: it learns this from the MATCHING stream, as any other projection does."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import ClassVar

from sqlalchemy import Boolean, Index, Table, Uuid
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from backbone.projection import Delivered, Projection
from backbone.store import upsert
from contracts.matching import (
    PairingClosed,
    PairingConfirmed,
    PairingDeclined,
    PairingLapsed,
    PairingResumed,
    PairingSuspended,
    PairingWithdrawn,
)
from services.registry.records import Records

OPENS = PairingConfirmed | PairingResumed
ENDS = PairingSuspended | PairingClosed | PairingDeclined | PairingLapsed | PairingWithdrawn


class VisitAccess(Records):
    __tablename__ = "visit_access"
    __table_args__ = (Index("ix_visit_access_volunteer", "volunteer_id", "confirmed"),)

    pairing_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    child_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    volunteer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    confirmed: Mapped[bool] = mapped_column(Boolean)


class PairingAccess(Projection):
    name: ClassVar[str] = "registry-visit-access"
    stream: ClassVar[str] = "MATCHING"
    subjects: ClassVar[list[str]] = ["matching.pairing.>"]
    views: ClassVar[list[Table]] = [VisitAccess.__table__]  # type: ignore[list-item]

    async def apply(self, conn: AsyncConnection, events: Sequence[Delivered]) -> None:
        latest: dict[uuid.UUID, dict[str, object]] = {}
        for delivered in events:  # in order: a pairing's last event in the batch decides
            event = delivered.event
            if isinstance(event, OPENS | ENDS):
                latest[event.pairing_id] = {
                    "pairing_id": event.pairing_id,
                    "child_id": event.child_id,
                    "volunteer_id": event.volunteer_id,
                    "confirmed": isinstance(event, OPENS),
                }
        if latest:
            await conn.execute(upsert(conn, VisitAccess, ["pairing_id"]), list(latest.values()))
