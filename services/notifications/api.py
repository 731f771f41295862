"""HTTP routes of the notifications service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import func, select

from backbone.auth import Principal
from backbone.deps import RuntimeDep, require, require_county
from backbone.errors import ApiError
from contracts.vocabulary import CountyCode
from services.notifications.notices import NoticeRow

router = APIRouter(tags=["notifications"])
Coordinator = Annotated[Principal, Depends(require("coordinator"))]


class NoticeOut(BaseModel):
    notice_id: uuid.UUID
    recipient_id: str
    channel: str
    reason: str
    county_code: str
    about_id: uuid.UUID
    cause_event_id: uuid.UUID
    status: str
    recorded_at: datetime


class NoticePage(BaseModel):
    items: list[NoticeOut]
    total: int
    limit: int
    offset: int


async def _page(runtime: RuntimeDep, where: list[object], limit: int, offset: int) -> NoticePage:
    async with runtime.db.read() as conn:
        total = await conn.scalar(select(func.count()).select_from(NoticeRow).where(*where))  # type: ignore[arg-type]
        rows = await conn.execute(
            select(NoticeRow)
            .where(*where)  # type: ignore[arg-type]
            .order_by(NoticeRow.recorded_at, NoticeRow.notice_id)
            .limit(limit)
            .offset(offset)
        )
        items = [NoticeOut.model_validate(row._mapping) for row in rows]
    return NoticePage(items=items, total=total or 0, limit=limit, offset=offset)


@router.get("/notifications", response_model=NoticePage)
async def notifications(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator", "volunteer"))],
    recipient_id: str,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> NoticePage:
    parts = recipient_id.split(":")
    if len(parts) == 3 and parts[0] == "county":
        require_county(principal, parts[1])
    elif principal.role != "admin" and recipient_id != principal.sub:
        raise ApiError(403, "forbidden", "you may read only your own notifications")
    return await _page(runtime, [NoticeRow.recipient_id == recipient_id], limit, offset)


@router.get("/views/deliveries", response_model=NoticePage)
async def deliveries(
    runtime: RuntimeDep,
    principal: Coordinator,
    county_code: CountyCode,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> NoticePage:
    require_county(principal, county_code)
    return await _page(runtime, [NoticeRow.county_code == county_code], limit, offset)
