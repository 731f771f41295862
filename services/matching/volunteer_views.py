"""Per volunteer: the children they are paired with, their contacts and hours; and an iCal feed of due visits."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel
from sqlalchemy import Select, case, func, select
from sqlalchemy.engine import Row

from backbone.auth import Principal
from backbone.clock import local_date
from backbone.csvexport import csv_response, export_rows
from backbone.deps import CoordinatorDep, RuntimeDep, fresh, require, require_county
from backbone.errors import ApiError
from backbone.paging import Page, Paging, fetch_page
from contracts.vocabulary import CountyCode
from services.matching.calendar_feeds import open_calendar
from services.matching.candidates import CandidateChild, Candidates, CandidateVolunteer
from services.matching.views import ContactRow, Engagement, EngagementRow

router = APIRouter(tags=["views"])
# Both projections: a view asked to waits until they show what a command wrote (X-Wait-For; backbone.freshness).
ShowsBoth = Annotated[None, Depends(fresh(Candidates, Engagement))]


class VolunteerActivity(BaseModel):
    volunteer_id: uuid.UUID
    kind: str
    eligible: bool
    children: int
    contacts: int
    visits: int
    hours: float
    last_contact_at: datetime | None


def _activity(county_code: str) -> Select[Any]:
    paired = (
        select(EngagementRow.volunteer_id, func.count().label("children"))
        .where(EngagementRow.county_code == county_code, EngagementRow.pairing_status == "confirmed")
        .group_by(EngagementRow.volunteer_id)
        .subquery()
    )
    done = (
        select(
            ContactRow.volunteer_id,
            func.count().label("contacts"),
            func.sum(case((ContactRow.in_person, 1), else_=0)).label("visits"),
            func.sum(ContactRow.duration_minutes).label("minutes"),
            func.max(ContactRow.occurred_at).label("last_contact_at"),
        )
        .where(ContactRow.county_code == county_code, ContactRow.volunteer_id.is_not(None))
        .group_by(ContactRow.volunteer_id)
        .subquery()
    )
    return (
        select(
            CandidateVolunteer.volunteer_id,
            CandidateVolunteer.kind,
            CandidateVolunteer.eligible,
            func.coalesce(paired.c.children, 0).label("children"),
            func.coalesce(done.c.contacts, 0).label("contacts"),
            func.coalesce(done.c.visits, 0).label("visits"),
            func.coalesce(done.c.minutes, 0).label("minutes"),
            done.c.last_contact_at,
        )
        .outerjoin(paired, paired.c.volunteer_id == CandidateVolunteer.volunteer_id)
        .outerjoin(done, done.c.volunteer_id == CandidateVolunteer.volunteer_id)
        .where(CandidateVolunteer.county_code == county_code)
        .order_by(CandidateVolunteer.volunteer_id)
    )


def _item(row: Row[Any]) -> VolunteerActivity:
    return VolunteerActivity.model_validate({**row._mapping, "hours": round(int(row.minutes) / 60, 2)})


@router.get("/views/volunteers", response_model=Page[VolunteerActivity])
async def volunteers_view(
    runtime: RuntimeDep, principal: CoordinatorDep, county_code: CountyCode, paging: Paging, _: ShowsBoth
) -> Page[VolunteerActivity]:
    """Each volunteer of the county: children paired now, contacts, visits and hours of contact."""
    require_county(principal, county_code)
    async with runtime.db.read() as conn:
        return await fetch_page(conn, _activity(county_code), paging, _item)


@router.get("/views/volunteers/export", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def export_volunteers(runtime: RuntimeDep, principal: CoordinatorDep, county_code: CountyCode) -> Response:
    require_county(principal, county_code)
    async with runtime.db.read() as conn:
        rows = await export_rows(conn, _activity(county_code), runtime.settings.export_max_rows)
    return csv_response(
        (_item(row) for row in rows), list(VolunteerActivity.model_fields), f"volunteers-{county_code}.csv"
    )


class PairedChild(BaseModel):
    pairing_id: uuid.UUID
    child_id: uuid.UUID
    risk_level: str | None
    age_band: str
    gender: str | None
    last_contact_at: datetime | None
    last_in_person_at: datetime | None
    next_due_at: datetime | None
    overdue: bool


@router.get("/volunteers/{volunteer_id}/children", response_model=list[PairedChild])
async def paired_children(
    volunteer_id: uuid.UUID,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator", "volunteer"))],
    _: ShowsBoth,
) -> list[PairedChild]:
    """The children of the volunteer's confirmed pairings, soonest visit due first: for the volunteer themselves
    (their phone page) or a coordinator of their county. No personal data: the registry gives the volunteer what a
    visit needs (`GET /volunteers/{id}/visit-cards` there)."""
    async with runtime.db.read() as conn:
        county = await conn.scalar(
            select(CandidateVolunteer.county_code).where(CandidateVolunteer.volunteer_id == volunteer_id)
        )
        if principal.role == "volunteer" and principal.sub != str(volunteer_id):
            raise ApiError(403, "forbidden", "a volunteer sees their own children only")
        if principal.role != "volunteer":
            if county is None:
                raise ApiError(404, "not_found", f"no volunteer {volunteer_id} known to matching")
            require_county(principal, county)
        rows = await conn.execute(
            select(*EngagementRow.__table__.columns, CandidateChild.age_band, CandidateChild.gender)
            .join(CandidateChild, CandidateChild.child_id == EngagementRow.child_id)
            .where(
                EngagementRow.volunteer_id == volunteer_id,
                EngagementRow.pairing_status == "confirmed",
                EngagementRow.active.is_(True),
            )
            .order_by(EngagementRow.next_due_at.nulls_last(), EngagementRow.child_id)  # one order on every adapter
        )
        now = runtime.clock.now()
        return [
            PairedChild.model_validate(
                {**row._mapping, "overdue": row.next_due_at is not None and row.next_due_at < now}
            )
            for row in rows
        ]


@router.get(
    "/volunteers/{volunteer_id}/calendar.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}},
    dependencies=[Depends(open_calendar)],
)
async def calendar(volunteer_id: uuid.UUID, runtime: RuntimeDep) -> Response:
    """The volunteer's due visits as an iCal feed: subscribe in any calendar app with a feed link (`?feed=`, from
    `POST /volunteers/{id}/calendar-feeds`; it works for 365 days at most, until revoked or the volunteer's personal
    data is erased), or read it with the volunteer's or a coordinator's bearer header (a bearer token in the address,
    `?token=`, is refused). One all-day event per child on the day the next in-person
    visit is due. Children are named only by age band: a phone's calendar is not private."""
    async with runtime.db.read() as conn:
        due = await conn.execute(
            select(EngagementRow.pairing_id, CandidateChild.age_band, EngagementRow.next_due_at.label("due_at"))
            .join(CandidateChild, CandidateChild.child_id == EngagementRow.child_id)
            .where(
                EngagementRow.volunteer_id == volunteer_id,
                EngagementRow.pairing_status == "confirmed",
                EngagementRow.active.is_(True),
                EngagementRow.next_due_at.is_not(None),
            )
            .order_by(EngagementRow.next_due_at, EngagementRow.pairing_id)
        )
        events = [_event(row, runtime.clock.now()) for row in due]
    body = "\r\n".join(
        ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//handinhand//matching//ZH", *events, "END:VCALENDAR"]
    )
    return Response(body + "\r\n", media_type="text/calendar; charset=utf-8")


def _event(row: Any, now: datetime) -> str:
    day = local_date(row.due_at).strftime("%Y%m%d")
    return "\r\n".join(
        [
            "BEGIN:VEVENT",
            f"UID:{row.pairing_id}-{day}@handinhand",
            f"DTSTAMP:{now.strftime('%Y%m%dT%H%M%SZ')}",
            f"DTSTART;VALUE=DATE:{day}",
            f"SUMMARY:Visit due (child {row.age_band})",
            f"URL:/pairings/{row.pairing_id}",
            "END:VEVENT",
        ]
    )
