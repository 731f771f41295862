"""HTTP routes of the matching service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import Select, func, select
from sqlalchemy.engine import Row

from backbone.auth import Principal
from backbone.csvexport import csv_response, export_rows
from backbone.deps import RuntimeDep, fresh, require, require_county
from backbone.errors import ApiError
from backbone.paging import Page, Paging, fetch_page
from contracts.matching import VisitPolicyChanged
from contracts.vocabulary import Category, ConsentScope, CountyCode, RiskLevel
from services.matching.candidates import CandidateChild, Candidates, CandidateVolunteer
from services.matching.pairings import OPEN, PairingRecord
from services.matching.schedule import Intervals, change_policy
from services.matching.views import Engagement, EngagementRow

router = APIRouter(tags=["views"])
# A view asked to waits until its projection shows what a command wrote (X-Wait-For; backbone.freshness).
ShowsCandidates = Annotated[None, Depends(fresh(Candidates))]
ShowsEngagement = Annotated[None, Depends(fresh(Engagement))]


def _in_utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # year 1 east of Greenwich, year 9999 west of it: no moment the database can compare
        raise ValueError("the moment is outside the years 1 to 9999 in UTC") from None


# A query's moment: ISO 8601 with its zone (`Z` or `%2B08:00` in a URL), as every time this API reads or writes.
Moment = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class EngagementOut(BaseModel):
    child_id: uuid.UUID
    county_code: str
    risk_level: RiskLevel | None
    pairing_id: uuid.UUID | None
    pairing_status: str | None = Field(description="confirmed, or suspended (see the pairing for why)")
    volunteer_id: uuid.UUID | None
    last_contact_at: datetime | None
    last_in_person_at: datetime | None
    next_due_at: datetime | None = Field(description="when the next in-person contact is due")
    overdue: bool
    escalated: bool = Field(description="overdue and escalated to the county's child director (high risk)")
    open_wishes: int = Field(description="wishes posted and neither fulfilled nor withdrawn")


@dataclass(frozen=True)
class EngagementFilter:
    county_code: CountyCode
    overdue: Annotated[bool | None, Query()] = None
    risk_level: Annotated[RiskLevel | None, Query()] = None
    volunteer_id: Annotated[uuid.UUID | None, Query()] = None
    due_before: Annotated[
        Moment | None, Query(description="only children whose next visit is due before this moment (with its zone)")
    ] = None
    paired: Annotated[
        bool | None, Query(description="with a volunteer (a confirmed or suspended pairing), or without")
    ] = None

    def query(self, now: datetime) -> Select[Any]:
        query = select(EngagementRow).where(
            EngagementRow.county_code == self.county_code, EngagementRow.active.is_(True)
        )
        if self.overdue is not None:
            late = EngagementRow.next_due_at < now
            query = query.where(late if self.overdue else ~late | EngagementRow.next_due_at.is_(None))
        if self.risk_level is not None:
            query = query.where(EngagementRow.risk_level == self.risk_level)
        if self.volunteer_id is not None:
            query = query.where(EngagementRow.volunteer_id == self.volunteer_id)
        if self.due_before is not None:
            query = query.where(EngagementRow.next_due_at < self.due_before)
        if self.paired is not None:
            volunteer = EngagementRow.volunteer_id
            query = query.where(volunteer.is_not(None) if self.paired else volunteer.is_(None))
        return query.order_by(EngagementRow.next_due_at, EngagementRow.child_id)


def _engagement(now: datetime) -> Any:
    def item(row: Row[Any]) -> EngagementOut:
        overdue = row.next_due_at is not None and row.next_due_at < now
        escalated = overdue and row.escalated_for is not None and row.escalated_for == row.next_due_at
        return EngagementOut.model_validate({**row._mapping, "overdue": overdue, "escalated": escalated})

    return item


@router.get("/views/engagement", response_model=Page[EngagementOut])
async def engagement(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator"))],
    where: Annotated[EngagementFilter, Depends()],
    paging: Paging,
    _: ShowsEngagement,
) -> Page[EngagementOut]:
    """Per child in the programme: the volunteer, the last contacts, when the next visit is due, whether overdue."""
    require_county(principal, where.county_code)
    now = runtime.clock.now()
    async with runtime.db.read() as conn:
        return await fetch_page(conn, where.query(now), paging, _engagement(now))


@router.get("/views/engagement/export", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def export_engagement(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator"))],
    where: Annotated[EngagementFilter, Depends()],
) -> Response:
    require_county(principal, where.county_code)
    now = runtime.clock.now()
    async with runtime.db.read() as conn:
        rows = await export_rows(conn, where.query(now), runtime.settings.export_max_rows)
    item = _engagement(now)
    return csv_response(
        (item(row) for row in rows), list(EngagementOut.model_fields), f"engagement-{where.county_code}.csv"
    )


class CandidateChildOut(BaseModel):
    child_id: uuid.UUID
    county_code: str
    risk_level: RiskLevel
    category: str
    age_band: str
    gender: str | None = Field(description="female or male; none where the registry did not say")
    active: bool = Field(description="still in the programme (false: the child left it)")
    needs: list[str]
    languages: list[str]
    flags: list[str]
    eligible: bool
    purposes: list[ConsentScope] = Field(
        description="what the child's data may be processed for beyond the minimum (pairing, home_visits, wishes, aid):"
        " all from 14, under 14 what a guardian consented to; matching refuses the rest (409 no_consent)"
    )
    open_pairing_id: uuid.UUID | None = Field(description="the child's proposed, confirmed or suspended pairing")
    needs_pairing: bool = Field(description="eligible, and no open pairing: a run will look for a volunteer")


class CandidateVolunteerOut(BaseModel):
    volunteer_id: uuid.UUID
    county_code: str
    kind: str
    skills: list[str]
    languages: list[str]
    capacity: int
    eligible: bool
    open_pairings: int = Field(description="proposed, confirmed and suspended pairings: each holds a place")
    free: int = Field(description="places left: capacity less open pairings")


@dataclass(frozen=True)
class CandidateChildFilter:
    county_code: CountyCode
    status: Annotated[Literal["active", "left"], Query(description="active: still in the programme; left: left it")] = (
        "active"
    )
    category: Annotated[Category | None, Query()] = None
    risk_level: Annotated[RiskLevel | None, Query()] = None
    eligible: Annotated[bool | None, Query()] = None
    needs_pairing: Annotated[bool | None, Query()] = None
    paired: Annotated[
        bool | None, Query(description="with an open pairing (proposed, confirmed or suspended), or without")
    ] = None

    def query(self) -> Select[Any]:
        """The county's children in order of id: one index (county, active, id) walks a page of any size county."""
        open_pairing = (
            select(PairingRecord.child_id, PairingRecord.pairing_id)
            .where(PairingRecord.county_code == self.county_code, PairingRecord.status.in_(OPEN))
            .subquery()
        )
        unpaired = open_pairing.c.pairing_id.is_(None)
        query = (
            select(CandidateChild.__table__, open_pairing.c.pairing_id.label("open_pairing_id"))
            .outerjoin(open_pairing, open_pairing.c.child_id == CandidateChild.child_id)
            .where(
                CandidateChild.county_code == self.county_code,
                CandidateChild.active.is_(self.status == "active"),
            )
        )
        if self.category is not None:
            query = query.where(CandidateChild.category == self.category)
        if self.risk_level is not None:
            query = query.where(CandidateChild.risk_level == self.risk_level)
        if self.eligible is not None:
            query = query.where(CandidateChild.eligible.is_(self.eligible))
        if self.needs_pairing is not None:
            wanted = CandidateChild.eligible.is_(True) & unpaired
            query = query.where(wanted if self.needs_pairing else ~wanted)
        if self.paired is not None:
            query = query.where(~unpaired if self.paired else unpaired)
        return query.order_by(CandidateChild.child_id)


