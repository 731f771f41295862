"""Imports of children and of volunteers from a CSV as Excel saves it (UTF-8 or GB18030): the file goes on to the
registry as it came, and the registry's answer is shown row by row: the line and what is wrong, never a row's values.

The upload is read here, in memory, with its CSRF token (the router has no `csrf_checked`, which would read the form
first): a file of children's names and ID numbers is never spooled to a temporary file on disk, as the registry,
receiving it, keeps it in memory too."""

from __future__ import annotations

import hmac
import re
import sys
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from services.console.errors import MESSAGES
from services.console.i18n import N_
from services.console.labels import LABELS
from services.console.upstream import ApiFailure
from services.console.web import Refused, StaffDep, form, session_of

router = APIRouter()
Kind = Literal["children", "volunteers"]
# "field: reason", "field (item 2): reason" or "code: message", as the registry writes a row's errors
ROW_ERROR = re.compile(r"(?P<name>[a-z_]+)(?: \(item (?P<item>\d+)\))?: (?P<reason>.+)", re.S)
TITLES = {"children": N_("Import children"), "volunteers": N_("Import volunteers")}
EXPLAINED = ("import_refused", "one_file_expected", "bad_upload")  # the API's message says what is wrong with the file


@dataclass(frozen=True)
class Upload:
    data: bytes
    all_or_nothing: bool


class _PartsInMemory(MultiPartParser):
    spool_max_size = sys.maxsize  # never a temporary file: the app's body limit (16 MB for …/import) bounds it


async def upload(request: Request) -> Upload | None:
    """The file sent, once the form's CSRF token is checked; None when no file was chosen."""
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != "multipart/form-data":
        await form(request)  # a form without a file: its token is checked all the same
        return None
    parsed = await _PartsInMemory(request.headers, request.stream(), max_files=1, max_fields=3).parse()
    try:
        token = parsed.get("csrf")
        if not isinstance(token, str) or not hmac.compare_digest(token, session_of(request).csrf):
            raise Refused("csrf")
        file = parsed.get("file")
        if not isinstance(file, UploadFile) or not file.filename:
            return None
        return Upload(await file.read(), parsed.get("all_or_nothing") == "1")
    finally:
        await parsed.close()


def reading(error: str) -> dict[str, str | None]:
    """A row's error as the page shows it: a known code's message, else the column's label and the registry's
    reason, else the registry's words as they are (they never hold the row's values)."""
    found = ROW_ERROR.fullmatch(error)
    shown: dict[str, str | None] = dict.fromkeys(("code", "field", "item", "reason", "text"))
    if found and found["name"] in MESSAGES:
        return shown | {"code": found["name"]}
    if found and found["name"] in LABELS["field"]:
        return shown | {"field": found["name"], "item": found["item"], "reason": found["reason"]}
    return shown | {"text": error}


def render(request: Request, kind: Kind, status: int = 200, **values: Any) -> Any:
    shown = {"report": None, "rows": [], "error": None, "detail": None} | values
    pages = request.app.state.pages
    return pages.render(request, "import.html", status=status, kind=kind, title=TITLES[kind], **shown)


async def send(request: Request, caller: StaffDep, kind: Kind) -> Response:
    try:
        sent = await upload(request)
    except MultiPartException:  # its message names the problem, never the file's text
        return render(request, kind, status=400, error="bad_upload")  # type: ignore[no-any-return]
    if sent is None:
        return render(request, kind, status=422, error="no_file")  # type: ignore[no-any-return]
    try:
        report = await caller.post(
            "registry",
            f"/{kind}/import",
            files={"file": ("import.csv", sent.data, "text/csv")},  # the file's own name may well name a person
            params={"all_or_nothing": "true"} if sent.all_or_nothing else None,
        )
    except ApiFailure as failure:
        if failure.status not in (400, 413, 415, 422):
            raise
        detail = failure.message if failure.code in EXPLAINED else None
        return render(request, kind, status=failure.status, error=failure.code, detail=detail)  # type: ignore[no-any-return]
    rows = [{"line": row["line"], "problems": [reading(e) for e in row["errors"]]} for row in report["rejected"]]
    return render(request, kind, report=report, rows=rows)  # type: ignore[no-any-return]


@router.get("/children/import", response_class=HTMLResponse)
async def children_form(request: Request, caller: StaffDep) -> Any:
    return render(request, "children")


@router.post("/children/import", response_class=HTMLResponse)
async def import_children(request: Request, caller: StaffDep) -> Response:
    return await send(request, caller, "children")


@router.get("/volunteers/import", response_class=HTMLResponse)
async def volunteers_form(request: Request, caller: StaffDep) -> Any:
    return render(request, "volunteers")


@router.post("/volunteers/import", response_class=HTMLResponse)
async def import_volunteers(request: Request, caller: StaffDep) -> Response:
    return await send(request, caller, "volunteers")
