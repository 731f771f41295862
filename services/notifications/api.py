"""HTTP routes of the notifications service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, select

from backbone.auth import Principal
from backbone.deps import CoordinatorDep, RuntimeDep, require, require_county
from backbone.errors import ApiError
from backbone.paging import Page, PageRequest, Paging, fetch_page
from contracts.notifications import Channel, ClockTime, Language, Urgency
from contracts.vocabulary import CountyCode
from services.notifications import preferences
from services.notifications.notices import NoticeRow

router = APIRouter(tags=["notifications"])


class NoticeOut(BaseModel):
    notice_id: uuid.UUID
    recipient_id: str
    reason: str
    channels: list[Channel]
    urgency: Urgency
    county_code: str
    about_id: uuid.UUID
    cause_event_id: uuid.UUID
    status: str
    recorded_at: datetime


async def _page(runtime: RuntimeDep, where: ColumnElement[bool], paging: PageRequest) -> Page[NoticeOut]:
    query = select(NoticeRow).where(where).order_by(NoticeRow.recorded_at, NoticeRow.notice_id)
    async with runtime.db.read() as conn:
        return await fetch_page(conn, query, paging, lambda row: NoticeOut.model_validate(row._mapping))


@router.get("/notifications", response_model=Page[NoticeOut])
async def notifications(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator", "volunteer", "donor"))],
    recipient_id: str,
    paging: Paging,
) -> Page[NoticeOut]:
    parts = recipient_id.split(":")
    if len(parts) == 3 and parts[0] == "county":
        if not principal.may_act_in(parts[1]):  # not named back: the id is any text the caller typed
            raise ApiError(403, "forbidden", "not scoped to the county of these notifications")
    elif principal.role != "admin" and recipient_id != principal.sub:
        raise ApiError(403, "forbidden", "you may read only your own notifications")
    return await _page(runtime, NoticeRow.recipient_id == recipient_id, paging)


@router.get("/views/deliveries", response_model=Page[NoticeOut])
async def deliveries(
    runtime: RuntimeDep, principal: CoordinatorDep, county_code: CountyCode, paging: Paging
) -> Page[NoticeOut]:
    require_county(principal, county_code)
    return await _page(runtime, NoticeRow.county_code == county_code, paging)


class PreferencesIn(BaseModel):
    """How the caller wants to be told: outward channels (the inbox always), language, quiet hours (Asia/Shanghai,
    HH:MM; equal ends: none) through which no routine SMS is sent."""

    model_config = ConfigDict(extra="forbid")

    channels: list[Literal["sms", "email"]] = Field(max_length=2)
    language: Language
    quiet_from: ClockTime
    quiet_until: ClockTime


Person = Annotated[Principal, Depends(require("coordinator", "volunteer", "donor"))]


@router.get("/preferences/me", response_model=PreferencesIn)
async def my_preferences(runtime: RuntimeDep, principal: Person) -> PreferencesIn:
    async with runtime.db.read() as conn:
        return _out(await preferences.of(conn, principal.sub))


@router.put("/preferences/me", response_model=PreferencesIn)
async def choose_preferences(body: PreferencesIn, runtime: RuntimeDep, principal: Person) -> PreferencesIn:
    channels = tuple(dict.fromkeys(body.channels))  # each once, in the order given
    chosen = preferences.Preferences(channels, body.language, body.quiet_from, body.quiet_until)
    await preferences.choose(runtime, principal.sub, chosen)
    return _out(chosen)


def _out(chosen: preferences.Preferences) -> PreferencesIn:
    outward = [channel for channel in chosen.channels if channel != "inbox"]
    return PreferencesIn(
        channels=outward,
        language=chosen.language,
        quiet_from=chosen.quiet_from,
        quiet_until=chosen.quiet_until,
    )
