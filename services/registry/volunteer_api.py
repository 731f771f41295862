"""HTTP routes for volunteers: registration, vetting, trainings, service hours, and who may see what."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import Select, select
from sqlalchemy.engine import Row

from backbone.auth import Principal
from backbone.csvexport import csv_response, export_rows
from backbone.deps import CoordinatorDep, PrincipalDep, RuntimeDep, require_county
from backbone.errors import ApiError
from backbone.fields import Text
from backbone.paging import Page, Paging, fetch_page
from backbone.runtime import Runtime
from contracts.vocabulary import Language, Need
from contracts.volunteers import (
    ScreeningStep,
    VolunteerKind,
    VolunteerRegistered,
    VolunteerScreeningRecorded,
    VolunteerServiceRecorded,
    VolunteerTrainingRecorded,
)
from services.registry import vault, volunteer_handlers
from services.registry import volunteer as domain
from services.registry.domain import DomainError
from services.registry.fields import Phone
from services.registry.models import KnownCounty
from services.registry.places import place_keys
from services.registry.records import VolunteerRecord

router = APIRouter(tags=["volunteers"])
PERSONAL = ("name", "phone", "township", "village")  # sealed with the volunteer's own key


class VolunteerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Text
    phone: Phone
    kind: VolunteerKind
    county_code: KnownCounty
    township: Text
    village: Text | None = None
    capacity: int = Field(default=1, ge=1, le=20, description="children at once")
    skills: list[Need] = Field(default=[], max_length=6)
    languages: list[Language] = Field(default=["zh"], max_length=10)
    availability: Annotated[str, Field(max_length=200)] | None = None


class VolunteerPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    capacity: int = Field(ge=1, le=20, description="children at once, from now on")


class ScreeningIn(BaseModel):
    """A vetting step's result. A pass counts only until it expires, so it needs `expires_at` (422 `expiry_required`
    otherwise); a failure needs none."""

    model_config = ConfigDict(extra="forbid")

    step: ScreeningStep
    result: Literal["passed", "failed"]
    checked_at: date
    expires_at: date | None = Field(default=None, description="required for a pass: until when it counts")


class TrainingIn(BaseModel):
    """A training counts only until it expires: without `expires_at` it is refused."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    course: Text
    completed_at: date
    expires_at: date = Field(description="until when the training counts")


class ServiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    served_on: date
    hours: float = Field(gt=0, le=24)
    campaign_id: uuid.UUID | None = None


class VolunteerOut(BaseModel):
    id: uuid.UUID
    name: str | None
    phone: str | None
    township: str | None
    village: str | None
    kind: VolunteerKind
    county_code: str
    capacity: int
    skills: list[str]
    languages: list[str]
    availability: str | None
    screenings: dict[str, Any]
    trainings: list[Any]
    eligible: bool
    reasons: list[str]
    service_hours: float
    version: int


async def _many(runtime: Runtime, rows: Sequence[Row[Any]]) -> list[VolunteerOut]:
    """Several at once: their keys in a few queries, not one each."""
    async with runtime.db.read() as conn:
        keys = await vault.keys_of(conn, [row.id for row in rows])
    return [_render(runtime, row, keys.get(row.id)) for row in rows]


async def _out(runtime: Runtime, row: Row[Any]) -> VolunteerOut:
    return (await _many(runtime, [row]))[0]


def _render(runtime: Runtime, row: Row[Any], key: bytes | None) -> VolunteerOut:
    personal = vault.unseal(key, row.id, row.sealed) or {}
    return VolunteerOut(
        **{
            f: row._mapping[f] for f in ("id", "kind", "county_code", "capacity", "skills", "languages", "availability")
        },
        **{f: personal.get(f) for f in PERSONAL},
        screenings=row.screenings,
        trainings=row.trainings,
        eligible=row.eligible,
        reasons=row.ineligible_reasons,
        service_hours=row.service_hours,
        version=row.version,
    )


