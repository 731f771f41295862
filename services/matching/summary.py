"""The programme's figures per county, city or region, and per campaign: each figure of the seed is one query here.

A county is a six-digit GB/T 2260 code (450325 Xing'an); its city is the first four digits (4503 Guilin), its region
the first two (45 Guangxi). Donors and anything public get counts under 5 as "<5", so that no child can be singled out.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone.auth import Principal
from backbone.deps import RuntimeDep, require
from backbone.errors import ApiError
from services.matching.aid import AidRecord
from services.matching.candidates import CandidateChild, CandidateVolunteer
from services.matching.contacts import ContactRecord
from services.matching.pairings import PairingRecord
from services.matching.schedule import ScheduleRecord
from services.matching.wishes import WishRecord

router = APIRouter(tags=["views"])
SMALL = 5  # counts below this are shown as "<5" to donors
Count = int | str
SCOPES = {"county": 6, "city": 4, "region": 2}


class AidFigures(BaseModel):
    children: Count
    quantity: Count
    value_yuan: Decimal


class Summary(BaseModel):
    scope: Literal["county", "city", "region"]
    code: str
    campaign_id: uuid.UUID | None
    children: Count
    children_by_category: dict[str, Count]
    children_by_risk: dict[str, Count]
    caring_parents_active: Count = Field(description="caring parents in a confirmed pairing")
    volunteers_active: Count
    children_paired: Count
    visits: Count = Field(description="in-person contacts (person-times)")
    contacts_by_kind: dict[str, Count]
    wishes: dict[str, Count] = Field(description="posted (all), on_board, claimed, fulfilled (incl. thanked), thanked")
    aid: dict[str, AidFigures]
    overdue_high_risk: Count


@router.get("/views/summary", response_model=Summary)
async def summary(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator", "donor"))],
    code: Annotated[str, Query(pattern=r"^[1-8][0-9](?:[0-9]{2}(?:[0-9]{2})?)?$", description="2, 4 or 6 digits")],
    campaign_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Summary:
    """Per county, city or region (by the length of `code`) and, with `campaign_id`, per campaign."""
    scope = next(name for name, digits in SCOPES.items() if digits == len(code))
    if principal.role == "coordinator" and not any(county.startswith(code) for county in principal.counties):
        # A coordinator sees their county, and the city and region around it: counts only, no children.
        raise ApiError(403, "forbidden", f"no county of {code} is yours")
    async with runtime.db.read() as conn:
        figures = await _figures(conn, code, campaign_id, runtime.clock.now())
    if principal.role == "donor":
        figures = _suppressed(figures)
    return Summary(scope=scope, code=code, campaign_id=campaign_id, **figures)


def _in(column: Any, code: str) -> ColumnElement[bool]:
    """The rows of a county, or of every county in the city or region."""
    inside: ColumnElement[bool] = column.startswith(code, autoescape=True) if len(code) < 6 else column == code
    return inside


async def _figures(conn: AsyncConnection, code: str, campaign: uuid.UUID | None, now: Any) -> dict[str, Any]:
    children = _in(CandidateChild.county_code, code) & CandidateChild.active.is_(True)

    async def counts(column: Any, *where: Any) -> dict[str, int]:
        query = select(column, func.count()).where(*where).group_by(column)
        return {str(key): int(n) for key, n in await conn.execute(query)}

    async def scalar(query: Any) -> int:
        return int(await conn.scalar(query) or 0)

    confirmed = _in(PairingRecord.county_code, code) & PairingRecord.status.in_(("confirmed", "suspended"))
    active_volunteers = select(PairingRecord.volunteer_id).where(confirmed).distinct()
    contacts = [_in(ContactRecord.county_code, code)]
    wishes = [_in(WishRecord.county_code, code)]
    aid = [_in(AidRecord.county_code, code)]
    if campaign is not None:
        contacts.append(ContactRecord.campaign_id == campaign)
        wishes.append(WishRecord.campaign_id == campaign)
        aid.append(AidRecord.campaign_id == campaign)
    by_status = await counts(WishRecord.status, *wishes)
    aid_rows = await conn.execute(
        select(
            AidRecord.kind,
            func.count(distinct(AidRecord.child_id)),
            func.sum(AidRecord.quantity),
            func.sum(AidRecord.value_yuan),
        )
        .where(*aid)
        .group_by(AidRecord.kind)
    )
    return {
        "children": await scalar(select(func.count()).select_from(CandidateChild).where(children)),
        "children_by_category": await counts(CandidateChild.category, children),
        "children_by_risk": await counts(CandidateChild.risk_level, children),
        "caring_parents_active": await scalar(
            select(func.count())
            .select_from(CandidateVolunteer)
            .where(CandidateVolunteer.volunteer_id.in_(active_volunteers), CandidateVolunteer.kind == "caring_parent")
        ),
        "volunteers_active": await scalar(select(func.count(distinct(PairingRecord.volunteer_id))).where(confirmed)),
        "children_paired": await scalar(select(func.count(distinct(PairingRecord.child_id))).where(confirmed)),
        "visits": await scalar(
            select(func.count()).select_from(ContactRecord).where(*contacts, ContactRecord.in_person)
        ),
        "contacts_by_kind": await counts(ContactRecord.kind, *contacts),
        "wishes": {
            "posted": sum(n for status, n in by_status.items() if status != "withdrawn"),
            "on_board": by_status.get("posted", 0),
            "claimed": by_status.get("claimed", 0),
            "fulfilled": by_status.get("fulfilled", 0) + by_status.get("acknowledged", 0),
            "thanked": by_status.get("acknowledged", 0),
        },
        "aid": {
            kind: {"children": int(n), "quantity": int(quantity or 0), "value_yuan": Decimal(value or 0)}
            for kind, n, quantity, value in aid_rows
        },
        "overdue_high_risk": await scalar(
            select(func.count())
            .select_from(ScheduleRecord)
            .where(
                _in(ScheduleRecord.county_code, code),
                ScheduleRecord.active.is_(True),
                ScheduleRecord.risk_level == "high",
                ScheduleRecord.due_at < now,
            )
        ),
    }


def _suppressed(value: Any) -> Any:
    """Every count under 5 as "<5" (yuan amounts stay: they say nothing of how many children)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return f"<{SMALL}" if 0 < value < SMALL else value
    if isinstance(value, dict):
        return {key: item if key == "value_yuan" else _suppressed(item) for key, item in value.items()}
    return value
