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
from backbone.csvexport import csv_response
from backbone.deps import PrincipalDep, RuntimeDep, require, require_county
from backbone.errors import ApiError
from backbone.paging import Page, Paging, fetch_page
from contracts.vocabulary import CountyCode
from services.matching.candidates import CandidateChild, CandidateVolunteer
from services.matching.contacts import ContactRecord
from services.matching.pairings import PairingRecord
from services.matching.schedule import ScheduleRecord

router = APIRouter(tags=["views"])
Coordinator = Annotated[Principal, Depends(require("coordinator"))]


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
        select(PairingRecord.volunteer_id, func.count().label("children"))
        .where(PairingRecord.county_code == county_code, PairingRecord.status == "confirmed")
        .group_by(PairingRecord.volunteer_id)
        .subquery()
    )
    done = (
        select(
            ContactRecord.volunteer_id,
            func.count().label("contacts"),
            func.sum(case((ContactRecord.in_person, 1), else_=0)).label("visits"),
            func.sum(ContactRecord.duration_minutes).label("minutes"),
            func.max(ContactRecord.occurred_at).label("last_contact_at"),
        )
        .where(ContactRecord.county_code == county_code, ContactRecord.volunteer_id.is_not(None))
        .group_by(ContactRecord.volunteer_id)
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
    runtime: RuntimeDep, principal: Coordinator, county_code: CountyCode, paging: Paging
) -> Page[VolunteerActivity]:
    """Each volunteer of the county: children paired now, contacts, visits and hours of contact."""
    require_county(principal, county_code)
    async with runtime.db.read() as conn:
        return await fetch_page(conn, _activity(county_code), paging, _item)


@router.get("/views/volunteers/export", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def export_volunteers(runtime: RuntimeDep, principal: Coordinator, county_code: CountyCode) -> Response:
    require_county(principal, county_code)
    async with runtime.db.read() as conn:
        rows = (await conn.execute(_activity(county_code).limit(100_000))).all()
    return csv_response(
        (_item(row) for row in rows), list(VolunteerActivity.model_fields), f"volunteers-{county_code}.csv"
    )


@router.get(
    "/volunteers/{volunteer_id}/calendar.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}},
)
async def calendar(volunteer_id: uuid.UUID, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    """The volunteer's due visits as an iCal feed (subscribe in any calendar app): one all-day event per child on the
    day the next in-person visit is due. Children are named only by age band: a phone's calendar is not private."""
    async with runtime.db.read() as conn:
        volunteer = (
            await conn.execute(select(CandidateVolunteer).where(CandidateVolunteer.volunteer_id == volunteer_id))
        ).first()
        if volunteer is None:
            raise ApiError(404, "not_found", f"no volunteer {volunteer_id} known to matching")
        if principal.role == "volunteer":
            if principal.sub != str(volunteer_id):
                raise ApiError(403, "forbidden", "a volunteer sees their own calendar only")
        elif principal.role in ("coordinator", "admin"):
            require_county(principal, volunteer.county_code)
        else:
            raise ApiError(403, "forbidden", "volunteers and coordinators only")
        due = await conn.execute(
            select(PairingRecord.pairing_id, CandidateChild.age_band, ScheduleRecord.due_at)
            .join(ScheduleRecord, ScheduleRecord.child_id == PairingRecord.child_id)
            .join(CandidateChild, CandidateChild.child_id == PairingRecord.child_id)
            .where(
                PairingRecord.volunteer_id == volunteer_id,
                PairingRecord.status == "confirmed",
                ScheduleRecord.active.is_(True),
                ScheduleRecord.due_at.is_not(None),
            )
            .order_by(ScheduleRecord.due_at, PairingRecord.pairing_id)
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
