"""`POST /children/import`: a CSV file of children, each valid row registered once, each bad row reported."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from backbone.auth import Principal
from backbone.deps import RuntimeDep, require
from backbone.errors import ApiError
from backbone.runtime import Runtime
from services.registry import domain, handlers, volunteer_handlers
from services.registry.fingerprints import fingerprint
from services.registry.importing import ImportRefused, parse_children, parse_volunteers
from services.registry.models import PERSONAL, ChildIn
from services.registry.volunteer_api import registration

router = APIRouter(tags=["children"])


class RejectedRow(BaseModel):
    line: int
    errors: list[str]


class ImportOut(BaseModel):
    imported: int
    already_imported: int
    rejected: list[RejectedRow]


@router.post(
    "/children/import",
    response_model=ImportOut,
    openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}}}},
)
async def import_children(
    request: Request,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator"))],
    all_or_nothing: Annotated[bool, Query(description="import nothing if any row is bad")] = False,
) -> ImportOut:
    """CSV in UTF-8 or GB18030 with English or Chinese headers (姓名, 身份证号, …). Retrying adds nobody twice."""
    try:
        parsed = parse_children(await request.body())
    except ImportRefused as error:
        raise ApiError(422, "import_refused", str(error)) from error
    today = runtime.today()
    secret = runtime.settings.jwt_secret.get_secret_value().encode()
    rejected = [RejectedRow(line=r.line, errors=r.errors) for r in parsed.rejected]
    registrations = []
    first_seen: dict[str, int] = {}
    for line, child in parsed.accepted:
        if not principal.may_act_in(child.county_code):
            rejected.append(RejectedRow(line=line, errors=[f"county_code: not scoped to county {child.county_code}"]))
            continue
        command = _command(child, today)
        try:
            domain.register_child(None, command)
        except domain.DomainError as error:
            rejected.append(RejectedRow(line=line, errors=[f"{error.code}: {error}"]))
            continue
        who = _fingerprint(secret, child)
        if who in first_seen:  # without an ID number, only name, birth date and guardian tell children apart
            rejected.append(RejectedRow(line=line, errors=[f"the same child as on line {first_seen[who]}"]))
            continue
        first_seen[who] = line
        personal = {field: str(value) for field in PERSONAL if (value := getattr(child, field)) is not None}
        registrations.append(handlers.Registration(command, personal, who))
    rejected.sort(key=lambda row: row.line)
    if rejected and all_or_nothing:
        return ImportOut(imported=0, already_imported=0, rejected=rejected)
    known = await _once(handlers.register_children, runtime, registrations)
    return ImportOut(imported=len(registrations) - len(known), already_imported=len(known), rejected=rejected)


@router.post(
    "/volunteers/import",
    response_model=ImportOut,
    tags=["volunteers"],
    openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}}}},
)
async def import_volunteers(
    request: Request,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator"))],
    all_or_nothing: Annotated[bool, Query(description="import nothing if any row is bad")] = False,
) -> ImportOut:
    """CSV of volunteers (姓名, 电话, 类型, 县区代码, 乡镇, …). Retrying adds nobody twice."""
    try:
        parsed = parse_volunteers(await request.body())
    except ImportRefused as error:
        raise ApiError(422, "import_refused", str(error)) from error
    secret = runtime.settings.jwt_secret.get_secret_value().encode()
    rejected = [RejectedRow(line=r.line, errors=r.errors) for r in parsed.rejected]
    registrations = []
    for line, volunteer in parsed.accepted:
        if not principal.may_act_in(volunteer.county_code):
            rejected.append(
                RejectedRow(line=line, errors=[f"county_code: not scoped to county {volunteer.county_code}"])
            )
            continue
        who = fingerprint(secret, "volunteer", [volunteer.county_code, volunteer.phone])
        registrations.append(registration(volunteer, uuid.uuid4(), who))
    rejected.sort(key=lambda row: row.line)
    if rejected and all_or_nothing:
        return ImportOut(imported=0, already_imported=0, rejected=rejected)
    known = await _once(volunteer_handlers.register_volunteers, runtime, registrations)
    return ImportOut(imported=len(registrations) - len(known), already_imported=len(known), rejected=rejected)


async def _once(
    register: Callable[[Runtime, list[Any]], Awaitable[set[str]]], runtime: Runtime, rows: list[Any]
) -> set[str]:
    """Register, and if the same file's retry committed the same people meanwhile, once more: it skips them."""
    try:
        return await register(runtime, rows)
    except IntegrityError:
        return await register(runtime, rows)


def _command(child: ChildIn, today: date) -> domain.RegisterChild:
    return domain.RegisterChild(
        child_id=uuid.uuid4(),
        county_code=child.county_code,
        category=child.category,
        gender=child.gender,
        risk_level=child.risk_level,
        guardianship=child.guardianship,
        birth_date=child.birth_date,
        today=today,
        needs=tuple(child.needs),
        languages=tuple(child.languages),
        flags=tuple(child.flags),
    )


def _fingerprint(secret: bytes, child: ChildIn) -> str:
    """The same child in the same county is the same row, however often the file is sent."""
    parts = [
        child.county_code,
        child.name,
        child.birth_date.isoformat(),
        child.id_number or "",
        child.guardian_phone or "",
    ]
    return fingerprint(secret, "child", parts)
