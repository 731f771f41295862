"""The programme's figures per county, city or region, and per campaign: each figure of the seed is one query here.

A county is a six-digit GB/T 2260 code (450325 Xing'an); its city is the first four digits (4503 Guilin), its region
the first two (45 Guangxi). Every figure is read from the views (the candidate and engagement projections), so a
rebuild from the streams gives the same figures. Donors get counts under 5 as "<5", so that no child can be singled
out.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, case, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone.auth import Principal
from backbone.csvexport import csv_table
from backbone.deps import RuntimeDep, require
from backbone.errors import ApiError
from contracts.campaigns import AidKind
from contracts.counties import area_name
from contracts.matching import ContactKind, Visitor
from contracts.vocabulary import Category, RiskLevel
from contracts.volunteers import VolunteerKind
from services.matching.candidates import CandidateChild, CandidateVolunteer
from services.matching.views import AidRow, ContactRow, EngagementRow, PairingRow, WishRow

router = APIRouter(tags=["views"])
SMALL = 5  # counts below this are shown as "<5" to donors
Count = int | str
SCOPES = {"county": 6, "city": 4, "region": 2}
PAIRED = ("confirmed", "suspended")
WISHES = ("posted", "on_board", "claimed", "fulfilled", "thanked")
AreaCode = Annotated[str, Query(pattern=r"^[1-8][0-9](?:[0-9]{2}(?:[0-9]{2})?)?$", description="2, 4 or 6 digits")]


async def _area_caller(
    principal: Annotated[Principal, Depends(require("coordinator", "donor"))], code: AreaCode
) -> Principal:
    """The caller, if they may see the figures of `code`: the figures and their export check it here, the same way."""
    if principal.role == "coordinator" and not any(county.startswith(code) for county in principal.counties):
        # A coordinator sees their county, and the city and region around it: counts only, no children.
        raise ApiError(403, "forbidden", f"no county of {code} is yours")
    return principal


Caller = Annotated[Principal, Depends(_area_caller)]


class AidFigures(BaseModel):
    children: Count
    quantity: Count
    value_yuan: Decimal | None = Field(description="hidden (null) from donors when fewer than 5 children had it")


class PairingFigures(BaseModel):
    volunteers: Count = Field(description="volunteers of this kind ever confirmed in a pairing")
    children: Count = Field(description="children they were paired with")
    pairings: Count = Field(description="confirmed pairings (person-times), ended ones included")


class VisitorFigures(BaseModel):
    people: Count = Field(description="named visitors (registered volunteers, cadres, child directors)")
    children: Count = Field(description="children they visited in person")
    visits: Count = Field(description="in-person contacts (person-times)")


class Summary(BaseModel):
    scope: Literal["county", "city", "region"]
    code: str
    name_zh: str | None
    name_pinyin: str | None
    campaign_id: uuid.UUID | None
    children: Count
    children_by_category: dict[str, Count]
    children_by_risk: dict[str, Count]
    caring_parents_active: Count = Field(description="caring parents in a confirmed (or suspended) pairing")
    volunteers_active: Count
    children_paired: Count
    pairings: dict[str, PairingFigures] = Field(
        description="every pairing confirmed so far, by the volunteer's kind: \"551 caring parents paired with 502 "
        'children" is pairings.caring_parent (not per campaign: a pairing outlasts a campaign)'
    )
    visits: Count = Field(description="in-person contacts (person-times)")
    children_visited: dict[str, Count] = Field(description="children visited in person, by category")
    visitors: dict[str, VisitorFigures] = Field(description="in-person visits by who made them")
    contacts_by_kind: dict[str, Count]
    wishes: dict[str, Count] = Field(description="posted (all), on_board, claimed, fulfilled (incl. thanked), thanked")
    aid: dict[str, AidFigures]
    scheduled: dict[str, Count] = Field(description="children with a next in-person visit due, by risk")
    overdue: dict[str, Count] = Field(
        description="of those, past due now, by risk: compliance is 1 - overdue/scheduled"
    )
    overdue_high_risk: Count


@router.get("/views/summary", response_model=Summary)
async def summary(
    runtime: RuntimeDep, principal: Caller, code: AreaCode, campaign_id: Annotated[uuid.UUID | None, Query()] = None
) -> Summary:
    """Per county, city or region (by the length of `code`) and, with `campaign_id`, per campaign."""
    scope = next(name for name, digits in SCOPES.items() if digits == len(code))
    async with runtime.db.read() as conn:
        counties = await _by_county(conn, code, campaign_id, runtime.clock.now())
    figures = _empty()
    for county in counties.values():
        _merge(figures, county)
    name_zh, name_pinyin = area_name(code) or (None, None)
    return Summary(
        scope=scope,
        code=code,
        name_zh=name_zh,
        name_pinyin=name_pinyin,
        campaign_id=campaign_id,
        **_shown(figures, principal),
    )


@router.get("/views/summary/export", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def export_summary(
    runtime: RuntimeDep, principal: Caller, code: AreaCode, campaign_id: Annotated[uuid.UUID | None, Query()] = None
) -> Response:
    """The same figures, one row per county of the area: a coordinator's own counties, every county for a donor (small
    counts suppressed). A column per category, risk level, contact kind, visitor, wish state and aid kind."""
    async with runtime.db.read() as conn:
        counties = await _by_county(conn, code, campaign_id, runtime.clock.now())
    if principal.role == "coordinator":
        counties = {county: f for county, f in counties.items() if county in principal.counties}
    columns = list(_columns())
    rows = []
    for county, figures in sorted(counties.items()):
        name_zh, name_pinyin = area_name(county) or (None, None)
        shown = _shown(figures, principal)
        rows.append([county, name_zh, name_pinyin, *(_at(shown, column) for column in columns)])
    header = ["county_code", "name_zh", "name_pinyin", *(".".join(column) for column in columns)]
    return csv_table(header, rows, f"summary-{code}.csv")


def _columns() -> Iterator[tuple[str, ...]]:
    """The export's figure columns, fixed by the vocabularies so every export has the same ones."""
    yield ("children",)
    yield from (("children_by_category", c) for c in get_args(Category))
    yield from (("children_by_risk", r) for r in get_args(RiskLevel))
    yield from (("caring_parents_active",), ("volunteers_active",), ("children_paired",), ("visits",))
    yield from (("pairings", k, part) for k in get_args(VolunteerKind) for part in PairingFigures.model_fields)
    yield from (("children_visited", c) for c in get_args(Category))
    yield from (("visitors", v, part) for v in get_args(Visitor) for part in VisitorFigures.model_fields)
    yield from (("contacts_by_kind", k) for k in get_args(ContactKind))
    yield from (("wishes", w) for w in WISHES)
    yield from (("aid", k, part) for k in get_args(AidKind) for part in AidFigures.model_fields)
    yield from (("scheduled", r) for r in get_args(RiskLevel))
    yield from (("overdue", r) for r in get_args(RiskLevel))
    yield ("overdue_high_risk",)


