"""Children: the county's list (paged on the server, no personal data), registering a child, and a child's page,
whose personal data is shown only once the reader has said why they need it (the registry audits each read)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.i18n import N_
from services.console.upstream import ApiFailure
from services.console.web import StaffDep, county_in_view, csrf_checked, form

router = APIRouter(dependencies=[Depends(csrf_checked)])
PURPOSES = {
    "home_visit": N_("Preparing a home visit"),
    "pairing": N_("Pairing the child with a volunteer"),
    "verification": N_("Checking or correcting the record"),
    "aid": N_("Handing out aid"),
    "safeguarding": N_("A safeguarding concern"),
}
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


@router.get("/children/{child_id}", response_class=HTMLResponse)
async def child(
    request: Request,
    caller: StaffDep,
    child_id: uuid.UUID,
    purpose: Annotated[str | None, Query(max_length=32)] = None,
    registered: Annotated[str | None, Query(max_length=1)] = None,
) -> Any:
    pages = request.app.state.pages
    if purpose not in PURPOSES:
        return pages.render(request, "child_purpose.html", child_id=child_id, purposes=PURPOSES, registered=registered)
    # The audit log reads in the bureau's language, whichever the reader's page is in.
    why = request.app.state.catalogues.translator("zh-CN")(PURPOSES[purpose])
    record = await caller.get("registry", f"/children/{child_id}", purpose=why)
    return pages.render(request, "child.html", child=record, purpose=purpose, purposes=PURPOSES)
