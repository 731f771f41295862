"""Campaign aid: goods or money given to children (warm packs, winter clothes, health packs, allowances), one receipt
per child; the distribution list comes from the candidate view's filters (e.g. every orphan and de-facto-unsupported
child of Lingshan County). A child under 14 is given aid only with a guardian's consent to aid.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Index, String, Uuid, insert, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from backbone.database import UtcDateTime
from backbone.deps import CoordinatorDep, RuntimeDep, require_county
from backbone.errors import ApiError
from backbone.paging import Page, Paging, fetch_page
from backbone.store import Append
from contracts.campaigns import AidKind
from contracts.matching import AidDistributed, Yuan
from contracts.vocabulary import Category, CountyCode, RiskLevel
from services.matching.candidates import CandidateChild, allows, require_campaign, require_donor, require_purpose
from services.matching.views import AidFacts, Views

router = APIRouter(tags=["aid"])


class AidRecord(AidFacts, Views):
    __tablename__ = "aid_distributions"
    __table_args__ = (
        Index("ix_aid_campaign_kind_child", "campaign_id", "kind", "child_id", unique=True),
        Index("ix_aid_county", "county_code", "distributed_at"),
    )

    donor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    distributed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    recorded_by: Mapped[str] = mapped_column(String(80))


class DistributionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign_id: uuid.UUID
    kind: AidKind
    quantity: int = Field(ge=1, le=1000, description="per child")
    value_yuan: Yuan = Field(description="per child")
    donor_id: uuid.UUID | None = None
    child_ids: list[uuid.UUID] = Field(min_length=1, max_length=5000)


class ReceiptOut(BaseModel):
    """One child's receipt: its number is the distribution's id."""

    distribution_id: uuid.UUID
    child_id: uuid.UUID
    county_code: str
    campaign_id: uuid.UUID
    kind: str
    quantity: int
    value_yuan: Decimal
    donor_id: uuid.UUID | None
    distributed_at: datetime


class DistributionOut(BaseModel):
    receipts: list[ReceiptOut]
    quantity: int
    value_yuan: Decimal


class ListedChild(BaseModel):
    child_id: uuid.UUID
    category: str
    risk_level: str
    age_band: str
    received: bool = Field(description="already given this kind of aid under this campaign")
    aid_consent: bool = Field(description="aid may be given: 14 or over, or a guardian consented to aid")


def _listed(row: Row[Any]) -> ListedChild:
    return ListedChild.model_validate({**row._mapping, "aid_consent": allows(row, "aid")})


@router.get("/aid-lists", response_model=Page[ListedChild])
async def distribution_list(
    runtime: RuntimeDep,
    principal: CoordinatorDep,
    county_code: CountyCode,
    campaign_id: uuid.UUID,
    kind: AidKind,
    paging: Paging,
    category: Annotated[list[Category] | None, Query()] = None,
    risk_level: Annotated[list[RiskLevel] | None, Query()] = None,
) -> Page[ListedChild]:
    """The children a campaign's aid targets (by category and risk), whether each has received it already, and
    whether each may be given aid at all (a child under 14 without a guardian's consent to aid may not)."""
    require_county(principal, county_code)
    received = select(AidRecord.child_id).where(AidRecord.campaign_id == campaign_id, AidRecord.kind == kind).subquery()
    query = (
        select(CandidateChild.__table__, received.c.child_id.is_not(None).label("received"))
        .outerjoin(received, received.c.child_id == CandidateChild.child_id)
        .where(CandidateChild.county_code == county_code, CandidateChild.active.is_(True))
    )
    if category:
        query = query.where(CandidateChild.category.in_(category))
    if risk_level:
        query = query.where(CandidateChild.risk_level.in_(risk_level))
    async with runtime.db.read() as conn:
        await require_campaign(conn, campaign_id, county_code)  # a typo in the id is a 422, not an empty list
        return await fetch_page(conn, query.order_by(CandidateChild.child_id), paging, _listed)


@router.post("/aid-distributions", status_code=201, response_model=DistributionOut)
async def distribute(body: DistributionIn, runtime: RuntimeDep, principal: CoordinatorDep) -> DistributionOut:
    """Give the same aid to each child listed, a receipt each; all or none (a child given this kind of aid under
    this campaign already, without consent to aid, or not in the coordinator's counties, refuses the whole list)."""
    children = list(dict.fromkeys(body.child_ids))
    now = runtime.clock.now()
    async with runtime.transaction() as conn:
        found = await _children(conn, children)
        if missing := [str(c) for c in children if c not in found]:
            raise ApiError(
                422, "unknown_children", f"{len(missing)} children are not in the programme", {"child_ids": missing}
            )
        counties = {child_id: row.county_code for child_id, row in found.items()}
        for county_code in sorted(set(counties.values())):
            require_county(principal, county_code)
            await require_campaign(conn, body.campaign_id, county_code)
        require_purpose(list(found.values()), "aid")
        await require_donor(conn, body.donor_id)
        already = (
            await conn.execute(
                select(AidRecord.child_id).where(
                    AidRecord.campaign_id == body.campaign_id,
                    AidRecord.kind == body.kind,
                    AidRecord.child_id.in_(children),
                )
            )
        ).scalars()
        if given := sorted(str(c) for c in already):
            raise ApiError(
                409, "already_received", f"{len(given)} children received this already", {"child_ids": given}
            )
        events = [
            AidDistributed(
                distribution_id=uuid.uuid4(),
                child_id=child_id,
                county_code=counties[child_id],
                **body.model_dump(exclude={"child_ids"}),
            )
            for child_id in children
        ]
        await runtime.append(conn, *(Append(str(e.distribution_id), 0, [e]) for e in events))
        rows: list[dict[str, Any]] = [
            {**e.model_dump(), "distributed_at": now, "recorded_by": principal.sub} for e in events
        ]
        try:
            await conn.execute(insert(AidRecord), rows)
        except IntegrityError as error:  # a distribution to one of them committed since the check above
            raise ApiError(
                409, "already_received", "a child listed received this meanwhile; nothing was given"
            ) from error
    receipts = [ReceiptOut.model_validate(row) for row in rows]
    return DistributionOut(
        receipts=receipts,
        quantity=sum(r.quantity for r in receipts),
        value_yuan=sum((r.value_yuan for r in receipts), Decimal(0)),
    )


@router.get("/aid-distributions/{distribution_id}", response_model=ReceiptOut)
async def receipt(distribution_id: uuid.UUID, runtime: RuntimeDep, principal: CoordinatorDep) -> ReceiptOut:
    async with runtime.db.read() as conn:
        row = (await conn.execute(select(AidRecord).where(AidRecord.distribution_id == distribution_id))).first()
    if row is None:
        raise ApiError(404, "not_found", f"no distribution {distribution_id}")
    require_county(principal, row.county_code)
    return ReceiptOut.model_validate(row._mapping)


async def _children(conn: AsyncConnection, children: list[uuid.UUID]) -> dict[uuid.UUID, Row[Any]]:
    """The listed children still in the programme: their county and the purposes their data may be processed for."""
    found: dict[uuid.UUID, Row[Any]] = {}
    for start in range(0, len(children), 500):
        query = select(CandidateChild.child_id, CandidateChild.county_code, CandidateChild.purposes).where(
            CandidateChild.child_id.in_(children[start : start + 500]), CandidateChild.active.is_(True)
        )
        # Held until the aid is given: a consent withdrawn meanwhile waits for it, and is not overtaken by it.
        found |= {row.child_id: row for row in await conn.execute(query.with_for_update())}
    return found
