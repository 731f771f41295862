"""Micro-wishes (微心愿): posted for a child, claimed by a donor, fulfilled, acknowledged; a lapsed claim returns the
wish to the board.

Donors see the board without anything that says who the child is: no child id, no name, no village; only the county,
"girl" or "boy", the age band and the item. Each wish's current state is a row written in the same transaction as
its event; a claim is a versioned change of that row, so of two donors claiming at once one wins and one gets 409.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Index, Integer, Numeric, String, Uuid, insert, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from backbone.auth import Principal
from backbone.database import UtcDateTime
from backbone.deps import CoordinatorDep, RuntimeDep, require, require_county
from backbone.errors import ApiError
from backbone.paging import Page, Paging, fetch_page
from backbone.runtime import Runtime
from backbone.store import Append
from contracts.counties import area_name
from contracts.matching import (
    WishAcknowledged,
    WishCategory,
    WishClaimed,
    WishFulfilled,
    WishItem,
    WishPosted,
    WishReleased,
    WishWithdrawalReason,
    WishWithdrawn,
    Yuan,
)
from contracts.vocabulary import CountyCode
from services.matching.candidates import CandidateChild, allows, require_campaign, require_purpose
from services.matching.contacts import ContactRecord
from services.matching.pairings import candidates_rebuilding
from services.matching.views import Views

router = APIRouter(tags=["wishes"])
CLAIM_DAYS = 14  # a claim not fulfilled by then lapses and the wish returns to the board

WishStatus = Literal["posted", "claimed", "fulfilled", "acknowledged", "withdrawn"]
WishChange = WishClaimed | WishReleased | WishFulfilled | WishAcknowledged | WishWithdrawn
TRANSITIONS: dict[type[WishChange], tuple[tuple[WishStatus, ...], WishStatus]] = {
    WishClaimed: (("posted",), "claimed"),
    WishReleased: (("claimed",), "posted"),
    WishFulfilled: (("claimed",), "fulfilled"),
    WishAcknowledged: (("fulfilled",), "acknowledged"),
    WishWithdrawn: (("posted", "claimed"), "withdrawn"),
}


class WishRecord(Views):
    __tablename__ = "wishes"
    __table_args__ = (
        Index("ix_wishes_board", "status", "county_code", "posted_at"),
        Index("ix_wishes_child", "child_id"),
        Index("ix_wishes_donor", "donor_id", "status"),
    )

    wish_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    child_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    county_code: Mapped[str] = mapped_column(String(6))
    gender: Mapped[str | None] = mapped_column(String(8), nullable=True)
    age_band: Mapped[str] = mapped_column(String(8))
    item: Mapped[str] = mapped_column(String(40))
    category: Mapped[str] = mapped_column(String(16))
    estimated_value_yuan: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    status: Mapped[str] = mapped_column(String(12))
    donor_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    claim_deadline: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    contact_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    posted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    version: Mapped[int] = mapped_column(Integer)


class WishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    child_id: uuid.UUID
    item: WishItem
    category: WishCategory
    estimated_value_yuan: Yuan
    campaign_id: uuid.UUID | None = None


class FulfilIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_id: uuid.UUID | None = Field(default=None, description="the visit on which the gift was brought")


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: WishWithdrawalReason


class BoardWish(BaseModel):
    """A wish as a donor sees it: who the child is stays out."""

    id: uuid.UUID
    wish_id: uuid.UUID = Field(description="the same as `id`")
    county_code: str
    county: str | None = Field(description='"兴安县 Xing\'an Xian"')
    child: str = Field(description='"girl, 9-11" or "child, 9-11"')
    item: str
    category: str
    estimated_value_yuan: Decimal
    campaign_id: uuid.UUID | None
    status: str
    claim_deadline: datetime | None


class WishOut(BoardWish):
    """A wish as a coordinator sees it."""

    child_id: uuid.UUID
    donor_id: str | None
    contact_id: uuid.UUID | None
    posted_at: datetime
    version: int


def _child(row: Row[Any]) -> str:
    who = {"female": "girl", "male": "boy"}.get(row.gender or "", "child")
    return f"{who}, {row.age_band}"


def _shown(row: Row[Any]) -> dict[str, Any]:
    county = area_name(row.county_code)
    return {**row._mapping, "id": row.wish_id, "county": " ".join(county) if county else None, "child": _child(row)}


def board_wish(row: Row[Any]) -> BoardWish:
    return BoardWish.model_validate(_shown(row))


def wish_out(row: Row[Any]) -> WishOut:
    return WishOut.model_validate(_shown(row))


async def _load(conn: AsyncConnection, wish_id: uuid.UUID) -> Row[Any]:
    row = (await conn.execute(select(WishRecord).where(WishRecord.wish_id == wish_id))).first()
    if row is None:
        raise ApiError(404, "not_found", f"no wish {wish_id}")
    return row


def allowed(row: Row[Any], kind: type[WishChange]) -> str:
    """The status `kind` leaves the wish in; a 409 if the wish is not in a status it may start from."""
    starts, status = TRANSITIONS[kind]
    if row.status not in starts:
        raise ApiError(409, f"wish_{row.status}", f"the wish is {row.status}; this needs it {' or '.join(starts)}")
    return status


async def change(runtime: Runtime, conn: AsyncConnection, row: Row[Any], event: WishChange, **values: Any) -> None:
    """Move the wish on by `event`, from a status it may start from, unless someone else moved it first (409)."""
    await runtime.advance(conn, WishRecord, row, event, status=allowed(row, type(event)), **values)


async def lapse_claims(runtime: Runtime, batch: int = 500) -> int:
    """Claims past their deadline end: each wish goes back on the board."""
    due = (
        select(WishRecord)
        .where(WishRecord.status == "claimed", WishRecord.claim_deadline <= runtime.clock.now())
        .order_by(WishRecord.claim_deadline, WishRecord.wish_id)
    )

    async def release(conn: AsyncConnection, row: Row[Any]) -> None:
        released = WishReleased(
            wish_id=row.wish_id, child_id=row.child_id, county_code=row.county_code, donor_id=row.donor_id, lapsed=True
        )
        await change(runtime, conn, row, released, donor_id=None, claim_deadline=None)

    return await runtime.work_through(due, release, batch)


async def withdraw_unwanted(
    runtime: Runtime, conn: AsyncConnection, children: Collection[uuid.UUID] | None = None
) -> int:
    """Open wishes (on the board or claimed) of these children (all, if None) who left the programme or whose data
    may no longer be shown for wishes are withdrawn; returns how many."""
    if await candidates_rebuilding(conn):
        return 0  # a half-rebuilt candidate view would look as if everyone had left
    query = (
        select(WishRecord.__table__, CandidateChild.active, CandidateChild.purposes)
        .join(CandidateChild, CandidateChild.child_id == WishRecord.child_id)
        .where(WishRecord.status.in_(("posted", "claimed")))
        .order_by(WishRecord.wish_id)
    )
    if children is not None:
        query = query.where(WishRecord.child_id.in_(children))
    withdrawn = 0
    for row in (await conn.execute(query.with_for_update(of=WishRecord))).all():
        if row.active and allows(row, "wishes"):
            continue
        reason: WishWithdrawalReason = "no_consent" if row.active else "child_left_programme"
        event = WishWithdrawn(wish_id=row.wish_id, child_id=row.child_id, county_code=row.county_code, reason=reason)
        await change(runtime, conn, row, event, claim_deadline=None)  # a donor who claimed it sees it withdrawn
        withdrawn += 1
    return withdrawn


Donor = Annotated[Principal, Depends(require("donor"))]


@router.post("/wishes", status_code=201, response_model=WishOut)
async def post_wish(body: WishIn, runtime: RuntimeDep, principal: CoordinatorDep) -> WishOut:
    async with runtime.transaction() as conn:
        held = select(CandidateChild).where(CandidateChild.child_id == body.child_id).with_for_update()
        child = (await conn.execute(held)).first()  # a consent withdrawn meanwhile waits for this wish, then ends it
        if child is None:
            raise ApiError(404, "not_found", f"no child {body.child_id} known to matching")
        require_county(principal, child.county_code)
        if not child.active:
            raise ApiError(409, "left_programme", "the child has left the programme")
        require_purpose([child], "wishes")  # a wish on the board is the child's data shown to donors
        await require_campaign(conn, body.campaign_id, child.county_code)
        posted = WishPosted(wish_id=uuid.uuid4(), county_code=child.county_code, **body.model_dump())
        await runtime.append(conn, Append(str(posted.wish_id), 0, [posted]))
        values = {
            **posted.model_dump(),
            "gender": child.gender,
            "age_band": child.age_band,
            "status": "posted",
            "posted_at": runtime.clock.now(),
            "version": 1,
        }
        await conn.execute(insert(WishRecord).values(**values))
        return wish_out(await _load(conn, posted.wish_id))


@router.get("/wishes", response_model=Page[BoardWish])
async def board(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("donor", "coordinator"))],
    paging: Paging,
    county_code: Annotated[CountyCode | None, Query()] = None,
    status: Annotated[str, Query(pattern="^(posted|claimed|fulfilled|acknowledged)$")] = "posted",
) -> Page[BoardWish]:
    """The board: wishes waiting for a donor (or, for a coordinator, by status, those on their way), without a
    child's identity. A donor sees the waiting ones and, under /wishes/mine, their own."""
    if principal.role == "donor" and status != "posted":
        raise ApiError(403, "forbidden", "donors see the wishes waiting for a donor, and their own under /wishes/mine")
    query = select(WishRecord).where(WishRecord.status == status)
    if county_code is not None:
        query = query.where(WishRecord.county_code == county_code)
    async with runtime.db.read() as conn:
        return await fetch_page(conn, query.order_by(WishRecord.posted_at, WishRecord.wish_id), paging, board_wish)


