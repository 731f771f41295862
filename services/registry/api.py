"""HTTP routes of the registry: they turn requests into commands and records into responses, nothing more."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import Select, select
from sqlalchemy.engine import Row

from backbone.auth import Principal
from backbone.csvexport import csv_response, export_rows
from backbone.deps import RuntimeDep, require_county
from backbone.errors import ApiError
from backbone.fields import Text
from backbone.paging import Page, Paging, fetch_page
from backbone.runtime import Runtime
from backbone.store import RecordedEvent
from contracts.vocabulary import (
    Category,
    ConsentScope,
    Flag,
    Gender,
    Guardianship,
    LeavingReason,
    Need,
    RiskLevel,
    age_band,
)
from services.registry import audit, domain, handlers, vault
from services.registry.audit import AuditEntry
from services.registry.fields import Phone
from services.registry.models import PERSONAL, ChildIn, KnownCounty, child_command
from services.registry.records import ChildRecord

router = APIRouter(tags=["children"])


def _staff(action: str) -> Any:
    """Coordinators and admins only: anyone else trying `action` on children is refused and audit-logged."""
    return Depends(audit.require(action, "coordinator"))


async def _purpose(
    x_purpose: Annotated[str | None, Header(alias="X-Purpose", max_length=200, description="why (ASCII)")] = None,
    purpose: Annotated[str | None, Query(max_length=200, description="why the record is read, e.g. 家访")] = None,
) -> str | None:
    return purpose or x_purpose  # a header carries ASCII only; a purpose in Chinese goes in the query


Purpose = Annotated[str | None, Depends(_purpose)]


class ChildOut(BaseModel):
    id: uuid.UUID
    name: str | None
    id_number: str | None
    birth_date: date | None
    gender: Gender
    category: Category
    county_code: str
    township: str | None
    village: str | None
    risk_level: RiskLevel
    guardianship: Guardianship | None
    guardian_name: str | None
    guardian_phone: str | None
    needs: list[Need]
    languages: list[str]
    flags: list[Flag]
    age_band: str
    personal_data_erased: bool
    status: Literal["active", "left"]
    left_reason: LeavingReason | None
    consent_scope: list[ConsentScope] | None
    allowed_purposes: list[ConsentScope] = Field(description="what the child's data may be processed for now")
    eligible_for_pairing: bool
    ineligible_reasons: list[str]
    version: int


class ChildChange(BaseModel):
    """What a coordinator may change; give only what changes. A new risk level needs its reason."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    risk_level: RiskLevel | None = None
    risk_reason: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    needs: list[Need] | None = Field(default=None, max_length=6)
    guardianship: Guardianship | None = None
    guardian_name: Text | None = None
    guardian_phone: Phone | None = None

    @model_validator(mode="after")
    def _complete(self) -> ChildChange:
        if self.risk_level is not None and not self.risk_reason:
            raise ValueError("a change of risk level needs its reason (risk_reason)")
        if not self.model_fields_set:
            raise ValueError("nothing to change")
        return self


