"""Matching: running it for a county, the proposals waiting with their scores, confirming or declining each, and the
county's pairings with a page per pairing where it is closed with a reason.

A run's answer is rendered where it is made (the POST answers 200, not a redirect): the reasons children were left
unpaired exist only in that answer, which no GET can read back. Sending the form again runs matching again, which is
harmless: a child proposed or paired already is not proposed twice (it is listed as such). Confirming, declining and
closing redirect (303) to a page that reads the result back."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from services.console.upstream import ApiFailure
from services.console.web import Caller, StaffDep, county_in_view, csrf_checked, form

router = APIRouter(dependencies=[Depends(csrf_checked)])
STATUSES = ("proposed", "confirmed", "suspended", "declined", "lapsed", "withdrawn", "closed")
DECLINED_BY = ("coordinator", "volunteer", "child", "guardian")
DECLINE_REASONS = (
    "not_suitable",
    "distance",
    "language",
    "availability",
    "child_preference",
    "guardian_preference",
    "other",
)
CLOSURE_REASONS = (
    "goals_met",
    "child_moved",
    "volunteer_moved",
    "volunteer_withdrew",
    "child_or_guardian_withdrew",
    "child_left_programme",
    "volunteer_ineligible",
    "safeguarding_concern",
    "other",
)
# The vocabulary a pairing's `reason` comes from, by the status it left the pairing in.
REASON_KINDS = {
    "declined": "decline_reason",
    "closed": "closure_reason",
    "suspended": "suspension_reason",
    "withdrawn": "withdrawal_reason",
}
CHOICES = {
    "declined_by": DECLINED_BY,
    "decline_reasons": DECLINE_REASONS,
    "closure_reasons": CLOSURE_REASONS,
    "reason_kinds": REASON_KINDS,
}


def _size(request: Request) -> int:
    size: int = request.app.state.settings.page_size
    return size


async def _matching_page(
    request: Request, caller: Caller, code: str, page: int = 1, *, status: int = 200, **values: Any
) -> HTMLResponse:
    size = _size(request)
    waiting = await caller.get(
        "matching", "/views/pairings", county_code=code, status="proposed", limit=size, offset=(page - 1) * size
    )
    values = {"error": None, "done": None, "pairing": None, "run": None} | values
    return request.app.state.pages.render(  # type: ignore[no-any-return]
        request, "matching.html", status=status, county=code, found=waiting, page=page, size=size, **CHOICES, **values
    )


@router.get("/matching", response_class=HTMLResponse)
async def matching(
    request: Request,
    caller: StaffDep,
    county: Annotated[str | None, Query(max_length=6)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    done: Annotated[str | None, Query(max_length=12)] = None,
    pairing: Annotated[uuid.UUID | None, Query()] = None,
) -> Any:
    code = county_in_view(request, county)
    if code is None:
        return request.app.state.pages.render(request, "choose_county.html", target="/matching")
    shown = done if done in ("confirmed", "declined") else None
    return await _matching_page(request, caller, code, page, done=shown, pairing=pairing if shown else None)


@router.post("/matching", response_class=HTMLResponse)
async def run_matching(request: Request, caller: StaffDep) -> Response:
    sent = await form(request)
    code = county_in_view(request, _text(sent, "county"))
    if code is None:
        return request.app.state.pages.render(request, "choose_county.html", target="/matching")  # type: ignore[no-any-return]
    try:
        run = await caller.post("matching", "/matching-runs", {"county_code": code})
    except ApiFailure as failure:
        if failure.status not in (409, 422, 503):
            raise
        return await _matching_page(request, caller, code, status=failure.status, error=failure.code)
    return await _matching_page(request, caller, code, run=run)


@router.post("/pairings/{pairing_id}/confirm", response_class=HTMLResponse)
async def confirm(request: Request, caller: StaffDep, pairing_id: uuid.UUID) -> Response:
    sent = await form(request)
    return await _change(request, caller, pairing_id, "confirm", None, _text(sent, "back"))


@router.post("/pairings/{pairing_id}/decline", response_class=HTMLResponse)
async def decline(request: Request, caller: StaffDep, pairing_id: uuid.UUID) -> Response:
    sent = await form(request)
    body = {"declined_by": _text(sent, "declined_by"), "reason": _text(sent, "reason")}
    return await _change(request, caller, pairing_id, "decline", body, _text(sent, "back"))


@router.post("/pairings/{pairing_id}/close", response_class=HTMLResponse)
async def close(request: Request, caller: StaffDep, pairing_id: uuid.UUID) -> Response:
    sent = await form(request)
    return await _change(request, caller, pairing_id, "close", {"reason": _text(sent, "reason")}, "pairing")


async def _change(
    request: Request, caller: Caller, pairing_id: uuid.UUID, action: str, body: Any, back: str
) -> Response:
    """Ask the API to change the pairing; show the result where the form came from (the proposals waiting, or the
    pairing's page), or a refusal on the pairing's page, which says what the pairing is now."""
    try:
        changed = await caller.post("matching", f"/pairings/{pairing_id}/{action}", body)
    except ApiFailure as failure:
        if failure.status not in (409, 422, 503):
            raise
        return await _pairing_page(request, caller, pairing_id, status=failure.status, error=failure.code)
    done = {"confirm": "confirmed", "decline": "declined", "close": "closed"}[action]
    if back == "matching":
        query = urlencode({"county": changed["county_code"], "done": done, "pairing": str(pairing_id)})
        return RedirectResponse(f"/matching?{query}", status_code=303)
    return RedirectResponse(f"/pairings/{pairing_id}?done={done}", status_code=303)


@router.get("/pairings", response_class=HTMLResponse)
async def pairings(
    request: Request,
    caller: StaffDep,
    county: Annotated[str | None, Query(max_length=6)] = None,
    status: Annotated[str | None, Query(max_length=12)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Any:
    code = county_in_view(request, county)
    pages = request.app.state.pages
    if code is None:
        return pages.render(request, "choose_county.html", target="/pairings")
    chosen = status if status in STATUSES else ""
    size = _size(request)
    found = await caller.get(
        "matching", "/views/pairings", county_code=code, status=chosen, limit=size, offset=(page - 1) * size
    )
    return pages.render(
        request,
        "pairings.html",
        county=code,
        found=found,
        chosen=chosen,
        statuses=STATUSES,
        page=page,
        size=size,
        reason_kinds=REASON_KINDS,
    )


@router.get("/pairings/{pairing_id}", response_class=HTMLResponse)
async def pairing(
    request: Request, caller: StaffDep, pairing_id: uuid.UUID, done: Annotated[str | None, Query(max_length=12)] = None
) -> Any:
    shown = done if done in ("confirmed", "declined", "closed") else None
    return await _pairing_page(request, caller, pairing_id, done=shown)


async def _pairing_page(
    request: Request,
    caller: Caller,
    pairing_id: uuid.UUID,
    *,
    status: int = 200,
    error: str | None = None,
    done: str | None = None,
) -> HTMLResponse:
    record = await caller.get("matching", f"/pairings/{pairing_id}")
    return request.app.state.pages.render(  # type: ignore[no-any-return]
        request, "pairing.html", status=status, pairing=record, error=error, done=done, **CHOICES
    )


def _text(sent: FormData, name: str) -> str:
    value = sent.get(name, "")
    return value.strip() if isinstance(value, str) else ""
