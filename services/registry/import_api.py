"""`POST /children/import` and `/volunteers/import`: a CSV file, each valid row registered once, each bad row
reported."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from backbone.auth import Principal
from backbone.deps import CoordinatorDep, RuntimeDep
from backbone.errors import ApiError
from backbone.runtime import Runtime
from services.registry import audit, domain, handlers, volunteer_handlers
from services.registry.fingerprints import fingerprint
from services.registry.importing import ImportRefused, Parsed, parse_children, parse_volunteers
from services.registry.models import PERSONAL, ChildIn, child_command
from services.registry.volunteer_api import VolunteerIn, registration

router = APIRouter(tags=["children"])


class RejectedRow(BaseModel):
    line: int
    errors: list[str]


class ImportOut(BaseModel):
    imported: int
    already_imported: int
    rejected: list[RejectedRow]


CSV_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "contentMediaType": "text/csv"}},
                    "required": ["file"],
                },
            },
        },
    }
}
ChildImporter = Annotated[Principal, Depends(audit.require("import", "coordinator"))]
AllOrNothing = Annotated[bool, Query(description="import nothing if any row is bad")]
Row = TypeVar("Row", ChildIn, VolunteerIn)


async def _rows(
    request: Request, principal: Principal, parse: Callable[[bytes], Parsed[Row]]
) -> tuple[list[tuple[int, Row]], list[RejectedRow], set[str]]:
    """The file's rows in the caller's counties, every row refused so far (a bad file is a 422), and the counties
    outside the caller's that rows named."""
    try:
        parsed = parse(await _upload(request))
    except ImportRefused as error:
        raise ApiError(422, "import_refused", str(error)) from error
    rejected = [RejectedRow(line=r.line, errors=r.errors) for r in parsed.rejected]
    accepted, foreign = [], set()
    for line, row in parsed.accepted:
        if principal.may_act_in(row.county_code):
            accepted.append((line, row))
        else:
            rejected.append(RejectedRow(line=line, errors=[f"county_code: not scoped to county {row.county_code}"]))
            foreign.add(row.county_code)
    return accepted, rejected, foreign


class _PartsInMemory(MultiPartParser):
    # A file of children's names and ID numbers is never written to a temporary file on disk, where deleting it
    # would leave its text behind: it stays in memory, as a raw body does (both bounded by MAX_UPLOAD_BYTES).
    spool_max_size = sys.maxsize


async def _upload(request: Request) -> bytes:
    """The file: the body itself, or the one file part of a multipart/form-data upload (`curl -F file=@…`)."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        return await request.body()
    try:
        form = await _PartsInMemory(request.headers, request.stream()).parse()
    except MultiPartException as error:  # its messages name the problem, never the body's text
        raise ApiError(400, "bad_upload", f"the multipart body cannot be read: {error.message}") from error
    try:
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if len(files) != 1 or len(form.multi_items()) != 1:
            raise ApiError(
                422,
                "one_file_expected",
                "a multipart upload carries the CSV as its only part, a file (curl -F file=@your-file.csv); "
                f"this one has {len(files)} file part(s) and {len(form.multi_items()) - len(files)} other part(s)",
            )
        return await files[0].read()
    finally:
        await form.close()


async def _finish(
    runtime: Runtime,
    register: Callable[[Runtime, list[Any]], Awaitable[set[str]]],
    registrations: list[Any],
    rejected: list[RejectedRow],
    all_or_nothing: bool,
) -> ImportOut:
    rejected.sort(key=lambda row: row.line)
    if rejected and all_or_nothing:
        return ImportOut(imported=0, already_imported=0, rejected=rejected)
    try:
        known = await register(runtime, registrations)
    except IntegrityError:  # a retry of the same file committed the same people meanwhile: this time it skips them
        known = await register(runtime, registrations)
    return ImportOut(imported=len(registrations) - len(known), already_imported=len(known), rejected=rejected)


@router.post("/children/import", response_model=ImportOut, openapi_extra=CSV_BODY)
async def import_children(
    request: Request, runtime: RuntimeDep, principal: ChildImporter, all_or_nothing: AllOrNothing = False
) -> ImportOut:
    """CSV in UTF-8 or GB18030 with English or Chinese headers (姓名, 身份证号, …), sent as the body (text/csv) or as
    the one file part of a multipart upload. Retrying adds nobody twice; rows for counties outside the caller's are
    refused, and each such county audit-logged."""
    accepted, rejected, foreign = await _rows(request, principal, parse_children)
    await audit.record(runtime, principal, "import", [(None, county) for county in sorted(foreign)], None, "denied")
    today, secret = runtime.today(), runtime.settings.secret
    registrations = []
    first_seen: dict[str, int] = {}
    for line, child in accepted:
        command = child_command(child, today, secret)
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
    return await _finish(runtime, handlers.register_children, registrations, rejected, all_or_nothing)


@router.post("/volunteers/import", response_model=ImportOut, tags=["volunteers"], openapi_extra=CSV_BODY)
async def import_volunteers(
    request: Request, runtime: RuntimeDep, principal: CoordinatorDep, all_or_nothing: AllOrNothing = False
) -> ImportOut:
    """CSV of volunteers (姓名, 电话, 类型, 县区代码, 乡镇, …), as the body or one multipart file part. Retrying adds
    nobody twice."""
    accepted, rejected, _ = await _rows(request, principal, parse_volunteers)
    secret = runtime.settings.secret
    registrations = [
        registration(
            volunteer, uuid.uuid4(), secret, fingerprint(secret, "volunteer", [volunteer.county_code, volunteer.phone])
        )
        for _, volunteer in accepted
    ]
    return await _finish(runtime, volunteer_handlers.register_volunteers, registrations, rejected, all_or_nothing)


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
