"""Micro-wishes (微心愿) and the figures a foundation sees: the board and a donor's own wishes, which never name a
child (no id, name or village: only "girl, 9-11", the county and the item), the campaign's figures with small counts
hidden as the API hides them, and a child's wishes as a coordinator posts, fulfils and acknowledges them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from contracts.counties import COUNTIES
from services.console.upstream import ApiFailure
from services.console.web import CallerDep, StaffDep, county_in_view, csrf_checked, form

router = APIRouter(dependencies=[Depends(csrf_checked)])
REGION = "45"  # Guangxi: the area a donor's figures start from
CATEGORIES = ("study", "clothing", "daily_use", "toy", "book", "sports", "other")
# All of a wish a donor's page is given: what the API adds later reaches a donor only once it is named here.
SHOWN_TO_DONORS = ("id", "item", "category", "estimated_value_yuan", "county_code", "campaign_id", "status")


def for_donors(wish: dict[str, Any]) -> dict[str, Any]:
    """A wish as a donor's page shows it; the API's `child` ("girl, 9-11") split into who and age band."""
    who, _, band = str(wish.get("child", "")).partition(", ")
    return {key: wish.get(key) for key in SHOWN_TO_DONORS} | {
        "who": who or "child",
        "age_band": band,
        "claim_deadline": wish.get("claim_deadline"),
    }


async def campaign_names(caller: CallerDep) -> dict[str, str]:
    campaigns = await caller.get("registry", "/campaigns", limit=100)
    return {campaign["id"]: campaign["name"] for campaign in campaigns["items"]}


async def board_page(
    request: Request, caller: CallerDep, county: str | None, page: int, error: str | None = None
) -> Any:
    size = request.app.state.settings.page_size
    await caller.token()
    found, campaigns = await asyncio.gather(
        caller.get("matching", "/wishes", status="posted", county_code=county, limit=size, offset=(page - 1) * size),
        campaign_names(caller),
    )
    return request.app.state.pages.render(
        request,
        "board.html",
        status=409 if error else 200,
        found=found,
        wishes=[for_donors(wish) for wish in found["items"]],
        campaigns=campaigns,
        counties=sorted(COUNTIES),
        county=county or "",
        page=page,
        size=size,
        error=error,
    )


@router.get("/board", response_class=HTMLResponse)
async def board(
    request: Request,
    caller: CallerDep,
    county: Annotated[str | None, Query(max_length=6)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Any:
    return await board_page(request, caller, county if county in COUNTIES else None, page)


@router.post("/wishes/{wish_id}/claim")
async def claim(request: Request, caller: CallerDep, wish_id: uuid.UUID) -> Response:
    try:
        await caller.post("matching", f"/wishes/{wish_id}/claim")
    except ApiFailure as failure:
        if failure.status not in (404, 409):
            raise
        return await board_page(request, caller, None, 1, error=failure.code)  # type: ignore[no-any-return]
    return RedirectResponse("/wishes/mine", status_code=303)


@router.get("/wishes/mine", response_class=HTMLResponse)
async def my_wishes(request: Request, caller: CallerDep, page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Any:
    size = request.app.state.settings.page_size
    await caller.token()
    found, campaigns = await asyncio.gather(
        caller.get("matching", "/wishes/mine", limit=size, offset=(page - 1) * size), campaign_names(caller)
    )
    wishes = [for_donors(wish) for wish in found["items"]]
    return request.app.state.pages.render(
        request, "wishes_mine.html", found=found, wishes=wishes, campaigns=campaigns, page=page, size=size
    )


@router.post("/wishes/{wish_id}/release")
async def release(request: Request, caller: CallerDep, wish_id: uuid.UUID) -> Response:
    await caller.post("matching", f"/wishes/{wish_id}/release")
    return RedirectResponse("/wishes/mine", status_code=303)


@router.get("/figures/campaign", response_class=HTMLResponse)
async def campaign_figures(
    request: Request,
    caller: CallerDep,
    campaign: Annotated[str | None, Query(max_length=36)] = None,
    area: Annotated[str | None, Query(max_length=6)] = None,
) -> Any:
    """The figures of an area (Guangxi, or one of the campaign's counties) under a campaign, as the API gives them:
    to a donor, counts under 5 as "<5" and the cells that would give them away as "x"."""
    campaigns = (await caller.get("registry", "/campaigns", limit=100))["items"]
    chosen = next((c for c in campaigns if c["id"] == campaign), None)
    if campaign is None and campaigns:
        chosen = campaigns[0]  # the latest
    if caller.session.role == "donor":
        areas = [REGION, *(chosen["counties"] if chosen else ())]
    else:
        areas = [REGION, *caller.session.counties]
    code = area if area else (caller.session.counties[0] if caller.session.counties else REGION)
    figures = await caller.get("matching", "/views/summary", code=code, campaign_id=chosen["id"] if chosen else None)
    return request.app.state.pages.render(
        request,
        "figures_campaign.html",
        figures=figures,
        campaigns=campaigns,
        chosen=chosen,
        areas=areas if code in areas else [*areas, code],
        area=code,
    )


@router.get("/children/{child_id}/wishes", response_class=HTMLResponse)
async def child_wishes(
    request: Request,
    caller: StaffDep,
    child_id: uuid.UUID,
    county: Annotated[str | None, Query(max_length=6)] = None,
    posted: Annotated[str | None, Query(max_length=1)] = None,
) -> Any:
    code = county_in_view(request, county)
    if code is None:
        return request.app.state.pages.render(request, "choose_county.html", target=request.url.path)
    return await child_wishes_page(request, caller, child_id, code, posted=posted == "1")


async def child_wishes_page(
    request: Request,
    caller: StaffDep,
    child_id: uuid.UUID,
    county: str,
    *,
    status: int = 200,
    sent: dict[str, Any] | None = None,
    problems: dict[str, str] | None = None,
    error: str | None = None,
    posted: bool = False,
) -> Any:
    await caller.token()
    found, campaigns, contacts = await asyncio.gather(
        caller.get("matching", "/views/wishes", county_code=county, child_id=child_id, limit=100),
        caller.get("registry", "/campaigns", limit=100),
        caller.get("matching", f"/children/{child_id}/contacts", limit=20),
    )
    return request.app.state.pages.render(
        request,
        "child_wishes.html",
        status=status,
        child_id=child_id,
        county=county,
        wishes=found["items"],
        campaigns=[c for c in campaigns["items"] if county in c["counties"]],
        visits=[c for c in contacts["items"] if c["in_person"]],
        categories=CATEGORIES,
        sent=sent or {},
        problems=problems or {},
        error=error,
        posted=posted,
    )


@router.post("/children/{child_id}/wishes", response_class=HTMLResponse)
async def post_wish(request: Request, caller: StaffDep, child_id: uuid.UUID) -> Response:
    sent = {key: str(value).strip() for key, value in (await form(request)).items() if key != "csrf"}
    county = county_in_view(request, sent.pop("county", "")) or ""
    wish = {key: sent.get(key) for key in ("item", "category", "estimated_value_yuan", "campaign_id") if sent.get(key)}
    try:
        await caller.post("matching", "/wishes", {"child_id": str(child_id), **wish})
    except ApiFailure as failure:
        if failure.status not in (409, 422):
            raise
        return await child_wishes_page(  # type: ignore[no-any-return]
            request,
            caller,
            child_id,
            county,
            status=failure.status,
            sent=sent,
            problems=failure.problems,
            error=failure.code,
        )
    return RedirectResponse(f"/children/{child_id}/wishes?county={county}&posted=1", status_code=303)


@router.post("/children/{child_id}/wishes/{wish_id}/fulfil", response_class=HTMLResponse)
async def fulfil(request: Request, caller: StaffDep, child_id: uuid.UUID, wish_id: uuid.UUID) -> Response:
    """The gift reached the child (on which visit, if on one)."""
    return await move_wish(request, caller, child_id, wish_id, "fulfil")


@router.post("/children/{child_id}/wishes/{wish_id}/acknowledge", response_class=HTMLResponse)
async def acknowledge(request: Request, caller: StaffDep, child_id: uuid.UUID, wish_id: uuid.UUID) -> Response:
    """The child's side said thank you: the donor sees the wish as thanked (the API keeps no text of it)."""
    return await move_wish(request, caller, child_id, wish_id, "acknowledge")


async def move_wish(request: Request, caller: StaffDep, child_id: uuid.UUID, wish_id: uuid.UUID, step: str) -> Response:
    sent = await form(request)
    county = county_in_view(request, str(sent.get("county", ""))) or ""
    contact = str(sent.get("contact_id", "")) if step == "fulfil" else ""
    try:
        await caller.post("matching", f"/wishes/{wish_id}/{step}", {"contact_id": contact} if contact else {})
    except ApiFailure as failure:
        if failure.status not in (409, 422):
            raise
        return await child_wishes_page(request, caller, child_id, county, status=failure.status, error=failure.code)  # type: ignore[no-any-return]
    return RedirectResponse(f"/children/{child_id}/wishes?county={county}", status_code=303)
