"""Campaign aid: the children a campaign's goods go to in a county (by category and risk; no personal data), whether
each has had them already and may be given them, handing them to the ticked children with one request, and the
receipts, one per child as matching keeps them, on a printable page."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from contracts.campaigns import AidKind
from services.console.upstream import ApiFailure
from services.console.web import Caller, StaffDep, county_in_view, csrf_checked, form

router = APIRouter(dependencies=[Depends(csrf_checked)])
KINDS: tuple[str, ...] = get_args(AidKind)
CATEGORIES = ("orphan", "de_facto_unsupported", "left_behind", "in_difficulty")
RISKS = ("high", "medium", "low")
MOST_AT_ONCE = 100  # children per hand-out from this page: their receipts' numbers travel in one address
Listed = Annotated[list[str], Query()]


@dataclass(frozen=True)
class AidList:
    """The list asked for: a county, a campaign covering it, a kind of aid, and the categories and risks kept (none
    chosen: all)."""

    county: str
    campaign: dict[str, Any] | None
    kind: str
    categories: tuple[str, ...]
    risks: tuple[str, ...]

    def query(self, **more: str | int) -> str:
        asked: list[tuple[str, str | int]] = [("county", self.county), ("kind", self.kind)]
        asked += [("campaign", self.campaign["id"])] if self.campaign else []
        asked += [("category", value) for value in self.categories] + [("risk_level", v) for v in self.risks]
        return urlencode(asked + list(more.items()))


async def covering(caller: Caller, county: str) -> list[dict[str, Any]]:
    """The campaigns covering the county, latest first (as the registry lists them)."""
    found = await caller.get("registry", "/campaigns", limit=100)
    return [campaign for campaign in found["items"] if county in campaign["counties"]]


def asked_list(
    county: str,
    campaigns: list[dict[str, Any]],
    campaign: str | None,
    kind: str | None,
    categories: list[str],
    risks: list[str],
) -> AidList:
    """What the query asks for: a campaign of the county's (the latest if none is named; None if the one named does
    not cover it), the kind asked or the campaign's first goal, and only the categories and risks that exist."""
    chosen = next((c for c in campaigns if c["id"] == campaign), None) if campaign else next(iter(campaigns), None)
    goals = list((chosen or {}).get("goals") or {})
    kind = kind if kind in KINDS else next((k for k in goals if k in KINDS), "warm_pack")
    return AidList(
        county,
        chosen,
        kind,
        tuple(value for value in CATEGORIES if value in categories),
        tuple(value for value in RISKS if value in risks),
    )


