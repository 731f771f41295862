"""Visits: the county's children by when their next in-person contact is due (overdue, escalated), logging a contact
with a child, and the county's visit policy (days between visits per risk level)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from services.console.render import CHINA
from services.console.upstream import ApiFailure
from services.console.web import Caller, Refused, StaffDep, county_in_view, csrf_checked, form

router = APIRouter(dependencies=[Depends(csrf_checked)])
RISKS = ("high", "medium", "low")
OVERDUE = {"1": True, "0": False}
KINDS = ("visit", "call", "video_call", "family_call", "tutoring", "counselling", "birthday", "gift")
VISITORS = ("coordinator", "child_director", "cadre", "social_worker")  # who logs outside a pairing (Official)
POLICY = ("high_days", "medium_days", "low_days")
FIELD_OF = {"in_future": "occurred_at", "invalid_policy": ""}  # the field an error code is about


def _page(request: Request, page: int) -> dict[str, int]:
    size: int = request.app.state.settings.page_size
    return {"limit": size, "offset": (page - 1) * size}


@router.get("/visits", response_class=HTMLResponse)
async def visits(
    request: Request,
    caller: StaffDep,
    county: Annotated[str | None, Query(max_length=6)] = None,
    overdue: Annotated[str | None, Query(max_length=1)] = None,
    risk_level: Annotated[str | None, Query(max_length=8)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Any:
    """The API's order (next due first); the filters choose overdue and risk (a value no list knows is ignored)."""
    code = county_in_view(request, county)
    pages = request.app.state.pages
    if code is None:
        return pages.render(request, "choose_county.html", target="/visits")
    chosen = {"overdue": overdue if overdue in OVERDUE else "", "risk_level": risk_level if risk_level in RISKS else ""}
    found = await caller.get(
        "matching",
        "/views/engagement",
        county_code=code,
        overdue=OVERDUE.get(chosen["overdue"]),
        risk_level=chosen["risk_level"],
        **_page(request, page),
    )
    size = request.app.state.settings.page_size
    return pages.render(request, "visits.html", county=code, found=found, chosen=chosen, page=page, size=size)


@router.get("/children/{child_id}/contacts", response_class=HTMLResponse)
async def contacts(
    request: Request,
    caller: StaffDep,
    child_id: uuid.UUID,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    logged: Annotated[str | None, Query(max_length=1)] = None,
) -> Any:
    now = datetime.now(CHINA).strftime("%Y-%m-%dT%H:%M")
    sent = {"visitor": "coordinator", "kind": "visit", "in_person": "yes", "occurred_at": now, "duration_minutes": ""}
    return await _contacts_page(request, caller, child_id, page, sent=sent, logged=bool(logged))


@router.post("/children/{child_id}/contacts", response_class=HTMLResponse)
async def log_contact(request: Request, caller: StaffDep, child_id: uuid.UUID) -> Response:
    sent = _texts(await form(request), ("visitor", "kind", "in_person", "occurred_at", "duration_minutes", "note"))
    body, problems = _contact(sent)
    if not problems:
        try:
            await caller.post("matching", f"/children/{child_id}/contacts", body)
        except ApiFailure as failure:
            if failure.status not in (409, 422):
                raise
            problems = failure.problems or {FIELD_OF.get(failure.code, ""): failure.code}
            return await _contacts_page(
                request, caller, child_id, 1, sent=sent, problems=problems, error=failure.code, status=failure.status
            )
        return RedirectResponse(f"/children/{child_id}/contacts?logged=1", status_code=303)
    return await _contacts_page(request, caller, child_id, 1, sent=sent, problems=problems, error="invalid", status=422)


async def _contacts_page(
    request: Request,
    caller: Caller,
    child_id: uuid.UUID,
    page: int,
    *,
    sent: dict[str, str],
    problems: dict[str, str] | None = None,
    error: str | None = None,
    logged: bool = False,
    status: int = 200,
) -> HTMLResponse:
    found = await caller.get("matching", f"/children/{child_id}/contacts", **_page(request, page))
    return request.app.state.pages.render(  # type: ignore[no-any-return]
        request,
        "contacts.html",
        status=status,
        child_id=str(child_id),
        found=found,
        page=page,
        size=request.app.state.settings.page_size,
        sent=sent,
        problems=problems or {},
        error=error,
        logged=logged,
        kinds=KINDS,
        visitors=VISITORS,
    )


def _texts(sent: FormData, names: tuple[str, ...]) -> dict[str, str]:
    return {name: value.strip() for name in names if isinstance(value := sent.get(name, ""), str)}


def _contact(sent: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The API's contact from the form; a time without a zone is China's (the programme's clock). What the console
    can tell is wrong it says itself, the rest the API says."""
    problems: dict[str, str] = {}
    try:
        moment = datetime.fromisoformat(sent.get("occurred_at", ""))
        occurred_at = (moment if moment.tzinfo else moment.replace(tzinfo=CHINA)).isoformat()
    except ValueError:
        problems["occurred_at"], occurred_at = "invalid", ""
    duration = sent.get("duration_minutes", "")
    if not duration.isascii() or not duration.isdigit():
        problems["duration_minutes"] = "invalid"
    if sent.get("in_person") not in ("yes", "no"):
        problems["in_person"] = "invalid"
    body = {
        "visitor": sent.get("visitor", ""),
        "kind": sent.get("kind", ""),
        "in_person": sent.get("in_person") == "yes",
        "occurred_at": occurred_at,
        "duration_minutes": int(duration) if "duration_minutes" not in problems else 0,
        "note": sent.get("note") or None,
    }
    return body, problems


@router.get("/visits/policy", response_class=HTMLResponse)
async def policy(
    request: Request,
    caller: StaffDep,
    county: Annotated[str | None, Query(max_length=6)] = None,
    replanned: Annotated[int | None, Query(ge=0)] = None,
) -> Any:
    code = county_in_view(request, county)
    pages = request.app.state.pages
    if code is None:
        return pages.render(request, "choose_county.html", target="/visits/policy")
    current = await caller.get("matching", f"/visit-policies/{code}")
    sent = {name: str(current[name]) for name in POLICY}
    return pages.render(
        request, "visit_policy.html", county=code, sent=sent, problems={}, error=None, replanned=replanned
    )


@router.post("/visits/policy", response_class=HTMLResponse)
async def change_policy(request: Request, caller: StaffDep) -> Response:
    sent = _texts(await form(request), ("county", *POLICY))
    code = county_in_view(request, sent.get("county")) or ""
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        raise Refused("forbidden")  # the form names the county it was shown for: only a tampered one has none
    problems = {name: "invalid" for name in POLICY if not (sent.get(name, "").isascii() and sent[name].isdigit())}
    error, status = "invalid", 422
    if not problems:
        try:
            changed = await caller.call(
                "PUT", "matching", f"/visit-policies/{code}", json={name: int(sent[name]) for name in POLICY}
            )
        except ApiFailure as failure:
            if failure.status != 422:
                raise
            problems = failure.problems or {FIELD_OF.get(failure.code, ""): failure.code}
            error, status = failure.code, failure.status
        else:
            return RedirectResponse(f"/visits/policy?county={code}&replanned={changed['replanned']}", status_code=303)
    return request.app.state.pages.render(  # type: ignore[no-any-return]
        request,
        "visit_policy.html",
        status=status,
        county=code,
        sent=sent,
        problems=problems,
        error=error,
        replanned=None,
    )
