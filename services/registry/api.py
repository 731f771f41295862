"""HTTP routes of the registry: they turn requests into commands and records into responses, nothing more."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from backbone.auth import Principal
from backbone.deps import RuntimeDep, require, require_county
from backbone.errors import ApiError
from backbone.fields import Text
from backbone.paging import Page, Paging, fetch_page
from contracts.vocabulary import Category, CountyCode, Flag, Language, Need, RiskLevel, age_band
from services.registry import domain, handlers
from services.registry.records import ChildRecord

router = APIRouter(tags=["children"])
Coordinator = Annotated[Principal, Depends(require("coordinator"))]


class ChildIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Text
    birth_date: date
    gender: Literal["female", "male"]
    category: Category
    county_code: CountyCode
    township: Text
    village: Text
    risk_level: RiskLevel
    needs: list[Need] = Field(default=[], max_length=6)
    languages: list[Language] = Field(default=["zh"], max_length=10)
    flags: list[Flag] = Field(default=[], max_length=2)


class ChildOut(ChildIn):
    id: uuid.UUID
    age_band: str


def _band(birth_date: date, today: date) -> str:
    age = domain.age_on(birth_date, today)
    return "18+" if age > 17 else age_band(age)  # aged out, until the record says the child left the programme


def _out(record: ChildRecord, today: date) -> ChildOut:
    fields = {name: getattr(record, name) for name in ChildIn.model_fields}
    return ChildOut(id=record.id, age_band=_band(record.birth_date, today), **fields)


@router.post("/children", status_code=201, response_model=ChildOut)
async def register_child(body: ChildIn, runtime: RuntimeDep, principal: Coordinator) -> ChildOut:
    require_county(principal, body.county_code)
    today = runtime.clock.now().date()
    command = domain.RegisterChild(
        child_id=uuid.uuid4(),
        county_code=body.county_code,
        category=body.category,
        risk_level=body.risk_level,
        birth_date=body.birth_date,
        today=today,
        needs=tuple(body.needs),
        languages=tuple(body.languages),
        flags=tuple(body.flags),
    )
    personal = {"name": body.name, "gender": body.gender, "township": body.township, "village": body.village}
    try:
        await handlers.register_child(runtime, command, personal)
    except domain.DomainError as error:
        raise ApiError(422, error.code, str(error)) from error
    return ChildOut(id=command.child_id, age_band=_band(body.birth_date, today), **body.model_dump())


@router.get("/children/{child_id}", response_model=ChildOut)
async def read_child(child_id: uuid.UUID, runtime: RuntimeDep, principal: Coordinator) -> ChildOut:
    async with runtime.db.read() as conn:
        record = (await conn.execute(select(ChildRecord).where(ChildRecord.id == child_id))).first()
    if record is None:
        raise ApiError(404, "not_found", f"no child {child_id}")
    child = ChildRecord(**record._mapping)
    require_county(principal, child.county_code)
    return _out(child, runtime.clock.now().date())


@router.get("/children", response_model=Page[ChildOut])
async def list_children(
    runtime: RuntimeDep, principal: Coordinator, county_code: CountyCode, paging: Paging
) -> Page[ChildOut]:
    require_county(principal, county_code)
    today = runtime.clock.now().date()
    query = (
        select(ChildRecord)
        .where(ChildRecord.county_code == county_code)
        .order_by(ChildRecord.registered_at, ChildRecord.id)
    )
    async with runtime.db.read() as conn:
        return await fetch_page(conn, query, paging, lambda row: _out(ChildRecord(**row._mapping), today))