async def _row(runtime: Runtime, volunteer_id: uuid.UUID) -> Row[Any]:
    async with runtime.db.read() as conn:
        row = (await conn.execute(select(VolunteerRecord).where(VolunteerRecord.id == volunteer_id))).first()
    if row is None:
        raise ApiError(404, "not_found", f"no volunteer {volunteer_id}")
    return row


async def _scoped(runtime: Runtime, principal: Principal, volunteer_id: uuid.UUID) -> Row[Any]:
    row = await _row(runtime, volunteer_id)
    require_county(principal, row.county_code)
    return row


def registration(
    body: VolunteerIn, volunteer_id: uuid.UUID, secret: bytes, fingerprint: str | None = None
) -> volunteer_handlers.VolunteerRegistration:
    registered = VolunteerRegistered(
        volunteer_id=volunteer_id,
        kind=body.kind,
        county_code=body.county_code,
        skills=sorted(set(body.skills)),
        languages=sorted(set(body.languages)),
        capacity=body.capacity,
        **place_keys(secret, body.county_code, body.township, body.village),
    )
    personal = {field: value for field in PERSONAL if (value := getattr(body, field)) is not None}
    return volunteer_handlers.VolunteerRegistration(registered, body.availability, personal, fingerprint)


@router.post("/volunteers", status_code=201, response_model=VolunteerOut)
async def register_volunteer(body: VolunteerIn, runtime: RuntimeDep, principal: CoordinatorDep) -> VolunteerOut:
    require_county(principal, body.county_code)
    new = registration(body, uuid.uuid4(), runtime.settings.secret)
    await volunteer_handlers.register(runtime, new)
    return await _out(runtime, await _row(runtime, new.registered.volunteer_id))


def _in_utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # year 1 east of Greenwich, year 9999 west of it: no moment the database can compare
        raise ValueError("the moment is outside the years 1 to 9999 in UTC") from None


# A query's moment: ISO 8601 with its zone (`Z` or `%2B08:00` in a URL), as every time this API reads or writes.
Moment = Annotated[AwareDatetime, AfterValidator(_in_utc)]


@dataclass(frozen=True)
class VolunteerFilter:
    county_code: KnownCounty
    eligible: Annotated[bool | None, Query()] = None
    kind: Annotated[VolunteerKind | None, Query()] = None
    expiring_before: Annotated[
        Moment | None,
        Query(
            description="only volunteers eligible now whose next screening pass or training expires before this moment"
            " (ISO 8601 with its zone)"
        ),
    ] = None

    def query(self) -> Select[Any]:
        query = select(VolunteerRecord).where(VolunteerRecord.county_code == self.county_code)
        if self.eligible is not None:
            query = query.where(VolunteerRecord.eligible.is_(self.eligible))
        if self.kind is not None:
            query = query.where(VolunteerRecord.kind == self.kind)
        if self.expiring_before is not None:
            query = query.where(
                VolunteerRecord.eligible.is_(True), VolunteerRecord.eligibility_changes_at < self.expiring_before
            )
        return query.order_by(VolunteerRecord.registered_at, VolunteerRecord.id)


Filter = Annotated[VolunteerFilter, Depends()]


@router.get("/volunteers", response_model=Page[VolunteerOut])
async def list_volunteers(
    runtime: RuntimeDep, principal: CoordinatorDep, where: Filter, paging: Paging
) -> Page[VolunteerOut]:
    require_county(principal, where.county_code)
    async with runtime.db.read() as conn:
        page = await fetch_page(conn, where.query(), paging, lambda row: row)
    items = await _many(runtime, page.items)
    return Page[VolunteerOut](items=items, total=page.total, limit=page.limit, offset=page.offset)


