"""What a paired volunteer reads before a visit: for each child of a confirmed pairing of theirs, the child's name,
township and village and the guardian's name and phone; nothing more, each read audit-logged."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import select

from backbone.deps import PrincipalDep, RuntimeDep
from backbone.errors import ApiError
from services.registry import audit, vault
from services.registry.records import ChildRecord
from services.registry.visit_access import VisitAccess

router = APIRouter(tags=["volunteers"])
PURPOSE = "visit by the paired volunteer"
_FIELDS = ("name", "township", "village", "guardian_name", "guardian_phone")


class VisitCard(BaseModel):
    pairing_id: uuid.UUID
    child_id: uuid.UUID
    name: str | None
    township: str | None
    village: str | None
    guardian_name: str | None
    guardian_phone: str | None


@router.get("/volunteers/{volunteer_id}/visit-cards", response_model=list[VisitCard])
async def visit_cards(volunteer_id: uuid.UUID, runtime: RuntimeDep, principal: PrincipalDep) -> list[VisitCard]:
    """The volunteer's own, while each pairing is confirmed (as matching's pairing events tell the registry) and the
    child may be paired (as the registry itself knows: consent withdrawn, left the programme, data erased or aged
    out, the card is gone before matching suspends the pairing). Only the volunteer themselves may read them: a
    coordinator, an admin or a service is refused like anyone else, and every refusal is audit-logged."""
    if principal.role != "volunteer" or principal.sub != str(volunteer_id):
        await audit.record(runtime, principal, "visit_card", [(None, None)], PURPOSE, "denied")
        raise ApiError(403, "forbidden", "a volunteer reads their own visit cards only")
    async with runtime.db.read() as conn:
        rows = (
            await conn.execute(
                select(VisitAccess.pairing_id, ChildRecord.id, ChildRecord.county_code, ChildRecord.sealed)
                .join(ChildRecord, ChildRecord.id == VisitAccess.child_id)
                .where(
                    VisitAccess.volunteer_id == volunteer_id,
                    VisitAccess.confirmed.is_(True),
                    ChildRecord.eligible_for_pairing.is_(True),
                )
                .order_by(VisitAccess.pairing_id)
            )
        ).all()
        keys = await vault.keys_of(conn, [row.id for row in rows])
    opened = [(row, vault.unseal(keys.get(row.id), row.id, row.sealed)) for row in rows]
    shown = [(row, personal) for row, personal in opened if personal is not None]  # erased meanwhile: nothing left
    await audit.record(runtime, principal, "visit_card", [(row.id, row.county_code) for row, _ in shown], PURPOSE)
    return [
        VisitCard(pairing_id=row.pairing_id, child_id=row.id, **{field: personal.get(field) for field in _FIELDS})
        for row, personal in shown
    ]
