"""HTTP routes of the notifications service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Select, and_, func, select

from backbone.auth import Principal
from backbone.deps import CoordinatorDep, RuntimeDep, require, require_county
from backbone.errors import ApiError
from backbone.paging import Page, PageRequest, Paging, fetch_page
from backbone.store import upsert
from contracts.notifications import Channel, ClockTime, Language, Urgency
from contracts.vocabulary import CountyCode
from services.notifications import preferences
from services.notifications.notices import NoticeRead, NoticeRow
from services.notifications.outbox import Delivery

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
    read: bool = Field(description="whether the caller has read it")


Order = Annotated[Literal["oldest", "newest"], Query(description="oldest first (the default), or newest first")]


async def _page(
    runtime: RuntimeDep, where: ColumnElement[bool], paging: PageRequest, reader: str, order: str = "oldest"
) -> Page[NoticeOut]:
    """A page of notices, each saying whether `reader` has read it."""
    read = and_(NoticeRead.notice_id == NoticeRow.notice_id, NoticeRead.person_id == reader)
    keys = (NoticeRow.recorded_at, NoticeRow.notice_id)
    query = (
        select(NoticeRow, NoticeRead.read_at.is_not(None).label("read"))
        .outerjoin(NoticeRead, read)
        .where(where)
        .order_by(*(key.desc() if order == "newest" else key for key in keys))
    )
    async with runtime.db.read() as conn:
        page = cast("Select[Any]", query)  # fetch_page takes a query of any columns
        return await fetch_page(conn, page, paging, lambda row: NoticeOut.model_validate(row._mapping))


Reader = Annotated[Principal, Depends(require("coordinator", "volunteer", "donor", "child_director"))]
GROUP_ROLES = {"coordinators": "coordinator", "child_directors": "child_director"}


def _may_read(principal: Principal, recipient_id: str) -> bool:
    """A person reads their own notices, a coordinator or child director their counties' group's, an admin all."""
    parts = recipient_id.split(":")
    if len(parts) == 3 and parts[0] == "county":
        if principal.role in ("admin", "service"):
            return True
        if principal.role == "coordinator":  # a coordinator oversees the county: its child directors' notices too
            return parts[1] in principal.counties
        return principal.role == GROUP_ROLES.get(parts[2]) and parts[1] in principal.counties
    return principal.role == "admin" or recipient_id == principal.sub


def _readable(principal: Principal, recipient_id: str) -> None:
    if not _may_read(principal, recipient_id):  # not named back: the id is any text the caller typed
        raise ApiError(403, "forbidden", "you may read only your own notifications and your counties'")


@router.get("/notifications", response_model=Page[NoticeOut])
async def notifications(
    runtime: RuntimeDep, principal: Reader, recipient_id: str, paging: Paging, order: Order = "oldest"
) -> Page[NoticeOut]:
    _readable(principal, recipient_id)
    return await _page(runtime, NoticeRow.recipient_id == recipient_id, paging, principal.sub, order)


class UnreadOut(BaseModel):
    unread: int


@router.get("/notifications/unread", response_model=UnreadOut)
async def unread(runtime: RuntimeDep, principal: Reader, recipient_id: str) -> UnreadOut:
    """How many of the recipient's notices the caller has not read: the console's badge."""
    _readable(principal, recipient_id)
    read = select(NoticeRead.notice_id).where(NoticeRead.person_id == principal.sub)
    query = select(func.count()).where(NoticeRow.recipient_id == recipient_id, NoticeRow.notice_id.not_in(read))
    async with runtime.db.read() as conn:
        return UnreadOut(unread=await conn.scalar(query) or 0)


@router.post("/notifications/{notice_id}/read", status_code=204)
async def mark_read(runtime: RuntimeDep, principal: Reader, notice_id: uuid.UUID) -> Response:
    """The caller has read the notice (again: nothing changes). One they may not read is as unknown as one that
    does not exist."""
    async with runtime.db.begin() as conn:
        recipient = await conn.scalar(select(NoticeRow.recipient_id).where(NoticeRow.notice_id == notice_id))
        if recipient is None or not _may_read(principal, recipient):
            raise ApiError(404, "not_found", "no such notice")
        mark = {"notice_id": notice_id, "person_id": principal.sub, "read_at": runtime.clock.now()}
        await conn.execute(upsert(conn, NoticeRead, ["notice_id", "person_id"], set_=()), [mark])
    return Response(status_code=204)


@router.get("/views/deliveries", response_model=Page[NoticeOut])
async def deliveries(
    runtime: RuntimeDep, principal: CoordinatorDep, county_code: CountyCode, paging: Paging
) -> Page[NoticeOut]:
    require_county(principal, county_code)
    return await _page(runtime, NoticeRow.county_code == county_code, paging, principal.sub)


class MessageOut(BaseModel):
    """One message to one person through one channel, and how it went: `pending` (`held`: until the person's
    quiet hours end; `error`: why the last try failed), `sending`, `sent`, or `failed` with `error` its reason."""

    message_id: uuid.UUID
    notice_id: uuid.UUID
    person_id: str
    channel: Literal["sms", "email"]
    reason: str
    urgency: Urgency
    county_code: str
    status: Literal["pending", "sending", "sent", "failed"]
    attempts: int
    held: bool
    error: str | None
    decided_at: datetime
    due_at: datetime
    sent_at: datetime | None


@router.get("/views/messages", response_model=Page[MessageOut])
async def messages_sent(
    runtime: RuntimeDep,
    principal: CoordinatorDep,
    county_code: CountyCode,
    paging: Paging,
    status: Annotated[Literal["pending", "sending", "sent", "failed"] | None, Query()] = None,
) -> Page[MessageOut]:
    """The county's messages by SMS and email, newest first: what went, what waits, what failed and why."""
    require_county(principal, county_code)
    query = select(*(c for c in Delivery.__table__.columns if c.name != "version")).where(
        Delivery.county_code == county_code, *([Delivery.status == status] if status else [])
    )
    query = query.order_by(Delivery.decided_at.desc(), Delivery.message_id)
    async with runtime.db.read() as conn:
        return await fetch_page(conn, query, paging, lambda row: MessageOut.model_validate(row._mapping))


class PreferencesIn(BaseModel):
    """How the caller wants to be told: outward channels (the inbox always), language, quiet hours (Asia/Shanghai,
    HH:MM; equal ends: none) through which no routine SMS is sent."""

    model_config = ConfigDict(extra="forbid")

    channels: list[Literal["sms", "email"]] = Field(max_length=2)
    language: Language
    quiet_from: ClockTime
    quiet_until: ClockTime


@router.get("/preferences/me", response_model=PreferencesIn)
async def my_preferences(runtime: RuntimeDep, principal: Reader) -> PreferencesIn:
    async with runtime.db.read() as conn:
        return _out(await preferences.of(conn, principal.sub))


@router.put("/preferences/me", response_model=PreferencesIn)
async def choose_preferences(body: PreferencesIn, runtime: RuntimeDep, principal: Reader) -> PreferencesIn:
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
