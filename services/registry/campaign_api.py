"""HTTP routes for donors and campaigns."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import insert, select

from backbone.auth import Principal
from backbone.deps import CoordinatorDep, RuntimeDep, require, require_county
from backbone.errors import ApiError
from backbone.fields import Text
from backbone.paging import Page, Paging, fetch_page
from backbone.store import Append
from contracts.campaigns import AidKind, CampaignCreated, DonorKind, DonorRegistered
from services.registry import vault
from services.registry.fields import Phone
from services.registry.models import KnownCounty
from services.registry.records import CampaignRecord, DonorRecord

router = APIRouter(tags=["donors and campaigns"])


class DonorIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Text
    kind: DonorKind
    contact_name: Text | None = None
    phone: Phone | None = None


class DonorOut(BaseModel):
    id: uuid.UUID
    kind: DonorKind


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Text
    starts_on: date
    ends_on: date
    counties: list[KnownCounty] = Field(min_length=1, max_length=200)
    goals: dict[AidKind, Annotated[int, Field(ge=1, le=10_000_000)]] = {}

    @model_validator(mode="after")
    def _dates(self) -> CampaignIn:
        if self.ends_on < self.starts_on:
            raise ValueError("a campaign ends on or after the day it starts")
        return self


class CampaignOut(CampaignIn):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID


@router.post("/donors", status_code=201, response_model=DonorOut)
async def register_donor(body: DonorIn, runtime: RuntimeDep, _: CoordinatorDep) -> DonorOut:
    donor_id, now = uuid.uuid4(), runtime.clock.now()
    personal = body.model_dump(exclude={"kind"}, exclude_none=True)
    async with runtime.transaction() as conn:
        key = await vault.create_key(conn, donor_id, now)
        sealed = vault.seal(key, donor_id, personal)
        event = DonorRegistered(donor_id=donor_id, kind=body.kind)
        await runtime.append(conn, Append(str(donor_id), 0, [event], sealed=[sealed]))
        await conn.execute(insert(DonorRecord).values(id=donor_id, kind=body.kind, registered_at=now, sealed=sealed))
    return DonorOut(id=donor_id, kind=body.kind)


@router.post("/campaigns", status_code=201, response_model=CampaignOut)
async def create_campaign(body: CampaignIn, runtime: RuntimeDep, principal: CoordinatorDep) -> CampaignOut:
    for county_code in body.counties:
        require_county(principal, county_code)
    campaign = CampaignCreated(campaign_id=uuid.uuid4(), **body.model_dump())
    async with runtime.transaction() as conn:
        await runtime.append(conn, Append(str(campaign.campaign_id), 0, [campaign]))
        await conn.execute(
            insert(CampaignRecord).values(
                id=campaign.campaign_id,
                created_at=runtime.clock.now(),
                **body.model_dump(mode="json") | {"starts_on": body.starts_on, "ends_on": body.ends_on},
            )
        )
    return CampaignOut(id=campaign.campaign_id, **body.model_dump())


@router.get("/campaigns", response_model=Page[CampaignOut])
async def list_campaigns(
    runtime: RuntimeDep, _: Annotated[Principal, Depends(require("coordinator", "donor"))], paging: Paging
) -> Page[CampaignOut]:
    query = select(CampaignRecord).order_by(CampaignRecord.starts_on.desc(), CampaignRecord.id)
    async with runtime.db.read() as conn:
        return await fetch_page(conn, query, paging, _campaign)


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut)
async def read_campaign(
    campaign_id: uuid.UUID, runtime: RuntimeDep, _: Annotated[Principal, Depends(require("coordinator", "donor"))]
) -> CampaignOut:
    async with runtime.db.read() as conn:
        row = (await conn.execute(select(CampaignRecord).where(CampaignRecord.id == campaign_id))).first()
    if row is None:
        raise ApiError(404, "not_found", f"no campaign {campaign_id}")
    return _campaign(row)


def _campaign(row: Any) -> CampaignOut:
    return CampaignOut.model_validate({**row._mapping})
