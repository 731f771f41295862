"""Administration, for admins only: accounts (created with an invitation link shown once, changed, disabled, invited
again, given a password reset link or a new client secret), campaigns, and the Guangxi counties as a reference."""

from __future__ import annotations

import re
import uuid
from itertools import groupby
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from contracts.campaigns import AidKind
from contracts.counties import COUNTIES
from services.console.upstream import ApiFailure
from services.console.web import Caller, Refused, caller_of, csrf_checked, form

router = APIRouter(dependencies=[Depends(csrf_checked)])
ROLES = ("admin", "coordinator", "child_director", "volunteer", "donor", "service")
COUNTY_ROLES = ("coordinator", "child_director")  # the roles given counties (at least one) on their account
STATES = ("invited", "active", "disabled")
KINDS: tuple[str, ...] = get_args(AidKind)
ACCOUNT_FIELDS = ("login", "name", "role", "counties", "person_id")
CAMPAIGN_FIELDS = ("name", "starts_on", "ends_on", "counties")
# The form's field an account refusal is about, to mark it beside its input.
FIELD_OF = {
    "invalid_login": "login",
    "mobile_login_required": "login",
    "login_taken": "login",
    "counties_required": "counties",
    "counties_not_allowed": "counties",
    "person_required": "person_id",
    "person_not_allowed": "person_id",
    "person_not_found": "person_id",
    "person_has_account": "person_id",
    "person_erased": "person_id",
}
HANDOVERS = {"invitation": "invitation", "password-reset": "reset", "client-secret": "client_secret"}
SEPARATORS = re.compile(r"[\s,，、;；]+")


async def admin(request: Request) -> Caller:
    """A page for admins only: anyone else signed in gets the console's 403 page."""
    caller = caller_of(request)
    if caller.session.role != "admin":
        raise Refused("forbidden")
    return caller


AdminDep = Annotated[Caller, Depends(admin)]


def _page(request: Request, page: int) -> dict[str, int]:
    size: int = request.app.state.settings.page_size
    return {"limit": size, "offset": (page - 1) * size}


def _texts(sent: FormData, names: tuple[str, ...]) -> dict[str, str]:
    return {name: value.strip() for name in names if isinstance(value := sent.get(name, ""), str)}


def county_codes(text: str) -> list[str]:
    """County codes as typed: separated by spaces, commas or 、, each once."""
    return list(dict.fromkeys(code for code in SEPARATORS.split(text) if code))


def problems_of(failure: ApiFailure, fields: tuple[str, ...], whole: str) -> dict[str, str]:
    """Each field of the form the API found wrong (`body.counties.0` is the counties'); a rule about the request as
    a whole is marked at `whole`, and a refusal about one field (a login taken) at that field."""
    found: dict[str, str] = {}
    for problem in failure.details.get("problems", []):
        path = str(problem.get("field", "")).split(".") if isinstance(problem, dict) else []
        name = next((part for part in path if part in fields), None)
        name = name or ("goals" if "goals" in path else whole)
        found.setdefault(name, str(problem.get("problem", "")))
    if failure.code in FIELD_OF:
        found.setdefault(FIELD_OF[failure.code], failure.code)
    return found


@router.get("/admin", include_in_schema=False)
async def admin_home(caller: AdminDep) -> Response:
    return RedirectResponse("/admin/accounts", status_code=303)


@router.get("/admin/accounts", response_class=HTMLResponse)
async def accounts(
    request: Request,
    caller: AdminDep,
    role: Annotated[str | None, Query(max_length=16)] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    done: Annotated[str | None, Query(max_length=16)] = None,
    refused: Annotated[str | None, Query(max_length=40)] = None,
    field: Annotated[str | None, Query(max_length=16)] = None,
) -> Any:
    chosen = {"role": role if role in ROLES else "", "state": state if state in STATES else ""}
    found = await caller.get("registry", "/accounts", **chosen, **_page(request, page))
    return request.app.state.pages.render(
        request,
        "admin_accounts.html",
        found=found,
        chosen=chosen,
        roles=ROLES,
        states=STATES,
        page=page,
        size=request.app.state.settings.page_size,
        done=done,
        refused=refused,
        field=field if field in ACCOUNT_FIELDS else None,
    )


@router.get("/admin/accounts/new", response_class=HTMLResponse)
async def new_account(request: Request, caller: AdminDep) -> Any:
    return _account_form(request, {"role": "coordinator"}, {}, None, 200)


def _account_form(
    request: Request, sent: dict[str, str], problems: dict[str, str], error: str | None, status: int
) -> HTMLResponse:
    return request.app.state.pages.render(  # type: ignore[no-any-return]
        request, "admin_account_form.html", status=status, sent=sent, problems=problems, error=error, roles=ROLES
    )


@router.post("/admin/accounts/new", response_class=HTMLResponse)
async def create_account(request: Request, caller: AdminDep) -> Response:
    """The account, invited; its invitation link (or a service's client secret) is on the answer, shown this once:
    never in an address, which a browser keeps in its history."""
    sent = _texts(await form(request), ACCOUNT_FIELDS)
    problems: dict[str, str] = {}
    person_id = None
    if sent.get("person_id"):
        try:
            person_id = str(uuid.UUID(sent["person_id"]))
        except ValueError:
            problems["person_id"] = "invalid"
    if problems:
        return _account_form(request, sent, problems, "invalid", 422)
    body = {
        "login": sent.get("login", ""),
        "name": sent.get("name", ""),
        "role": sent.get("role", ""),
        "counties": county_codes(sent.get("counties", "")),
        "person_id": person_id,
    }
    try:
        made = await caller.post("registry", "/accounts", body)
    except ApiFailure as failure:
        if failure.status not in (409, 422):
            raise
        problems = problems_of(failure, ACCOUNT_FIELDS, "")
        return _account_form(request, sent, problems, failure.code, failure.status)
    return _handover(request, made["handover"], made["account"]["login"], created=made["account"])