def _at(figures: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = figures
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return 0
        node = node[key]
    return node


def _in(column: Any, code: str) -> ColumnElement[bool]:
    """The rows of a county, or of every county in the city or region."""
    inside: ColumnElement[bool] = column.startswith(code, autoescape=True) if len(code) < 6 else column == code
    return inside


def _empty() -> dict[str, Any]:
    return {
        "children": 0,
        "children_by_category": {},
        "children_by_risk": {},
        "caring_parents_active": 0,
        "volunteers_active": 0,
        "children_paired": 0,
        "pairings": {},
        "visits": 0,
        "children_visited": {},
        "visitors": {},
        "contacts_by_kind": {},
        "wishes": dict.fromkeys(WISHES, 0),
        "aid": {},
        "scheduled": {},
        "overdue": {},
        "overdue_high_risk": 0,
    }


def _add(figures: dict[str, Any], value: Any, *path: str) -> None:
    node = figures
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = node.get(path[-1], 0) + value


def _merge(into: dict[str, Any], figures: dict[str, Any]) -> None:
    """Add a county's figures to an area's: each child and volunteer belongs to one county, so sums stay exact."""
    for key, value in figures.items():
        if isinstance(value, dict):
            _merge(into.setdefault(key, {}), value)
        else:
            into[key] = into.get(key, 0) + value


async def _by_county(
    conn: AsyncConnection, code: str, campaign: uuid.UUID | None, now: datetime
) -> dict[str, dict[str, Any]]:
    """Every figure of every county in the area: one grouped query per source, whatever the area's size."""
    counties: defaultdict[str, dict[str, Any]] = defaultdict(_empty)
    tagged = [ContactRow.campaign_id == campaign] if campaign else []

    children = select(CandidateChild.county_code, CandidateChild.category, CandidateChild.risk_level, func.count())
    children = children.where(_in(CandidateChild.county_code, code), CandidateChild.active.is_(True))
    for county, category, risk, n in await conn.execute(children.group_by(*children.selected_columns[:3])):
        _add(counties[county], n, "children")
        _add(counties[county], n, "children_by_category", category)
        _add(counties[county], n, "children_by_risk", risk)

    paired = (
        select(
            EngagementRow.county_code,
            CandidateVolunteer.kind,
            func.count(),
            func.count(distinct(EngagementRow.volunteer_id)),
        )
        .outerjoin(CandidateVolunteer, CandidateVolunteer.volunteer_id == EngagementRow.volunteer_id)
        .where(_in(EngagementRow.county_code, code), EngagementRow.pairing_status.in_(PAIRED))
        .group_by(EngagementRow.county_code, CandidateVolunteer.kind)
    )
    for county, kind, n, volunteers in await conn.execute(paired):
        _add(counties[county], n, "children_paired")
        _add(counties[county], volunteers, "volunteers_active")
        _add(counties[county], volunteers if kind == "caring_parent" else 0, "caring_parents_active")

    ever = (
        select(
            PairingRow.county_code,
            CandidateVolunteer.kind,
            func.count(distinct(PairingRow.volunteer_id)),
            func.count(distinct(PairingRow.child_id)),
            func.count(),
        )
        .outerjoin(CandidateVolunteer, CandidateVolunteer.volunteer_id == PairingRow.volunteer_id)
        .where(_in(PairingRow.county_code, code))
        .group_by(PairingRow.county_code, CandidateVolunteer.kind)
    )
    for county, kind, volunteers, n, pairings in await conn.execute(ever):
        for part, count in (("volunteers", volunteers), ("children", n), ("pairings", pairings)):
            _add(counties[county], count, "pairings", kind or "unknown", part)

    contacts = (
        select(ContactRow.county_code, ContactRow.kind, ContactRow.visitor, ContactRow.in_person, func.count())
        .where(_in(ContactRow.county_code, code), *tagged)
        .group_by(ContactRow.county_code, ContactRow.kind, ContactRow.visitor, ContactRow.in_person)
    )
    for county, kind, visitor, in_person, n in await conn.execute(contacts):
        _add(counties[county], n, "contacts_by_kind", kind)
        if in_person:
            _add(counties[county], n, "visits")
            _add(counties[county], n, "visitors", visitor, "visits")

    visited = ContactRow.in_person.is_(True)
    visitors = (
        select(
            ContactRow.county_code,
            ContactRow.visitor,
            func.count(distinct(ContactRow.volunteer_id)),
            func.count(distinct(ContactRow.child_id)),
        )
        .where(_in(ContactRow.county_code, code), visited, *tagged)
        .group_by(ContactRow.county_code, ContactRow.visitor)
    )
    for county, visitor, people, n in await conn.execute(visitors):
        _add(counties[county], people, "visitors", visitor, "people")
        _add(counties[county], n, "visitors", visitor, "children")
    by_category = (
        select(ContactRow.county_code, CandidateChild.category, func.count(distinct(ContactRow.child_id)))
        .join(CandidateChild, CandidateChild.child_id == ContactRow.child_id)
        .where(_in(ContactRow.county_code, code), visited, *tagged)
        .group_by(ContactRow.county_code, CandidateChild.category)
    )
    for county, category, n in await conn.execute(by_category):
        _add(counties[county], n, "children_visited", category)

    wishes = select(WishRow.county_code, WishRow.status, func.count()).where(_in(WishRow.county_code, code))
    if campaign:
        wishes = wishes.where(WishRow.campaign_id == campaign)
    for county, status, n in await conn.execute(wishes.group_by(WishRow.county_code, WishRow.status)):
        for figure in _wish_figures(status):
            _add(counties[county], n, "wishes", figure)

    aid = select(
        AidRow.county_code,
        AidRow.kind,
        func.count(distinct(AidRow.child_id)),
        func.sum(AidRow.quantity),
        func.sum(AidRow.value_yuan),
    ).where(_in(AidRow.county_code, code))
    if campaign:
        aid = aid.where(AidRow.campaign_id == campaign)
    for county, kind, n, quantity, value in await conn.execute(aid.group_by(AidRow.county_code, AidRow.kind)):
        _add(counties[county], n, "aid", kind, "children")
        _add(counties[county], int(quantity), "aid", kind, "quantity")
        _add(counties[county], Decimal(value), "aid", kind, "value_yuan")

    late = case((EngagementRow.next_due_at < now, 1), else_=0)
    schedules = (
        select(EngagementRow.county_code, EngagementRow.risk_level, func.count(), func.sum(late))
        .where(
            _in(EngagementRow.county_code, code),
            EngagementRow.active.is_(True),
            EngagementRow.next_due_at.is_not(None),
        )
        .group_by(EngagementRow.county_code, EngagementRow.risk_level)
    )
    for county, risk, n, overdue in await conn.execute(schedules):
        _add(counties[county], n, "scheduled", risk)
        _add(counties[county], int(overdue), "overdue", risk)
        _add(counties[county], int(overdue) if risk == "high" else 0, "overdue_high_risk")
    return dict(counties)


def _wish_figures(status: str) -> tuple[str, ...]:
    """The figures a wish in this state counts in: a fulfilled wish was posted and is fulfilled, and so on."""
    return {
        "posted": ("posted", "on_board"),
        "claimed": ("posted", "claimed"),
        "fulfilled": ("posted", "fulfilled"),
        "acknowledged": ("posted", "fulfilled", "thanked"),
    }.get(status, ())  # a withdrawn wish counts nowhere


def _shown(figures: dict[str, Any], principal: Principal) -> dict[str, Any]:
    return suppressed(figures) if principal.role == "donor" else figures


# Breakdowns whose cells add up to a figure shown beside them (all their cells, or those named), so that hidden cells
# could be worked out as the total minus the rest.
BREAKDOWNS: dict[str, tuple[str, ...] | None] = {
    "children_by_category": None,
    "children_by_risk": None,
    "children_visited": None,
    "contacts_by_kind": None,
    "scheduled": None,
    "overdue": None,
    "wishes": ("on_board", "claimed", "fulfilled"),  # add up to `posted`
}
HIDDEN = "x"  # a count of 5 or more hidden so that the counts under 5 beside it cannot be worked out (complementary)


def suppressed(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures as a donor sees them: every count from 1 to 4 as "<5"; in a breakdown holding such a cell, the
    smallest larger cell as "x" too (the hidden cells then add up to a sum that no longer says what each is); the
    visits by each kind of visitor are such a breakdown of `visits`, and caring parents one of the volunteers
    active; the yuan of aid to fewer than 5 children hidden (the value per child would give the count away)."""
    shown: dict[str, Any] = _hidden(figures)
    visits = {role: parts["visits"] for role, parts in figures.get("visitors", {}).items()}
    if (role := _complement(visits)) is not None:
        shown["visitors"][role]["visits"] = HIDDEN
    if "volunteers_active" in figures:
        others = figures["volunteers_active"] - figures["caring_parents_active"]
        if _complement({"caring_parents_active": figures["caring_parents_active"], "others": others}):
            shown["caring_parents_active"] = HIDDEN
    return shown


def _hidden(value: Any, key: str = "") -> Any:
    if isinstance(value, bool) or not isinstance(value, int | dict):
        return value
    if isinstance(value, int):
        return f"<{SMALL}" if 0 < value < SMALL else value
    shown = {name: _hidden(item, name) for name, item in value.items() if name != "value_yuan"}
    if "value_yuan" in value:
        shown["value_yuan"] = None if shown.get("children") == f"<{SMALL}" else value["value_yuan"]
    if key in BREAKDOWNS:
        cells = BREAKDOWNS[key]
        if (name := _complement({n: c for n, c in value.items() if cells is None or n in cells})) is not None:
            shown[name] = HIDDEN
    return shown


def _complement(cells: dict[str, int]) -> str | None:
    """The cell to hide beside the small ones (the smallest of 5 or more), if any cell is small."""
    if not any(0 < n < SMALL for n in cells.values()):
        return None
    larger = sorted((n, name) for name, n in cells.items() if n >= SMALL)
    return larger[0][1] if larger else None