@router.get("/wishes/mine", response_model=Page[BoardWish])
async def my_wishes(runtime: RuntimeDep, principal: Donor, paging: Paging) -> Page[BoardWish]:
    """The wishes a donor claimed: fulfilled and thanked ones too (status `acknowledged` is the thank-you)."""
    query = select(WishRecord).where(WishRecord.donor_id == principal.sub)
    async with runtime.db.read() as conn:
        return await fetch_page(conn, query.order_by(WishRecord.posted_at, WishRecord.wish_id), paging, board_wish)


@router.get("/views/wishes", response_model=Page[WishOut], tags=["views"])
async def wishes_view(
    runtime: RuntimeDep,
    principal: CoordinatorDep,
    county_code: CountyCode,
    paging: Paging,
    child_id: Annotated[uuid.UUID | None, Query()] = None,
    status: Annotated[
        WishStatus | None, Query(description="only wishes in this status (claimed: not fulfilled yet)")
    ] = None,
) -> Page[WishOut]:
    """A county's wishes in every status (or one), oldest first, with whose wish each is."""
    require_county(principal, county_code)
    query = select(WishRecord).where(WishRecord.county_code == county_code)
    if child_id is not None:
        query = query.where(WishRecord.child_id == child_id)
    if status is not None:
        query = query.where(WishRecord.status == status)
    async with runtime.db.read() as conn:
        return await fetch_page(conn, query.order_by(WishRecord.posted_at, WishRecord.wish_id), paging, wish_out)


