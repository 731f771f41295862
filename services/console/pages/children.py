"""Children: the county's list (paged on the server, no personal data), registering a child, and a child's page,
whose personal data is shown only once the reader has said why they need it (the registry audits each read)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.i18n import N_
from services.console.upstream import ApiFailure
from services.console.web import Caller, StaffDep, county_in_view, csrf_checked, form

router = APIRouter(dependencies=[Depends(csrf_checked)])
PURPOSES = {
    "home_visit": N_("Preparing a home visit"),
    "pairing": N_("Pairing the child with a volunteer"),
    "verification": N_("Checking or correcting the record"),
    "aid": N_("Handing out aid"),
    "safeguarding": N_("A safeguarding concern"),
}
LEAVING_REASONS = ("aged_out", "moved", "family_reunited", "adopted", "deceased", "other")
CONSENT_SCOPES = ("pairing", "home_visits", "wishes", "aid")
NEEDS = ("tutoring", "psychological", "companionship", "material", "safety", "family_calls")
FILTERS = ("category", "risk_level", "status", "paired")


@router.get("/children", response_class=HTMLResponse)
async def children(
    request: Request,
    caller: StaffDep,
    county: Annotated[str | None, Query(max_length=6)] = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
    risk_level: Annotated[str | None, Query(max_length=8)] = None,
    status: Annotated[str | None, Query(max_length=8)] = None,
    paired: Annotated[str | None, Query(max_length=5)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Any:
    code = county_in_view(request, county)
    pages = request.app.state.pages
    if code is None:
        return pages.render(request, "choose_county.html", target="/children")
    size = request.app.state.settings.page_size
    chosen = {"category": category, "risk_level": risk_level, "status": status, "paired": paired}
    try:
        found = await caller.get(
            "matching", "/views/candidates/children", county_code=code, limit=size, offset=(page - 1) * size, **chosen
        )
    except ApiFailure as failure:
        if failure.status != 422:
            raise
        found, chosen = None, dict.fromkeys(FILTERS)  # a filter value no list knows: the form, reset, says so
    return pages.render(
        request, "children.html", county=code, found=found, chosen=chosen, page=page, size=size, invalid=found is None
    )


@router.get("/children/new", response_class=HTMLResponse)
async def new_child(
    request: Request, caller: StaffDep, county: Annotated[str | None, Query(max_length=6)] = None
) -> Any:
    code = county_in_view(request, county) or ""
    return request.app.state.pages.render(
        request,
        "child_form.html",
        sent={"county_code": code, "languages": ["zh"]},
        problems={},
        error=None,
        needs=NEEDS,
    )


@router.post("/children/new", response_class=HTMLResponse)
async def register_child(request: Request, caller: StaffDep) -> Response:
    sent = await form(request)
    child = {key: value.strip() for key, value in sent.items() if isinstance(value, str) and key != "csrf"}
    child = {key: value for key, value in child.items() if value}
    lists = {name: sent.getlist(name) for name in ("needs", "languages", "flags")}
    lists["languages"] = lists["languages"] or ["zh"]
    body: dict[str, Any] = {**child, **lists}
    try:
        made = await caller.post("registry", "/children", body)
    except ApiFailure as failure:
        if failure.status not in (403, 409, 422):
            raise
        shown = {**child, **lists}
        return request.app.state.pages.render(  # type: ignore[no-any-return]
            request,
            "child_form.html",
            status=failure.status,
            sent=shown,
            problems=failure.problems,
            error=failure.code,
            needs=NEEDS,
        )
    return RedirectResponse(f"/children/{made['id']}?registered=1", status_code=303)


def _why(request: Request, purpose: str) -> str:
    """The purpose as the registry's audit log records it: in the bureau's language, whatever the page's."""
    translated: str = request.app.state.catalogues.translator("zh-CN")(PURPOSES[purpose])
    return translated


@router.get("/children/{child_id}", response_class=HTMLResponse)
async def child(
    request: Request,
    caller: StaffDep,
    child_id: uuid.UUID,
    purpose: Annotated[str | None, Query(max_length=32)] = None,
    registered: Annotated[str | None, Query(max_length=1)] = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
    refused: Annotated[str | None, Query(max_length=40)] = None,
) -> Any:
    pages = request.app.state.pages
    if purpose not in PURPOSES:
        return pages.render(request, "child_purpose.html", child_id=child_id, purposes=PURPOSES, registered=registered)
    record = await caller.get("registry", f"/children/{child_id}", purpose=_why(request, purpose))
    return pages.render(
        request,
        "child.html",
        child=record,
        purpose=purpose,
        purposes=PURPOSES,
        done=done,
        refused=refused,
        leaving_reasons=LEAVING_REASONS,
        scopes=CONSENT_SCOPES,
    )