def _handover(
    request: Request, handover: dict[str, Any], login: str, created: dict[str, Any] | None = None
) -> HTMLResponse:
    link = str(request.base_url).rstrip("/") + handover["path"] if handover.get("path") else None
    return request.app.state.pages.render(  # type: ignore[no-any-return]
        request, "admin_handover.html", handover=handover, link=link, login=login, created=created
    )


@router.post("/admin/accounts/{account_id}/change")
async def change_account(request: Request, caller: AdminDep, account_id: uuid.UUID) -> Response:
    """A new role, counties or display name (matching ends the account's sessions when role or counties change)."""
    sent = _texts(await form(request), ("role", "counties", "name"))
    change: dict[str, Any] = {name: sent[name] for name in ("role", "name") if sent.get(name)}
    codes = county_codes(sent.get("counties", ""))
    if codes or change.get("role") in COUNTY_ROLES:  # none sent: a volunteer keeps their own, others have none
        change["counties"] = codes
    try:
        await caller.call("PATCH", "registry", f"/accounts/{account_id}", json=change)
    except ApiFailure as failure:
        return _refused(failure)
    return RedirectResponse("/admin/accounts?done=changed", status_code=303)


@router.post("/admin/accounts/{account_id}/disable")
async def disable_account(request: Request, caller: AdminDep, account_id: uuid.UUID) -> Response:
    await form(request)
    try:
        await caller.post("registry", f"/accounts/{account_id}/disable")
    except ApiFailure as failure:
        return _refused(failure)
    return RedirectResponse("/admin/accounts?done=disabled", status_code=303)


def _refused(failure: ApiFailure) -> Response:
    """Back to the accounts, saying why the API refused (and which field, for a value it found wrong)."""
    if failure.status not in (404, 409, 422):
        raise failure
    problems = problems_of(failure, ("role", "counties", "name"), "")
    field = next((name for name in problems if name), "")
    return RedirectResponse(f"/admin/accounts?refused={failure.code}&field={field}", status_code=303)


@router.post("/admin/accounts/{account_id}/{handover}", response_class=HTMLResponse)
async def hand_over(request: Request, caller: AdminDep, account_id: uuid.UUID, handover: str) -> Response:
    """A new invitation link, a password reset link or a service's new client secret, shown this once."""
    if handover not in HANDOVERS:
        return request.app.state.pages.render(request, "error.html", status=404, code="not_found")  # type: ignore[no-any-return]
    sent = await form(request)
    try:
        made = await caller.post("registry", f"/accounts/{account_id}/{handover}")
    except ApiFailure as failure:
        return _refused(failure)
    login = str(sent.get("login", ""))[:64]  # the row's login, for the heading: the API's answer names no account
    return _handover(request, made, login)


@router.get("/admin/campaigns", response_class=HTMLResponse)
async def campaigns(
    request: Request,
    caller: AdminDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    created: Annotated[str | None, Query(max_length=36)] = None,
) -> Any:
    return await _campaigns_page(request, caller, page, sent={}, problems={}, error=None, created=created)


async def _campaigns_page(
    request: Request,
    caller: Caller,
    page: int,
    *,
    sent: dict[str, str],
    problems: dict[str, str],
    error: str | None,
    created: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    found = await caller.get("registry", "/campaigns", **_page(request, page))
    return request.app.state.pages.render(  # type: ignore[no-any-return]
        request,
        "admin_campaigns.html",
        status=status,
        found=found,
        page=page,
        size=request.app.state.settings.page_size,
        kinds=KINDS,
        sent=sent,
        problems=problems,
        error=error,
        created=created,
    )


@router.post("/admin/campaigns", response_class=HTMLResponse)
async def create_campaign(request: Request, caller: AdminDep) -> Response:
    sent = _texts(await form(request), (*CAMPAIGN_FIELDS, *(f"goal_{kind}" for kind in KINDS)))
    problems: dict[str, str] = {}
    goals: dict[str, int] = {}
    for kind in KINDS:
        goal = sent.get(f"goal_{kind}", "")
        if goal and not (goal.isascii() and goal.isdigit()):
            problems["goals"] = "invalid"
        elif goal:
            goals[kind] = int(goal)
    if problems:
        return await _campaigns_page(request, caller, 1, sent=sent, problems=problems, error="invalid", status=422)
    body = {
        "name": sent.get("name", ""),
        "starts_on": sent.get("starts_on", ""),
        "ends_on": sent.get("ends_on", ""),
        "counties": county_codes(sent.get("counties", "")),
        "goals": goals,
    }
    try:
        made = await caller.post("registry", "/campaigns", body)
    except ApiFailure as failure:
        if failure.status != 422:
            raise
        # The one rule about the campaign as a whole: it ends on or after the day it starts.
        problems = problems_of(failure, CAMPAIGN_FIELDS, "ends_on")
        return await _campaigns_page(
            request, caller, 1, sent=sent, problems=problems, error=failure.code, status=failure.status
        )
    return RedirectResponse(f"/admin/campaigns?created={made['id']}", status_code=303)


@router.get("/admin/counties", response_class=HTMLResponse)
async def counties(request: Request, caller: AdminDep) -> Any:
    """The Guangxi counties the programme knows (GB/T 2260), by city, each with a link to its figures."""
    ordered = sorted(COUNTIES.values(), key=lambda county: county.code)
    cities = [(code, list(members)) for code, members in groupby(ordered, key=lambda county: county.prefecture_code)]
    return request.app.state.pages.render(request, "admin_counties.html", cities=cities, total=len(ordered))