@router.post("/wishes/{wish_id}/claim", response_model=BoardWish)
async def claim(wish_id: uuid.UUID, runtime: RuntimeDep, principal: Donor) -> BoardWish:
    """Take a wish off the board; it must be fulfilled within 14 days, or it returns to the board."""
    deadline = runtime.clock.now() + timedelta(days=CLAIM_DAYS)
    async with runtime.transaction() as conn:
        row = await _load(conn, wish_id)
        child = (await conn.execute(select(CandidateChild).where(CandidateChild.child_id == row.child_id))).first()
        if row.status == "posted" and (child is None or not child.active or not allows(child, "wishes")):
            # about to be withdrawn (the child left, or consent to wishes was withdrawn): not for a donor any more
            raise ApiError(409, "wish_withdrawn", "this wish is no longer on the board")
        claimed = WishClaimed(
            wish_id=wish_id,
            child_id=row.child_id,
            county_code=row.county_code,
            donor_id=principal.sub,
            claim_deadline=deadline,
        )
        await change(runtime, conn, row, claimed, donor_id=principal.sub, claim_deadline=deadline)
        return board_wish(await _load(conn, wish_id))


@router.post("/wishes/{wish_id}/release", response_model=BoardWish)
async def release(wish_id: uuid.UUID, runtime: RuntimeDep, principal: Donor) -> BoardWish:
    async with runtime.transaction() as conn:
        row = await _load(conn, wish_id)
        if row.donor_id != principal.sub:
            raise ApiError(403, "forbidden", "only the donor who claimed a wish may give it up")
        released = WishReleased(
            wish_id=wish_id, child_id=row.child_id, county_code=row.county_code, donor_id=principal.sub, lapsed=False
        )
        await change(runtime, conn, row, released, donor_id=None, claim_deadline=None)
        return board_wish(await _load(conn, wish_id))