@router.get("/volunteers/export", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def export_volunteers(runtime: RuntimeDep, principal: CoordinatorDep, where: Filter) -> Response:
    require_county(principal, where.county_code)
    async with runtime.db.read() as conn:
        rows = await export_rows(conn, where.query(), runtime.settings.export_max_rows)
    volunteers = await _many(runtime, rows)
    fields = [f for f in VolunteerOut.model_fields if f not in ("screenings", "trainings")]
    return csv_response(volunteers, fields, f"volunteers-{where.county_code}.csv")


@router.get("/volunteers/{volunteer_id}", response_model=VolunteerOut)
async def read_volunteer(volunteer_id: uuid.UUID, runtime: RuntimeDep, principal: PrincipalDep) -> VolunteerOut:
    if principal.role == "volunteer" and principal.sub == str(volunteer_id):
        return await _out(runtime, await _row(runtime, volunteer_id))  # volunteers see themselves
    if principal.role not in ("admin", "coordinator"):
        raise ApiError(403, "forbidden", "volunteers see only their own record")
    return await _out(runtime, await _scoped(runtime, principal, volunteer_id))


async def _record(
    runtime: Runtime,
    principal: Principal,
    volunteer_id: uuid.UUID,
    event: VolunteerScreeningRecorded | VolunteerTrainingRecorded | VolunteerServiceRecorded,
) -> VolunteerOut:
    await _scoped(runtime, principal, volunteer_id)
    try:
        if isinstance(event, VolunteerServiceRecorded):
            await volunteer_handlers.change(runtime, volunteer_id, lambda state, _: [event] if state else [])
        else:
            await volunteer_handlers.change(runtime, volunteer_id, partial(_vetting, event))
    except DomainError as error:
        raise ApiError(422, error.code, str(error)) from error
    return await _out(runtime, await _row(runtime, volunteer_id))


def _vetting(
    event: VolunteerScreeningRecorded | VolunteerTrainingRecorded, state: domain.Volunteer | None, now: Any
) -> list[Any]:
    return domain.record(state, event, now)


@router.patch("/volunteers/{volunteer_id}", response_model=VolunteerOut)
async def change_volunteer(
    volunteer_id: uuid.UUID, body: VolunteerPatch, runtime: RuntimeDep, principal: CoordinatorDep
) -> VolunteerOut:
    """Change how many children the volunteer takes on at once."""
    await _scoped(runtime, principal, volunteer_id)
    try:
        await volunteer_handlers.change(
            runtime, volunteer_id, lambda state, _: domain.change_capacity(state, body.capacity)
        )
    except DomainError as error:
        raise ApiError(422, error.code, str(error)) from error
    return await _out(runtime, await _row(runtime, volunteer_id))


@router.post("/volunteers/{volunteer_id}/screenings", response_model=VolunteerOut)
async def record_screening(
    volunteer_id: uuid.UUID, body: ScreeningIn, runtime: RuntimeDep, principal: CoordinatorDep
) -> VolunteerOut:
    event = VolunteerScreeningRecorded(volunteer_id=volunteer_id, **body.model_dump())
    return await _record(runtime, principal, volunteer_id, event)


@router.post("/volunteers/{volunteer_id}/trainings", response_model=VolunteerOut)
async def record_training(
    volunteer_id: uuid.UUID, body: TrainingIn, runtime: RuntimeDep, principal: CoordinatorDep
) -> VolunteerOut:
    event = VolunteerTrainingRecorded(volunteer_id=volunteer_id, **body.model_dump())
    return await _record(runtime, principal, volunteer_id, event)


@router.post("/volunteers/{volunteer_id}/service-hours", response_model=VolunteerOut)
async def record_service(
    volunteer_id: uuid.UUID, body: ServiceIn, runtime: RuntimeDep, principal: CoordinatorDep
) -> VolunteerOut:
    if body.served_on > runtime.today():
        raise ApiError(422, "in_future", "service cannot be recorded before it happened")
    event = VolunteerServiceRecorded(volunteer_id=volunteer_id, **body.model_dump())
    return await _record(runtime, principal, volunteer_id, event)


@router.delete("/volunteers/{volunteer_id}/personal-data", status_code=204)
async def erase_personal_data(volunteer_id: uuid.UUID, runtime: RuntimeDep, principal: CoordinatorDep) -> Response:
    await _scoped(runtime, principal, volunteer_id)
    await volunteer_handlers.erase(runtime, volunteer_id)
    return Response(status_code=204)