@router.get("/aid", response_class=HTMLResponse)
async def aid(
    request: Request,
    caller: StaffDep,
    county: Annotated[str | None, Query(max_length=6)] = None,
    campaign: Annotated[str | None, Query(max_length=36)] = None,
    kind: Annotated[str | None, Query(max_length=20)] = None,
    category: Listed = [],  # noqa: B006 (FastAPI copies a query list's default)
    risk_level: Listed = [],  # noqa: B006
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Any:
    code = county_in_view(request, county)
    if code is None:
        return request.app.state.pages.render(request, "choose_county.html", target="/aid")
    campaigns = await covering(caller, code)
    asked = asked_list(code, campaigns, campaign, kind, category, risk_level)
    return await aid_page(request, caller, asked, campaigns, page, not_here=bool(campaign) and asked.campaign is None)


async def aid_page(
    request: Request,
    caller: Caller,
    asked: AidList,
    campaigns: list[dict[str, Any]],
    page: int,
    *,
    not_here: bool = False,
    status: int = 200,
    sent: dict[str, str] | None = None,
    ticked: list[str] | None = None,
    marked: list[str] | None = None,
    problems: dict[str, str] | None = None,
    error: str | None = None,
) -> HTMLResponse:
    size = request.app.state.settings.page_size
    found = None
    if asked.campaign is not None:
        found = await caller.get(
            "matching",
            "/aid-lists",
            county_code=asked.county,
            campaign_id=asked.campaign["id"],
            kind=asked.kind,
            category=list(asked.categories),
            risk_level=list(asked.risks),
            limit=size,
            offset=(page - 1) * size,
        )
    return request.app.state.pages.render(  # type: ignore[no-any-return]
        request,
        "aid.html",
        status=status,
        county=asked.county,
        asked=asked,
        campaigns=campaigns,
        kinds=KINDS,
        categories=CATEGORIES,
        risks=RISKS,
        not_here=not_here,
        found=found,
        page=page,
        size=size,
        sent=sent or {"quantity": "1", "value_yuan": ""},
        ticked=set(ticked or ()),
        marked=set(marked or ()),
        problems=problems or {},
        error=error,
        most=MOST_AT_ONCE,
    )


@router.post("/aid", response_class=HTMLResponse)
async def distribute(request: Request, caller: StaffDep) -> Response:
    """One distribution for the ticked children (matching gives all or none); their receipts' page after."""
    sent = await form(request)
    text = {name: str(sent.get(name, "")).strip() for name in ("county", "campaign", "kind", "quantity", "value_yuan")}
    code = county_in_view(request, text["county"]) or ""
    campaigns = await covering(caller, code)
    categories, risks = _texts(sent.getlist("category")), _texts(sent.getlist("risk_level"))
    asked = asked_list(code, campaigns, text["campaign"], text["kind"], categories, risks)
    page = int(str(sent.get("page", "1"))) if str(sent.get("page", "1")).isdigit() else 1
    children = _ids(_texts(sent.getlist("child")))
    problems = _problems(text)
    error = "invalid" if problems else None
    if not children:
        error = "no_children_chosen"
    elif len(children) > MOST_AT_ONCE:
        error = "too_many_children"
    elif asked.campaign is None:
        error = "unknown_campaign"
    marked: list[str] = []
    status = 422
    if error is None and asked.campaign is not None:
        body = {
            "campaign_id": asked.campaign["id"],
            "kind": asked.kind,
            "quantity": int(text["quantity"]),
            "value_yuan": text["value_yuan"],
            "child_ids": children,
        }
        try:
            made = await caller.post("matching", "/aid-distributions", body)
        except ApiFailure as failure:
            if failure.status not in (409, 422):
                raise
            error, status, problems = failure.code, failure.status, failure.problems
            marked = [str(child) for child in failure.details.get("child_ids", []) if isinstance(child, str)]
        else:
            receipts = [("id", receipt["distribution_id"]) for receipt in made["receipts"]]
            return RedirectResponse("/aid/receipts?" + urlencode([*receipts, ("done", "1")]), status_code=303)
    return await aid_page(
        request,
        caller,
        asked,
        campaigns,
        page,
        status=status,
        sent={"quantity": text["quantity"], "value_yuan": text["value_yuan"]},
        ticked=children,
        marked=marked,
        problems=problems,
        error=error,
    )


def _texts(values: list[Any]) -> list[str]:
    return [value.strip() for value in values if isinstance(value, str)]


def _ids(values: list[str]) -> list[str]:
    """The child ids ticked, once each; anything that is no id is left out (only a tampered form sends one)."""
    found: list[str] = []
    for value in values:
        try:
            found.append(str(uuid.UUID(value)))
        except ValueError:
            continue
    return list(dict.fromkeys(found))


def _problems(text: dict[str, str]) -> dict[str, str]:
    """What the console can tell is wrong with the amounts; the API says the rest (limits, decimals)."""
    problems: dict[str, str] = {}
    quantity = text["quantity"]
    if not (quantity.isascii() and quantity.isdigit() and 1 <= int(quantity) <= 1000):
        problems["quantity"] = "invalid"
    try:
        if not Decimal(text["value_yuan"]).is_finite():
            problems["value_yuan"] = "invalid"
    except InvalidOperation:
        problems["value_yuan"] = "invalid"
    return problems


@router.get("/aid/receipts", response_class=HTMLResponse)
async def receipts(
    request: Request,
    caller: StaffDep,
    numbers: Annotated[list[str], Query(alias="id")] = [],  # noqa: B006 (the receipts' numbers)
    done: Annotated[str | None, Query(max_length=1)] = None,
) -> Any:
    """The receipts of one hand-out: what, how many, worth how much, when, under which campaign, and to which
    children (by reference), with a slip per child to print."""
    known = _ids(numbers)[:MOST_AT_ONCE]
    if not known:
        return request.app.state.pages.render(request, "error.html", status=404, code="not_found")
    return await receipts_page(request, caller, known, done=done == "1")


@router.get("/aid/receipts/{distribution_id}", response_class=HTMLResponse)
async def receipt(request: Request, caller: StaffDep, distribution_id: uuid.UUID) -> Any:
    """One child's receipt."""
    return await receipts_page(request, caller, [str(distribution_id)], done=False)


async def receipts_page(request: Request, caller: Caller, numbers: list[str], *, done: bool) -> HTMLResponse:
    await caller.token()  # renewed once, before the calls that follow run at once
    found = await asyncio.gather(*(caller.get("matching", f"/aid-distributions/{n}") for n in numbers))
    campaign_ids = list(dict.fromkeys(receipt["campaign_id"] for receipt in found))
    named = await asyncio.gather(*(caller.get("registry", f"/campaigns/{c}") for c in campaign_ids))
    first = found[0]
    alike = all(
        (r["campaign_id"], r["kind"], r["quantity"], r["value_yuan"])
        == (first["campaign_id"], first["kind"], first["quantity"], first["value_yuan"])
        for r in found
    )
    return request.app.state.pages.render(  # type: ignore[no-any-return]
        request,
        "aid_receipts.html",
        receipts=found,
        first=first,
        alike=alike,
        single=len(numbers) == 1,
        campaigns={campaign["id"]: campaign for campaign in named},
        total_quantity=sum(int(r["quantity"]) for r in found),
        total_yuan=sum((Decimal(r["value_yuan"]) for r in found), Decimal(0)),
        done=done,
    )
