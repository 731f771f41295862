"""Calendar feed links: a read-only, revocable token that opens one volunteer's iCal feed and nothing else.

A calendar app sends no headers, so the address it fetches carries a secret; a bearer token there would let anyone
who sees the address (the calendar provider, a shared screen) act as its owner for days. A feed token is random
(256 bits), kept here only as its SHA-256, opens the one feed until it expires or is revoked (by a person, or by
matching when the registry erases the volunteer's personal data), and is no bearer token anywhere.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Row, String, Uuid, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from backbone.auth import Principal
from backbone.database import UtcDateTime
from backbone.deps import PrincipalDep, RuntimeDep, get_principal, require_county
from backbone.errors import ApiError
from backbone.paging import Page, Paging, fetch_page
from backbone.runtime import Runtime
from services.matching.candidates import CandidateVolunteer
from services.matching.views import Views

router = APIRouter(tags=["views"])
_bearer = HTTPBearer(auto_error=False)  # optional here: a calendar app sends a feed link instead
LONGEST = 365  # days: a link forgotten in some calendar app stops working by itself within a year


class CalendarFeed(Views):
    """A feed link handed out for a volunteer's calendar: not a view (no event says it), kept across rebuilds."""

    __tablename__ = "calendar_feeds"

    feed_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    volunteer_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)  # the token itself is never stored
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(80))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class FeedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: int = Field(LONGEST, ge=1, le=LONGEST, description="how long the link opens the feed")


class FeedOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    feed_id: uuid.UUID
    volunteer_id: uuid.UUID
    created_at: datetime
    created_by: str
    expires_at: datetime
    revoked_at: datetime | None


class NewFeedOut(FeedOut):
    url: str  # shown this once: only its hash is kept


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def calendar_volunteer(
    conn: AsyncConnection, volunteer_id: uuid.UUID, principal: Principal, *, hold: bool = False
) -> Row[Any]:
    """The volunteer, if this caller may read their calendar or hand out links to it: the volunteer themself, or a
    coordinator of their county (or an admin). `hold` locks their row until the transaction ends (PostgreSQL; a
    SQLite write holds the whole database), so an erasure folded meanwhile waits for it or is seen by it."""
    query = select(CandidateVolunteer).where(CandidateVolunteer.volunteer_id == volunteer_id)
    volunteer = (await conn.execute(query.with_for_update() if hold else query)).first()
    if volunteer is None:
        raise ApiError(404, "not_found", f"no volunteer {volunteer_id} known to matching")
    if principal.role == "volunteer":
        if principal.sub != str(volunteer_id):
            raise ApiError(403, "forbidden", "a volunteer sees their own calendar only")
    elif principal.role in ("coordinator", "admin"):
        require_county(principal, volunteer.county_code)
    else:
        raise ApiError(403, "forbidden", "volunteers and coordinators only")
    return volunteer


async def open_calendar(
    request: Request,
    runtime: RuntimeDep,
    volunteer_id: uuid.UUID,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    feed: Annotated[str | None, Query(max_length=100, description="a feed link's token, for a calendar app")] = None,
) -> None:
    """Admit a reader of the volunteer's calendar: by a live feed link to it, or by the bearer header of someone who
    may read it; never by a bearer token in the address."""
    if "token" in request.query_params:
        raise ApiError(401, "unauthorized", "a bearer token in the address is refused: subscribe with a feed link")
    if feed is None:
        principal = await get_principal(request, credentials)
        async with runtime.db.read() as conn:
            await calendar_volunteer(conn, volunteer_id, principal)
        return
    live = select(CalendarFeed.feed_id).where(
        CalendarFeed.token_sha256 == _digest(feed),
        CalendarFeed.volunteer_id == volunteer_id,
        CalendarFeed.revoked_at.is_(None),
        CalendarFeed.expires_at > runtime.clock.now(),
    )
    async with runtime.db.read() as conn:
        if await conn.scalar(live) is None:
            raise ApiError(401, "unauthorized", "the feed link is not valid: expired, revoked or for another calendar")


