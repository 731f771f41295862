"""HTTP routes of the matching service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.engine import Row

from backbone.auth import Principal
from backbone.deps import RuntimeDep, require, require_county
from backbone.paging import Page, Paging, fetch_page
from contracts.vocabulary import CountyCode, RiskLevel
from services.matching.candidates import CandidateChild, CandidateVolunteer
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


class CandidateVolunteerOut(BaseModel):
    volunteer_id: uuid.UUID
    county_code: str
    kind: str
    skills: list[str]
    languages: list[str]
    capacity: int
    eligible: bool


@router.get("/views/candidates/children", response_model=Page[CandidateChildOut])
async def candidate_children(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator"))],
    county_code: CountyCode,
    paging: Paging,
    eligible: bool | None = None,
) -> Page[CandidateChildOut]:
    """Children of a county still in the programme, and whether each may be proposed a volunteer."""
    require_county(principal, county_code)
    query = select(CandidateChild).where(CandidateChild.county_code == county_code, CandidateChild.active.is_(True))
    if eligible is not None:
        query = query.where(CandidateChild.eligible.is_(eligible))
    async with runtime.db.read() as conn:
        return await fetch_page(
            conn, query.order_by(CandidateChild.child_id), paging, lambda row: CandidateChildOut(**row._mapping)
        )


@router.get("/views/candidates/volunteers", response_model=Page[CandidateVolunteerOut])
async def candidate_volunteers(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator"))],
    county_code: CountyCode,
    paging: Paging,
    eligible: bool | None = None,
) -> Page[CandidateVolunteerOut]:
    """Volunteers of a county, and whether each is vetted and trained (as the registry last said)."""
    require_county(principal, county_code)
    query = select(CandidateVolunteer).where(CandidateVolunteer.county_code == county_code)
    if eligible is not None:
        query = query.where(CandidateVolunteer.eligible.is_(eligible))
    async with runtime.db.read() as conn:
        return await fetch_page(
            conn,
            query.order_by(CandidateVolunteer.volunteer_id),
            paging,
            lambda row: CandidateVolunteerOut(**row._mapping),
        )
