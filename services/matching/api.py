"""HTTP routes of the matching service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.engine import Row

from backbone.auth import Principal
from backbone.deps import RuntimeDep, require, require_county
from backbone.paging import Page, Paging, fetch_page
from contracts.vocabulary import CountyCode, RiskLevel
from services.matching.candidates import CandidateChild, CandidateVolunteer
from services.matching.pairings import OPEN, PairingRecord
from services.matching.views import EngagementRow

router = APIRouter(tags=["views"])


class EngagementOut(BaseModel):
    child_id: uuid.UUID
    county_code: str
    risk_level: RiskLevel
    volunteer_id: uuid.UUID | None
    last_contact_at: datetime | None
    last_in_person_at: datetime | None
    next_due_at: datetime
    overdue: bool


@router.get("/views/engagement", response_model=Page[EngagementOut])
async def engagement(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator"))],
    county_code: CountyCode,
    paging: Paging,
    overdue: bool | None = None,
) -> Page[EngagementOut]:
    require_county(principal, county_code)
    now = runtime.clock.now()
    query = select(EngagementRow).where(EngagementRow.county_code == county_code, EngagementRow.active.is_(True))
    if overdue is not None:
        query = query.where(EngagementRow.next_due_at < now if overdue else EngagementRow.next_due_at >= now)

    def item(row: Row[Any]) -> EngagementOut:
        return EngagementOut.model_validate({**row._mapping, "overdue": row.next_due_at < now})

    async with runtime.db.read() as conn:
        return await fetch_page(conn, query.order_by(EngagementRow.next_due_at, EngagementRow.child_id), paging, item)


class CandidateChildOut(BaseModel):
    child_id: uuid.UUID
    county_code: str
    risk_level: RiskLevel
    category: str
    age_band: str
    needs: list[str]
    languages: list[str]
    flags: list[str]
    eligible: bool
    open_pairing_id: uuid.UUID | None = Field(description="the child's proposed, confirmed or suspended pairing")
    needs_pairing: bool = Field(description="eligible, and no open pairing: a run will look for a volunteer")


class CandidateVolunteerOut(BaseModel):
    volunteer_id: uuid.UUID
    county_code: str
    kind: str
    skills: list[str]
    languages: list[str]
    capacity: int
    eligible: bool
    open_pairings: int = Field(description="proposed, confirmed and suspended pairings: each holds a place")
    free: int = Field(description="places left: capacity less open pairings")


@router.get("/views/candidates/children", response_model=Page[CandidateChildOut])
async def candidate_children(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator"))],
    county_code: CountyCode,
    paging: Paging,
    eligible: bool | None = None,
    needs_pairing: bool | None = None,
) -> Page[CandidateChildOut]:
    """Children of a county still in the programme, whether each may be proposed a volunteer, and whether one is
    already proposed or paired."""
    require_county(principal, county_code)
    open_pairing = (
        select(PairingRecord.child_id, PairingRecord.pairing_id)
        .where(PairingRecord.county_code == county_code, PairingRecord.status.in_(OPEN))
        .subquery()
    )
    query = (
        select(CandidateChild.__table__, open_pairing.c.pairing_id.label("open_pairing_id"))
        .outerjoin(open_pairing, open_pairing.c.child_id == CandidateChild.child_id)
        .where(CandidateChild.county_code == county_code, CandidateChild.active.is_(True))
    )
    if eligible is not None:
        query = query.where(CandidateChild.eligible.is_(eligible))
    if needs_pairing is not None:
        wanted = CandidateChild.eligible.is_(True) & open_pairing.c.pairing_id.is_(None)
        query = query.where(wanted if needs_pairing else ~wanted)

    def item(row: Row[Any]) -> CandidateChildOut:
        return CandidateChildOut(**row._mapping, needs_pairing=row.eligible and row.open_pairing_id is None)

    async with runtime.db.read() as conn:
        return await fetch_page(conn, query.order_by(CandidateChild.child_id), paging, item)


@router.get("/views/candidates/volunteers", response_model=Page[CandidateVolunteerOut])
async def candidate_volunteers(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator"))],
    county_code: CountyCode,
    paging: Paging,
    eligible: bool | None = None,
    with_free_places: bool | None = None,
) -> Page[CandidateVolunteerOut]:
    """Volunteers of a county, whether each is vetted and trained (as the registry last said), and their places."""
    require_county(principal, county_code)
    held = (
        select(PairingRecord.volunteer_id, func.count().label("open_pairings"))
        .where(PairingRecord.county_code == county_code, PairingRecord.status.in_(OPEN))
        .group_by(PairingRecord.volunteer_id)
        .subquery()
    )
    open_pairings = func.coalesce(held.c.open_pairings, 0)
    query = (
        select(CandidateVolunteer.__table__, open_pairings.label("open_pairings"))
        .outerjoin(held, held.c.volunteer_id == CandidateVolunteer.volunteer_id)
        .where(CandidateVolunteer.county_code == county_code)
    )
    if eligible is not None:
        query = query.where(CandidateVolunteer.eligible.is_(eligible))
    if with_free_places is not None:
        query = query.where((open_pairings < CandidateVolunteer.capacity) == with_free_places)

    def item(row: Row[Any]) -> CandidateVolunteerOut:
        return CandidateVolunteerOut(**row._mapping, free=max(0, row.capacity - row.open_pairings))

    async with runtime.db.read() as conn:
        return await fetch_page(conn, query.order_by(CandidateVolunteer.volunteer_id), paging, item)