@router.post("/volunteers/{volunteer_id}/calendar-feeds", status_code=201, response_model=NewFeedOut)
async def create_feed(
    volunteer_id: uuid.UUID, request: Request, runtime: RuntimeDep, principal: PrincipalDep, body: FeedIn | None = None
) -> NewFeedOut:
    """A new subscription link to the volunteer's calendar, for a calendar app: it opens that feed only, for
    `days` (365 unless fewer are asked for) or until revoked. The link (on the host this request was sent to) is
    shown in this answer only. None for a volunteer whose personal data the registry erased (409)."""
    token, now = secrets.token_urlsafe(32), runtime.clock.now()
    row = {
        "feed_id": uuid.uuid4(),
        "volunteer_id": volunteer_id,
        "token_sha256": _digest(token),
        "created_at": now,
        "created_by": principal.sub,
        "expires_at": now + timedelta(days=(body or FeedIn()).days),
        "revoked_at": None,
    }
    async with runtime.db.begin() as conn:
        if (await calendar_volunteer(conn, volunteer_id, principal, hold=True)).erased:
            raise ApiError(409, "volunteer_erased", "the volunteer's personal data was erased: no feed links for them")
        await conn.execute(insert(CalendarFeed).values(row))
    url = request.url_for("calendar", volunteer_id=volunteer_id).include_query_params(feed=token)
    return NewFeedOut(**row, url=str(url))


@router.get("/volunteers/{volunteer_id}/calendar-feeds", response_model=Page[FeedOut])
async def list_feeds(
    volunteer_id: uuid.UUID, runtime: RuntimeDep, principal: PrincipalDep, paging: Paging
) -> Page[FeedOut]:
    """The volunteer's feed links, expired and revoked ones included (their tokens are not kept, so not shown)."""
    query = (
        select(CalendarFeed)
        .where(CalendarFeed.volunteer_id == volunteer_id)
        .order_by(CalendarFeed.created_at, CalendarFeed.feed_id)
    )
    async with runtime.db.read() as conn:
        await calendar_volunteer(conn, volunteer_id, principal)
        return await fetch_page(conn, query, paging, FeedOut.model_validate)


@router.delete("/volunteers/{volunteer_id}/calendar-feeds/{feed_id}", response_model=FeedOut)
async def revoke_feed(
    volunteer_id: uuid.UUID, feed_id: uuid.UUID, runtime: RuntimeDep, principal: PrincipalDep
) -> FeedOut:
    """Revoke a feed link: its calendar app gets a 401 from now on. Revoking it again changes nothing."""
    this = (CalendarFeed.feed_id == feed_id, CalendarFeed.volunteer_id == volunteer_id)
    async with runtime.db.begin() as conn:
        await calendar_volunteer(conn, volunteer_id, principal)
        await conn.execute(
            update(CalendarFeed).where(*this, CalendarFeed.revoked_at.is_(None)).values(revoked_at=runtime.clock.now())
        )
        feed = (await conn.execute(select(CalendarFeed).where(*this))).first()
    if feed is None:
        raise ApiError(404, "not_found", f"no feed {feed_id} for volunteer {volunteer_id}")
    return FeedOut.model_validate(feed)


async def revoke_erased(
    runtime: Runtime, conn: AsyncConnection, volunteers: Collection[uuid.UUID] | None = None
) -> None:
    """Revoke the live feed links of volunteers (all, if None) whose personal data the registry erased: a link
    handed out to someone who asked to be forgotten must not go on working. Run in the candidate view's
    transaction, as it learns of the erasure."""
    erased = select(CandidateVolunteer.volunteer_id).where(CandidateVolunteer.erased.is_(True))
    if volunteers is not None:
        erased = erased.where(CandidateVolunteer.volunteer_id.in_(volunteers))
    await conn.execute(
        update(CalendarFeed)
        .where(CalendarFeed.volunteer_id.in_(erased), CalendarFeed.revoked_at.is_(None))
        .values(revoked_at=runtime.clock.now())
    )