@router.get("/views/candidates/children", response_model=Page[CandidateChildOut])
async def candidate_children(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator"))],
    where: Annotated[CandidateChildFilter, Depends()],
    paging: Paging,
    _: ShowsCandidates,
) -> Page[CandidateChildOut]:
    """Children of a county (still in the programme unless `status=left`), whether each may be proposed a volunteer,
    and whether one is already proposed or paired."""
    require_county(principal, where.county_code)

    def item(row: Row[Any]) -> CandidateChildOut:
        return CandidateChildOut(**row._mapping, needs_pairing=row.eligible and row.open_pairing_id is None)

    async with runtime.db.read() as conn:
        return await fetch_page(conn, where.query(), paging, item)


@router.get("/views/candidates/volunteers", response_model=Page[CandidateVolunteerOut])
async def candidate_volunteers(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator"))],
    county_code: CountyCode,
    paging: Paging,
    _: ShowsCandidates,
    eligible: bool | None = None,
    with_free_places: bool | None = None,
) -> Page[CandidateVolunteerOut]:
    """Volunteers of a county, whether each is vetted and trained (as the registry last said), and their places."""
    require_county(principal, county_code)
    held = (
        select(PairingRecord.volunteer_id, func.count().label("open_pairings"))
        .where(PairingRecord.county_code == county_code, PairingRecord.status.in_(OPEN))
        .group_by(PairingRecord.volunteer_id)
        .subquery()
    )
    open_pairings = func.coalesce(held.c.open_pairings, 0)
    query = (
        select(CandidateVolunteer.__table__, open_pairings.label("open_pairings"))
        .outerjoin(held, held.c.volunteer_id == CandidateVolunteer.volunteer_id)
        .where(CandidateVolunteer.county_code == county_code)
    )
    if eligible is not None:
        query = query.where(CandidateVolunteer.eligible.is_(eligible))
    if with_free_places is not None:
        query = query.where((open_pairings < CandidateVolunteer.capacity) == with_free_places)

    def item(row: Row[Any]) -> CandidateVolunteerOut:
        return CandidateVolunteerOut(**row._mapping, free=max(0, row.capacity - row.open_pairings))

    async with runtime.db.read() as conn:
        return await fetch_page(conn, query.order_by(CandidateVolunteer.volunteer_id), paging, item)


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    high_days: int = Field(ge=1, le=90)
    medium_days: int = Field(ge=1, le=180)
    low_days: int = Field(ge=1, le=365)