@router.get("/children/{child_id}/history", response_class=HTMLResponse)
async def history(
    request: Request, caller: StaffDep, child_id: uuid.UUID, purpose: Annotated[str, Query(max_length=32)]
) -> Any:
    if purpose not in PURPOSES:
        return RedirectResponse(f"/children/{child_id}", status_code=303)
    found = await caller.get("registry", f"/children/{child_id}/history", purpose=_why(request, purpose))
    rows = [history_row(entry) for entry in found["events"]]
    return request.app.state.pages.render(request, "child_history.html", history=found, rows=rows, purpose=purpose)


# What each kind of event of a child's record shows on the history page: its fields as (vocabulary, field) to label,
# and the personal part (a reason, who consented) as written.
SHOWN: dict[str, list[tuple[str, str]]] = {
    "registered": [("category", "category"), ("risk_level", "risk_level"), ("need", "needs")],
    "risk_changed": [("risk_level", "previous_risk_level"), ("risk_level", "risk_level")],
    "needs_changed": [("need", "needs")],
    "guardianship_changed": [("guardianship", "guardianship")],
    "left_programme": [("leaving_reason", "reason")],
    "consent_recorded": [("consent_scope", "scope")],
    "purposes_changed": [("consent_scope", "purposes")],
}
PERSONAL_SHOWN = ("risk_reason", "given_by", "relation", "given_at")


def history_row(entry: dict[str, Any]) -> dict[str, Any]:
    """An event of the child's record as a row: what happened (`registry.child.risk_changed.v1` → `risk_changed`),
    when, and the values worth reading, each with the vocabulary that labels it."""
    what = entry["type"].split(".")[2]
    shown: list[tuple[str | None, str]] = []
    for kind, field in SHOWN.get(what, []):
        value = entry["fields"].get(field)
        shown += [(kind, str(item)) for item in (value if isinstance(value, list) else [value]) if item is not None]
    personal = entry.get("personal") or {}
    shown += [(None, str(personal[key])) for key in PERSONAL_SHOWN if personal.get(key)]
    return {
        "version": entry["version"],
        "at": entry["at"],
        "what": what,
        "shown": shown,
        "erased": entry["personal_erased"],
    }


async def _act(request: Request, caller: Caller, child_id: uuid.UUID, action: str) -> Response:
    """One change of a child's record from its page: done, or refused with the API's reason; back to the page."""
    sent = await form(request)
    purpose = str(sent.get("purpose", ""))
    if purpose not in PURPOSES:
        return RedirectResponse(f"/children/{child_id}", status_code=303)
    path, why = f"/children/{child_id}", _why(request, purpose)
    try:
        if action == "risk":
            change = {"risk_level": sent.get("risk_level"), "risk_reason": str(sent.get("risk_reason", "")).strip()}
            headers = {"If-Match": f'"{sent.get("version", "")}"'} if sent.get("version") else {}
            await caller.call("PATCH", "registry", path, params={"purpose": why}, json=change, headers=headers)
        elif action == "consent":
            consent: dict[str, Any] = {key: sent.get(key) for key in ("given_by", "relation", "given_at")}
            consent["scope"] = sent.getlist("scope")
            await caller.call("POST", "registry", f"{path}/consent", params={"purpose": why}, json=consent)
        elif action == "withdraw":
            await caller.call("DELETE", "registry", f"{path}/consent", params={"purpose": why})
        elif action == "leave":
            await caller.call(
                "POST", "registry", f"{path}/leave", params={"purpose": why}, json={"reason": sent.get("reason")}
            )
        elif action == "erase":
            if sent.get("confirm") != "erase":
                return RedirectResponse(f"{path}?purpose={purpose}&refused=not_confirmed", status_code=303)
            await caller.call("DELETE", "registry", f"{path}/personal-data", params={"purpose": why})
    except ApiFailure as failure:
        if failure.status not in (403, 404, 409, 410, 422):
            raise
        return RedirectResponse(f"{path}?purpose={purpose}&refused={failure.code}", status_code=303)
    return RedirectResponse(f"{path}?purpose={purpose}&done={action}", status_code=303)


@router.post("/children/{child_id}/risk")
async def change_risk(request: Request, caller: StaffDep, child_id: uuid.UUID) -> Response:
    return await _act(request, caller, child_id, "risk")


@router.post("/children/{child_id}/consent")
async def record_consent(request: Request, caller: StaffDep, child_id: uuid.UUID) -> Response:
    return await _act(request, caller, child_id, "consent")


@router.post("/children/{child_id}/consent/withdraw")
async def withdraw_consent(request: Request, caller: StaffDep, child_id: uuid.UUID) -> Response:
    return await _act(request, caller, child_id, "withdraw")


@router.post("/children/{child_id}/leave")
async def leave(request: Request, caller: StaffDep, child_id: uuid.UUID) -> Response:
    return await _act(request, caller, child_id, "leave")


@router.post("/children/{child_id}/erase")
async def erase(request: Request, caller: StaffDep, child_id: uuid.UUID) -> Response:
    return await _act(request, caller, child_id, "erase")
