"""Volunteers: the county's list (paged on the server) with whether each may be paired and why not, registering a
volunteer, and a volunteer's page: vetting steps and trainings with their expiry, service hours, the children paired
with them now, and the forms that record each of these (post, then back to the page with a notice)."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from services.console.pages.today import soonest_expiry
from services.console.render import CHINA
from services.console.upstream import ApiFailure
from services.console.web import Caller, StaffDep, county_in_view, csrf_checked, form

router = APIRouter(dependencies=[Depends(csrf_checked)])
KINDS = ("caring_parent", "child_director", "social_worker", "association_volunteer", "enterprise_volunteer", "cadre")
STEPS = ("application", "interview", "record_check", "references")
NEEDS = ("tutoring", "psychological", "companionship", "material", "safety", "family_calls")
LANGUAGES = ("zh", "zhuang", "yao", "miao", "dong")
ELIGIBLE = ("true", "false")
SOON_DAYS = 30  # an expiry this close is marked on the page, as the day's page lists it
DONE = ("registered", "screening", "training", "hours", "capacity")
# Each form of a volunteer's page: the registry's path under /volunteers/{id}, and the fields it sends.
FORMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "screening": ("/screenings", ("step", "result", "checked_at", "expires_at")),
    "training": ("/trainings", ("course", "completed_at", "expires_at")),
    "hours": ("/service-hours", ("served_on", "hours", "campaign_id")),
    "capacity": ("", ("capacity",)),
}
# The field a refusal's code is about, per form; and codes said in the console's own words (the API's `in_future`
# reads, elsewhere, as a contact logged before it happened).
FIELD_OF = {
    "in_future": {"screening": "checked_at", "training": "completed_at", "hours": "served_on"},
    "expiry_required": {"screening": "expires_at", "training": "expires_at"},
    "expires_before_done": {"screening": "expires_at", "training": "expires_at"},
}
SAID_AS = {"in_future": "done_in_future"}
REASON = re.compile(
    r"^(?P<step>[a-z_]+): (?:(?P<plain>not done|failed|passed without an expiry date)|expired on (?P<on>.+))$"
)
REASON_CODES = {"not done": "not_done", "failed": "failed", "passed without an expiry date": "no_expiry"}
WHOLE_REASONS = {"training: none current": "no_current_training", "personal data erased": "erased"}


def reason_of(reason: str) -> dict[str, str | None]:
    """A registry's reason a volunteer may not be paired (`"record_check: expired on 2025-01-31"`) as what a page
    labels: its code in the `volunteer_reason` vocabulary, the step and the date; code None for one it does not know
    (shown as the registry wrote it)."""
    if reason in WHOLE_REASONS:
        return {"code": WHOLE_REASONS[reason], "step": None, "on": None, "text": reason}
    found = REASON.match(reason)
    if found is None or found["step"] not in STEPS:
        return {"code": None, "step": None, "on": None, "text": reason}
    code = REASON_CODES[found["plain"]] if found["plain"] else "expired"
    return {"code": code, "step": found["step"], "on": found["on"], "text": reason}


def expiry_state(expires_at: str | None, today: date) -> str | None:
    """`"expired"` (on or before today, as the registry counts it), "soon" (within SOON_DAYS), or None."""
    if not expires_at:
        return None
    expires = date.fromisoformat(expires_at[:10])
    if expires <= today:
        return "expired"
    return "soon" if expires <= today + timedelta(days=SOON_DAYS) else None


def _today() -> date:
    return datetime.now(CHINA).date()


@router.get("/volunteers", response_class=HTMLResponse)
async def volunteers(
    request: Request,
    caller: StaffDep,
    county: Annotated[str | None, Query(max_length=6)] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    eligible: Annotated[str | None, Query(max_length=5)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Any:
    """In the order they were registered; a filter value no list knows is ignored."""
    code = county_in_view(request, county)
    pages = request.app.state.pages
    if code is None:
        return pages.render(request, "choose_county.html", target="/volunteers")
    size: int = request.app.state.settings.page_size
    chosen = {"kind": kind if kind in KINDS else "", "eligible": eligible if eligible in ELIGIBLE else ""}
    found = await caller.get(
        "registry", "/volunteers", county_code=code, limit=size, offset=(page - 1) * size, **chosen
    )
    today = _today()
    rows = []
    for volunteer in found["items"]:
        soonest = soonest_expiry(volunteer)
        rows.append(
            {
                "volunteer": volunteer,
                "reasons": [reason_of(reason) for reason in volunteer["reasons"]],
                "soonest": soonest,
                "soonest_state": expiry_state(soonest[2], today) if soonest else None,
            }
        )
    shown = {"found": found, "rows": rows, "chosen": chosen, "kinds": KINDS, "page": page, "size": size}
    return pages.render(request, "volunteers.html", county=code, **shown)


@router.get("/volunteers/new", response_class=HTMLResponse)
async def new_volunteer(
    request: Request, caller: StaffDep, county: Annotated[str | None, Query(max_length=6)] = None
) -> Any:
    sent = {"county_code": county_in_view(request, county) or "", "capacity": "1", "languages": ["zh"]}
    return _register_form(request, sent, {}, None)


def _register_form(
    request: Request, sent: dict[str, Any], problems: dict[str, str], error: str | None, status: int = 200
) -> HTMLResponse:
    return request.app.state.pages.render(  # type: ignore[no-any-return]
        request,
        "volunteers_form.html",
        status=status,
        sent=sent,
        problems=problems,
        error=error,
        kinds=KINDS,
        needs=NEEDS,
        languages=LANGUAGES,
    )


@router.post("/volunteers/new", response_class=HTMLResponse)
async def register_volunteer(request: Request, caller: StaffDep) -> Response:
    sent = await form(request)
    names = ("name", "phone", "kind", "county_code", "township", "village", "capacity", "availability")
    texts = {name: value for name, value in _texts(sent, names).items() if value}
    lists = {"skills": sent.getlist("skills"), "languages": sent.getlist("languages") or ["zh"]}
    try:
        made = await caller.post("registry", "/volunteers", {**texts, **lists})
    except ApiFailure as failure:
        if failure.status not in (403, 409, 422):
            raise
        return _register_form(request, {**texts, **lists}, failure.problems, failure.code, failure.status)
    return RedirectResponse(f"/volunteers/{made['id']}?done=registered", status_code=303)


@router.get("/volunteers/{volunteer_id}", response_class=HTMLResponse)
async def volunteer(
    request: Request,
    caller: StaffDep,
    volunteer_id: uuid.UUID,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Any:
    return await _volunteer_page(request, caller, volunteer_id, done=done if done in DONE else None)


async def _paired_children(caller: Caller, volunteer_id: uuid.UUID) -> list[dict[str, Any]] | None:
    """The children of the volunteer's confirmed pairings; None while matching has not yet heard of the volunteer
    (it learns of the registry's people through the bus)."""
    try:
        children: list[dict[str, Any]] = await caller.get("matching", f"/volunteers/{volunteer_id}/children")
    except ApiFailure as failure:
        if failure.status != 404:
            raise
        return None
    return children


async def _volunteer_page(
    request: Request,
    caller: Caller,
    volunteer_id: uuid.UUID,
    *,
    done: str | None = None,
    failed: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    await caller.token()  # renewed once, before the calls that follow go out together
    record, children, campaigns = await asyncio.gather(
        caller.get("registry", f"/volunteers/{volunteer_id}"),
        _paired_children(caller, volunteer_id),
        caller.get("registry", "/campaigns", limit=100),
    )
    today = _today()
    screenings = []
    for step in STEPS:
        latest = record["screenings"].get(step)
        state = expiry_state(latest.get("expires_at"), today) if latest and latest["result"] == "passed" else None
        screenings.append({"step": step, "latest": latest, "state": state})
    trainings = [
        {**training, "state": expiry_state(training.get("expires_at"), today)}
        for training in reversed(record["trainings"])
    ]
    return request.app.state.pages.render(  # type: ignore[no-any-return]
        request,
        "volunteers_record.html",
        status=status,
        volunteer=record,
        reasons=[reason_of(reason) for reason in record["reasons"]],
        screenings=screenings,
        trainings=trainings,
        children=children,
        campaigns=[c for c in campaigns["items"] if record["county_code"] in c["counties"]],
        steps=STEPS,
        today=today.isoformat(),
        done=done,
        failed=failed,
    )


def _texts(sent: FormData, names: tuple[str, ...]) -> dict[str, str]:
    return {name: value.strip() for name in names if isinstance(value := sent.get(name, ""), str)}


async def _record(request: Request, caller: Caller, volunteer_id: uuid.UUID, action: str) -> Response:
    """One form of the volunteer's page sent on to the registry: back to the page with a notice, or the page again
    with the refusal beside the form (and what was typed kept)."""
    path, names = FORMS[action]
    sent = _texts(await form(request), names)
    body: dict[str, Any] = {name: value or None for name, value in sent.items()}
    try:
        if action == "capacity":
            await caller.call("PATCH", "registry", f"/volunteers/{volunteer_id}", json=body)
        else:
            await caller.post("registry", f"/volunteers/{volunteer_id}{path}", body)
    except ApiFailure as failure:
        if failure.status not in (409, 422):
            raise
        problems = failure.problems
        if failure.code in FIELD_OF and action in FIELD_OF[failure.code]:
            problems = {FIELD_OF[failure.code][action]: failure.code}
        failed = {"form": action, "code": SAID_AS.get(failure.code, failure.code), "problems": problems, "sent": sent}
        return await _volunteer_page(request, caller, volunteer_id, failed=failed, status=failure.status)
    return RedirectResponse(f"/volunteers/{volunteer_id}?done={action}", status_code=303)


@router.post("/volunteers/{volunteer_id}/screenings", response_class=HTMLResponse)
async def record_screening(request: Request, caller: StaffDep, volunteer_id: uuid.UUID) -> Response:
    return await _record(request, caller, volunteer_id, "screening")


@router.post("/volunteers/{volunteer_id}/trainings", response_class=HTMLResponse)
async def record_training(request: Request, caller: StaffDep, volunteer_id: uuid.UUID) -> Response:
    return await _record(request, caller, volunteer_id, "training")


@router.post("/volunteers/{volunteer_id}/service-hours", response_class=HTMLResponse)
async def record_hours(request: Request, caller: StaffDep, volunteer_id: uuid.UUID) -> Response:
    return await _record(request, caller, volunteer_id, "hours")


@router.post("/volunteers/{volunteer_id}/capacity", response_class=HTMLResponse)
async def change_capacity(request: Request, caller: StaffDep, volunteer_id: uuid.UUID) -> Response:
    return await _record(request, caller, volunteer_id, "capacity")