class PolicyOut(PolicyIn):
    county_code: str
    replanned: int | None = Field(default=None, description="children whose next visit moved")


@router.get("/visit-policies/{county_code}", response_model=PolicyOut, tags=["schedule"])
async def visit_policy(
    county_code: CountyCode, runtime: RuntimeDep, principal: Annotated[Principal, Depends(require("coordinator"))]
) -> PolicyOut:
    """The county's days between in-person contacts per risk level (7 / 14 / 30 unless it set its own)."""
    require_county(principal, county_code)
    async with runtime.db.read() as conn:
        interval = await Intervals.load(conn)
    days = {f"{risk}_days": interval(county_code, risk).days for risk in ("high", "medium", "low")}
    return PolicyOut(county_code=county_code, **days)


@router.put("/visit-policies/{county_code}", response_model=PolicyOut, tags=["schedule"])
async def set_visit_policy(
    county_code: CountyCode,
    body: PolicyIn,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator"))],
) -> PolicyOut:
    """Set the county's own intervals; every child's next visit is re-planned at once."""
    require_county(principal, county_code)
    if not body.high_days <= body.medium_days <= body.low_days:
        raise ApiError(422, "invalid_policy", "higher risk means visits at least as often: high ≤ medium ≤ low days")
    moved = await change_policy(runtime, VisitPolicyChanged(county_code=county_code, **body.model_dump()))
    return PolicyOut(county_code=county_code, replanned=moved, **body.model_dump())