async def _coordinated(
    runtime: Runtime,
    principal: Principal,
    wish_id: uuid.UUID,
    kind: type[WishChange],
    event_of: Any,
    check: Callable[[AsyncConnection, Row[Any]], Awaitable[None]] | None = None,
    **values: Any,
) -> WishOut:
    async with runtime.transaction() as conn:
        row = await _load(conn, wish_id)
        require_county(principal, row.county_code)
        allowed(row, kind)  # before deciding the event: an unclaimed wish has no donor to name
        if check is not None:
            await check(conn, row)
        await change(runtime, conn, row, event_of(row), **values)
        return wish_out(await _load(conn, wish_id))


@router.post("/wishes/{wish_id}/fulfil", response_model=WishOut)
async def fulfil(wish_id: uuid.UUID, body: FulfilIn, runtime: RuntimeDep, principal: CoordinatorDep) -> WishOut:
    """The gift reached the child (on a visit: name the contact)."""

    def fulfilled(row: Row[Any]) -> WishFulfilled:
        return WishFulfilled(
            wish_id=wish_id,
            child_id=row.child_id,
            county_code=row.county_code,
            donor_id=row.donor_id,
            contact_id=body.contact_id,
        )

    async def on_a_visit(conn: AsyncConnection, row: Row[Any]) -> None:
        if body.contact_id is None:
            return
        visit = select(ContactRecord.contact_id).where(
            ContactRecord.contact_id == body.contact_id, ContactRecord.child_id == row.child_id
        )
        if await conn.scalar(visit) is None:
            raise ApiError(422, "unknown_contact", f"no contact {body.contact_id} with this wish's child")

    return await _coordinated(
        runtime,
        principal,
        wish_id,
        WishFulfilled,
        fulfilled,
        check=on_a_visit,
        contact_id=body.contact_id,
        claim_deadline=None,
    )


@router.post("/wishes/{wish_id}/acknowledge", response_model=WishOut)
async def acknowledge(wish_id: uuid.UUID, runtime: RuntimeDep, principal: CoordinatorDep) -> WishOut:
    """The child's side says thank you; the donor sees it among their wishes, and nothing of who the child is."""

    def thanked(row: Row[Any]) -> WishAcknowledged:
        return WishAcknowledged(
            wish_id=wish_id, child_id=row.child_id, county_code=row.county_code, donor_id=row.donor_id
        )

    return await _coordinated(runtime, principal, wish_id, WishAcknowledged, thanked)


@router.post("/wishes/{wish_id}/withdraw", response_model=WishOut)
async def withdraw(wish_id: uuid.UUID, body: WithdrawIn, runtime: RuntimeDep, principal: CoordinatorDep) -> WishOut:
    def withdrawn(row: Row[Any]) -> WishWithdrawn:
        return WishWithdrawn(wish_id=wish_id, child_id=row.child_id, county_code=row.county_code, reason=body.reason)

    return await _coordinated(runtime, principal, wish_id, WishWithdrawn, withdrawn)
