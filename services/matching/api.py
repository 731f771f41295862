"""HTTP routes of the matching service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import func, select

from backbone.auth import Principal
from backbone.deps import RuntimeDep, require, require_county
from contracts.vocabulary import CountyCode, RiskLevel
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


class EngagementPage(BaseModel):
    items: list[EngagementOut]
    total: int
    limit: int
    offset: int


@router.get("/views/engagement", response_model=EngagementPage)
async def engagement(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator"))],
    county_code: CountyCode,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> EngagementPage:
    require_county(principal, county_code)
    now = runtime.clock.now()
    where = [EngagementRow.county_code == county_code, EngagementRow.active.is_(True)]
    if overdue is not None:
        where.append(EngagementRow.next_due_at < now if overdue else EngagementRow.next_due_at >= now)
    async with runtime.db.read() as conn:
        total = await conn.scalar(select(func.count()).select_from(EngagementRow).where(*where))
        rows = await conn.execute(
            select(EngagementRow)
            .where(*where)
            .order_by(EngagementRow.next_due_at, EngagementRow.child_id)
            .limit(limit)
            .offset(offset)
        )
        items = [
            EngagementOut(
                child_id=row.child_id,
                county_code=row.county_code,
                risk_level=row.risk_level,
                volunteer_id=row.volunteer_id,
                last_contact_at=row.last_contact_at,
                last_in_person_at=row.last_in_person_at,
                next_due_at=row.next_due_at,
                overdue=row.next_due_at < now,
            )
            for row in rows
        ]
    return EngagementPage(items=items, total=total or 0, limit=limit, offset=offset)