class Leaving(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: LeavingReason


class ConsentIn(BaseModel):
    """A guardian's consent for a child under 14 (PIPL Art. 31): who gave it, when, for what."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    given_by: Text
    relation: Text
    given_at: date
    scope: list[ConsentScope] = Field(min_length=1, max_length=4)


class HistoryEntry(BaseModel):
    """One event of the child's stream, as the registry recorded it."""

    version: int
    type: str
    at: datetime
    fields: dict[str, Any] = Field(description="the event's fields, as on the bus (no personal data)")
    personal: dict[str, Any] | None = Field(
        description="the personal part sealed with the event (registration: name, ID number, birth date, places, "
        "guardian; a risk change: its reason; a consent: who gave it, their relation, when; a guardian change: "
        "the new guardian), opened; null if it has none or it was erased"
    )
    personal_erased: bool = Field(description="the event had a personal part, unreadable since the erasure")


class ChildHistory(BaseModel):
    child_id: uuid.UUID
    personal_data_erased: bool
    events: list[HistoryEntry]


class AuditOut(BaseModel):
    at: Any
    actor: str
    role: str
    action: str
    child_id: uuid.UUID | None
    county_code: str | None
    purpose: str
    outcome: str
    account_id: uuid.UUID | None = None  # the account an entry is about (sign-ins, account changes)


def _band(birth_date: date | None, today: date, registered_band: str) -> str:
    if birth_date is None:
        return registered_band  # erased: the band it had when registered
    age = domain.age_on(birth_date, today)
    return "18+" if age > 17 else age_band(age)


async def _many(runtime: Runtime, rows: Sequence[Row[Any]]) -> list[ChildOut]:
    """Several at once: their keys in a few queries, not one each."""
    async with runtime.db.read() as conn:
        keys = await vault.keys_of(conn, [row.id for row in rows])
    return [_render(runtime, row, keys.get(row.id)) for row in rows]


async def _out(runtime: Runtime, record: Row[Any]) -> ChildOut:
    return (await _many(runtime, [record]))[0]


def _render(runtime: Runtime, record: Row[Any], key: bytes | None) -> ChildOut:
    personal = vault.unseal(key, record.id, record.sealed) or {}
    birth_date = date.fromisoformat(personal["birth_date"]) if "birth_date" in personal else None
    return ChildOut(
        **{field: record._mapping[field] for field in ("id", "gender", "category", "county_code", "risk_level")},
        needs=record.needs,
        languages=record.languages,
        flags=record.flags,
        name=personal.get("name"),
        id_number=personal.get("id_number"),
        birth_date=birth_date,
        township=personal.get("township"),
        village=personal.get("village"),
        guardianship=record.guardianship,
        guardian_name=personal.get("guardian_name"),
        guardian_phone=personal.get("guardian_phone"),
        age_band=_band(birth_date, runtime.today(), record.age_band),
        personal_data_erased=record.erased_at is not None,
        status=record.status,
        left_reason=record.left_reason,
        consent_scope=record.consent_scope,
        allowed_purposes=record.allowed_purposes or [],
        eligible_for_pairing=record.eligible_for_pairing,
        ineligible_reasons=record.ineligible_reasons,
        version=record.version,
    )


@router.post("/children", status_code=201, response_model=ChildOut)
async def register_child(
    body: ChildIn, runtime: RuntimeDep, principal: Annotated[Principal, _staff("register")]
) -> ChildOut:
    await _in_county(runtime, principal, body.county_code, "register", None)
    command = child_command(body, runtime.today(), runtime.settings.secret)
    personal = {field: str(value) for field in PERSONAL if (value := getattr(body, field)) is not None}
    try:
        await handlers.register_child(runtime, command, personal)
    except domain.DomainError as error:
        raise ApiError(422, error.code, str(error)) from error
    return await _current(runtime, command.child_id)


async def _current(runtime: Runtime, child_id: uuid.UUID) -> ChildOut:
    """The child as a change leaves it: the record and its key in one query."""
    query = (
        _by_id(child_id)
        .add_columns(vault.PersonKey.key)
        .outerjoin(vault.PersonKey, vault.PersonKey.person_id == ChildRecord.id)
    )
    async with runtime.db.read() as conn:
        record = _found((await conn.execute(query)).first(), child_id)
    return _render(runtime, record, record.key)


async def _record(runtime: Runtime, child_id: uuid.UUID) -> Row[Any]:
    async with runtime.db.read() as conn:
        return _found((await conn.execute(_by_id(child_id))).first(), child_id)


def _by_id(child_id: uuid.UUID) -> Select[Any]:
    return select(ChildRecord).where(ChildRecord.id == child_id)


def _found(record: Row[Any] | None, child_id: uuid.UUID) -> Row[Any]:
    if record is None:
        raise ApiError(404, "not_found", f"no child {child_id}")
    return record


async def _scoped(
    runtime: Runtime, principal: Principal, child_id: uuid.UUID, action: str, why: str | None
) -> Row[Any]:
    """The child's record, if the caller may act on it; a refusal is audit-logged before it is answered."""
    record = await _record(runtime, child_id)
    if not principal.may_act_in(record.county_code):
        await audit.record(runtime, principal, action, [(child_id, record.county_code)], why, "denied")
        require_county(principal, record.county_code)
    await audit.record(runtime, principal, action, [(child_id, record.county_code)], why)
    return record


async def _in_county(runtime: Runtime, principal: Principal, county_code: str, action: str, why: str | None) -> None:
    """A request for a whole county (a list, an export, a registration) outside the caller's counties is refused,
    and audit-logged first, as a refused read of one child is."""
    if not principal.may_act_in(county_code):
        await audit.record(runtime, principal, action, [(None, county_code)], why, "denied")
        require_county(principal, county_code)


@dataclass(frozen=True)
class ChildFilter:
    county_code: KnownCounty
    category: Annotated[Category | None, Query()] = None
    risk_level: Annotated[RiskLevel | None, Query()] = None
    status: Annotated[Literal["active", "left"] | None, Query()] = None
    eligible_for_pairing: Annotated[bool | None, Query()] = None

    def query(self) -> Select[Any]:
        query = select(ChildRecord).where(ChildRecord.county_code == self.county_code)
        for column, value in (
            (ChildRecord.category, self.category),
            (ChildRecord.risk_level, self.risk_level),
            (ChildRecord.status, self.status),
            (ChildRecord.eligible_for_pairing, self.eligible_for_pairing),
        ):
            if value is not None:
                query = query.where(column == value)
        return query.order_by(ChildRecord.registered_at, ChildRecord.id)


Filter = Annotated[ChildFilter, Depends()]


@router.get("/children", response_model=Page[ChildOut])
async def list_children(
    runtime: RuntimeDep,
    principal: Annotated[Principal, _staff("list")],
    where: Filter,
    paging: Paging,
    purpose: Purpose,
) -> Page[ChildOut]:
    await _in_county(runtime, principal, where.county_code, "list", purpose)
    async with runtime.db.read() as conn:
        page = await fetch_page(conn, where.query(), paging, lambda row: row)
    await audit.record(runtime, principal, "list", [(row.id, row.county_code) for row in page.items], purpose)
    items = await _many(runtime, page.items)
    return Page[ChildOut](items=items, total=page.total, limit=page.limit, offset=page.offset)


@router.get("/children/export", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def export_children(
    runtime: RuntimeDep, principal: Annotated[Principal, _staff("export")], where: Filter, purpose: Purpose
) -> Response:
    """Every child the filter selects, as CSV (personal fields included, so every row is audit-logged)."""
    await _in_county(runtime, principal, where.county_code, "export", purpose)
    async with runtime.db.read() as conn:
        rows = await export_rows(conn, where.query(), runtime.settings.export_max_rows)
    await audit.record(runtime, principal, "export", [(row.id, row.county_code) for row in rows], purpose)
    children = await _many(runtime, rows)
    return csv_response(children, list(ChildOut.model_fields), f"children-{where.county_code}.csv")


@router.get("/children/{child_id}", response_model=ChildOut)
async def read_child(
    child_id: uuid.UUID,
    runtime: RuntimeDep,
    principal: Annotated[Principal, _staff("read")],
    response: Response,
    purpose: Purpose,
) -> ChildOut:
    child = await _out(runtime, await _scoped(runtime, principal, child_id, "read", purpose))
    response.headers["ETag"] = f'"{child.version}"'
    return child


IfMatch = Annotated[
    str | None, Header(alias="If-Match", max_length=40, description='the version you read (its ETag, e.g. "3")')
]


def _version(if_match: str | None) -> int | None:
    """`If-Match: "3"` (or W/"3", or 3) as the version the caller read; 409 later if it moved on."""
    if if_match is None:
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise ApiError(422, "invalid", 'If-Match takes the ETag of a read, e.g. "3"')
    return int(value)


async def _change(
    runtime: Runtime,
    principal: Principal,
    child_id: uuid.UUID,
    action: str,
    decisions: list[handlers.Decision],
    purpose: str | None,
    **options: Any,
) -> ChildOut:
    await _scoped(runtime, principal, child_id, action, purpose)
    return await _apply(runtime, child_id, decisions, **options)


async def _apply(runtime: Runtime, child_id: uuid.UUID, decisions: list[handlers.Decision], **options: Any) -> ChildOut:
    """Decide and append the changes to a child the caller was already found to be allowed to change."""
    try:
        await handlers.change_child(runtime, child_id, decisions, **options)
    except domain.DomainError as error:
        raise ApiError(
            409 if error.code in ("left_programme", "no_consent") else 422, error.code, str(error)
        ) from error
    return await _current(runtime, child_id)


@router.patch("/children/{child_id}", response_model=ChildOut)
async def change_child(
    child_id: uuid.UUID,
    body: ChildChange,
    runtime: RuntimeDep,
    principal: Annotated[Principal, _staff("change")],
    purpose: Purpose,
    if_match: IfMatch = None,
) -> ChildOut:
    """The risk reason and a new guardian are sealed with the change's first event: the history shows them."""
    record = await _scoped(runtime, principal, child_id, "change", purpose)
    decisions: list[handlers.Decision] = []
    if body.risk_level is not None:
        decisions.append(partial(domain.change_risk, risk_level=body.risk_level))
    if body.needs is not None:
        decisions.append(partial(domain.change_needs, needs=tuple(body.needs)))
    guardian = {k: v for k, v in (("guardian_name", body.guardian_name), ("guardian_phone", body.guardian_phone)) if v}
    if body.guardianship is not None or guardian:
        kind = await _guardianship(runtime, record, body.guardianship, guardian)
        decisions.append(partial(domain.change_guardianship, guardianship=kind, guardian_changed=bool(guardian)))
    note = ({"risk_reason": body.risk_reason} if body.risk_reason else {}) | guardian
    return await _apply(
        runtime, child_id, decisions, expected_version=_version(if_match), note=note or None, updates=guardian or None
    )


async def _guardianship(
    runtime: Runtime, record: Row[Any], kind: Guardianship | None, guardian: dict[str, str]
) -> Guardianship:
    """The guardianship after the change; a guardian's name and phone are needed unless the state is one."""
    current = await _out(runtime, record)
    kind = kind or current.guardianship or "temporary_state"
    has_guardian = (guardian.get("guardian_name") or current.guardian_name) and (
        guardian.get("guardian_phone") or current.guardian_phone
    )
    if kind != "temporary_state" and not has_guardian:
        raise ApiError(422, "guardian_needed", "a guardian's name and phone are needed unless the state is one")
    return kind


@router.post("/children/{child_id}/leave", response_model=ChildOut)
async def leave_programme(
    child_id: uuid.UUID,
    body: Leaving,
    runtime: RuntimeDep,
    principal: Annotated[Principal, _staff("leave")],
    purpose: Purpose,
) -> ChildOut:
    decisions: list[handlers.Decision] = [partial(domain.leave_programme, reason=body.reason)]
    return await _change(runtime, principal, child_id, "leave", decisions, purpose)


@router.post("/children/{child_id}/consent", response_model=ChildOut)
async def record_consent(
    child_id: uuid.UUID,
    body: ConsentIn,
    runtime: RuntimeDep,
    principal: Annotated[Principal, _staff("consent")],
    purpose: Purpose,
) -> ChildOut:
    """Who gave the consent, their relation and when are sealed with the event: the history shows them."""
    if body.given_at > runtime.today():
        raise ApiError(422, "in_future", "a consent cannot be recorded as given after today", {"field": "given_at"})
    decision = partial(domain.record_consent, scope=tuple(body.scope))
    note = {"given_by": body.given_by, "relation": body.relation, "given_at": body.given_at.isoformat()}
    return await _change(runtime, principal, child_id, "consent", [decision], purpose, note=note)


@router.delete("/children/{child_id}/consent", response_model=ChildOut)
async def withdraw_consent(
    child_id: uuid.UUID,
    runtime: RuntimeDep,
    principal: Annotated[Principal, _staff("withdraw_consent")],
    purpose: Purpose,
) -> ChildOut:
    return await _change(runtime, principal, child_id, "withdraw_consent", [domain.withdraw_consent], purpose)


@router.delete("/children/{child_id}/personal-data", status_code=204)
async def erase_personal_data(
    child_id: uuid.UUID, runtime: RuntimeDep, principal: Annotated[Principal, _staff("erase")], purpose: Purpose
) -> Response:
    await _scoped(runtime, principal, child_id, "erase", purpose)
    await handlers.erase_personal_data(runtime, child_id)
    return Response(status_code=204)


@router.get("/children/{child_id}/history", response_model=ChildHistory)
async def child_history(
    child_id: uuid.UUID, runtime: RuntimeDep, principal: Annotated[Principal, _staff("history")], purpose: Purpose
) -> ChildHistory:
    """Every event of the child, oldest first, with the personal part sealed with it opened: for a coordinator of
    the child's county or an admin, and audit-logged like any read of personal data. After an erasure the events
    are all still there, their personal parts gone."""
    record = await _scoped(runtime, principal, child_id, "history", purpose)
    async with runtime.db.read() as conn:
        events = await runtime.store.load(conn, str(child_id))
        key = await vault.key_of(conn, child_id)
    return ChildHistory(
        child_id=child_id,
        personal_data_erased=record.erased_at is not None,
        events=[_entry(child_id, recorded, key) for recorded in events],
    )


def _entry(child_id: uuid.UUID, recorded: RecordedEvent, key: bytes | None) -> HistoryEntry:
    event = recorded.event()  # the newest version of its type, as the rest of the registry reads it
    personal = vault.unseal(key, child_id, recorded.sealed)
    return HistoryEntry(
        version=recorded.version,
        type=event.type_name,
        at=recorded.recorded_at,
        fields=event.model_dump(mode="json"),
        personal=personal,
        personal_erased=recorded.sealed is not None and personal is None,
    )


@router.get("/audit", response_model=Page[AuditOut], tags=["audit"])
async def audit_log(
    runtime: RuntimeDep,
    _: Annotated[Principal, Depends(audit.require("read_audit"))],
    paging: Paging,
    child_id: uuid.UUID | None = None,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    outcome: Literal["allowed", "denied"] | None = None,
) -> Page[AuditOut]:
    """Newest first; `outcome=denied` for the refusals alone."""
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    for column, value in ((AuditEntry.child_id, child_id), (AuditEntry.actor, actor), (AuditEntry.outcome, outcome)):
        if value is not None:
            query = query.where(column == value)
    async with runtime.db.read() as conn:
        return await fetch_page(conn, query, paging, lambda row: AuditOut.model_validate(row._mapping))
