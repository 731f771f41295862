"""HTTP routes for matching runs and the pairing lifecycle: propose, confirm, decline, close; the pairings view."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, select
from sqlalchemy.engine import Row

from backbone.auth import Principal
from backbone.csvexport import csv_response, export_rows
from backbone.deps import CoordinatorDep, RuntimeDep, require_county
from backbone.errors import ApiError
from backbone.paging import Page, Paging, fetch_page
from backbone.runtime import Runtime
from contracts.matching import (
    ClosureReason,
    DeclinedBy,
    DeclineReason,
    PairingClosed,
    PairingConfirmed,
    PairingDeclined,
    UnpairedReason,
)
from contracts.vocabulary import CountyCode, RiskLevel
from services.matching import pairings, runs
from services.matching.candidates import CandidateChild, CandidateVolunteer
from services.matching.pairings import PairingRecord, Transition
from services.matching.solver import QUALIFIED_KINDS, TooLarge

router = APIRouter(tags=["pairings"])
PairingStatus = Annotated[str, Query(pattern="^(proposed|confirmed|suspended|declined|lapsed|withdrawn|closed)$")]

UNPAIRED = {
    "child_not_eligible": "the registry does not let this child be paired now (see the child's record)",
    "has_open_pairing": "the child has a proposed, confirmed or suspended pairing already",
    "no_eligible_volunteer": "no volunteer of the county is screened and trained",
    "no_qualified_volunteer": "the child needs a social worker or a child director, and the county has none eligible",
    "all_at_capacity": "every volunteer who could take the child has no place left",
    "only_declined_pairs": "every volunteer with a place left was declined for this child before",
    "places_went_to_others": (
        "the places this child could take went to children of higher risk, or of equal risk with a better fit overall"
    ),
}


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    county_code: CountyCode
    child_ids: list[uuid.UUID] | None = Field(
        default=None,
        min_length=1,
        max_length=10_000,
        description="only these children (a rematch); all unpaired ones if absent",
    )


class ProposalOut(BaseModel):
    pairing_id: uuid.UUID
    child_id: uuid.UUID
    volunteer_id: uuid.UUID
    risk_level: RiskLevel
    score: int
    score_parts: dict[str, int]
    expires_at: datetime


class UnpairedOut(BaseModel):
    child_id: uuid.UUID
    reason: UnpairedReason
    message: str


class RunOut(BaseModel):
    run_id: uuid.UUID
    county_code: str
    proposals: list[ProposalOut]
    unpaired: list[UnpairedOut]
    paired: dict[RiskLevel, int] = Field(description="children proposed a volunteer, per risk level")
    fit: int = Field(description="total fit of the proposals (the sum of their scores)")


class DeclineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    declined_by: DeclinedBy
    reason: DeclineReason


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: ClosureReason


class PairingOut(BaseModel):
    pairing_id: uuid.UUID
    run_id: uuid.UUID
    child_id: uuid.UUID
    volunteer_id: uuid.UUID
    county_code: str
    risk_level: RiskLevel
    status: str
    score: int
    score_parts: dict[str, int]
    proposed_at: datetime
    expires_at: datetime
    changed_at: datetime
    reason: str | None = Field(description="why it was declined, withdrawn, suspended or closed")
    declined_by: str | None
    version: int


@router.post("/matching-runs", status_code=201, response_model=RunOut)
async def matching_run(body: RunIn, runtime: RuntimeDep, principal: CoordinatorDep) -> RunOut:
    """Propose a volunteer for every unpaired child of the county: the optimal proposals, each with its score and
    score parts, and every child left unpaired with the reason. A coordinator confirms each proposal."""
    require_county(principal, body.county_code)
    try:
        done = await runs.run(runtime, body.county_code, body.child_ids)
    except TooLarge as error:
        raise ApiError(422, "county_too_large", f"{error}; name the children to match (child_ids)") from error
    return RunOut(
        run_id=done.run_id,
        county_code=done.county_code,
        proposals=[
            ProposalOut(
                pairing_id=done.pairing_ids[p.child_id],
                child_id=p.child_id,
                volunteer_id=p.volunteer_id,
                risk_level=p.risk_level,
                score=p.score,
                score_parts=p.score_parts,
                expires_at=done.expires_at,
            )
            for p in done.solution.proposals
        ],
        unpaired=[
            UnpairedOut(child_id=u.child_id, reason=u.reason, message=UNPAIRED[u.reason])
            for u in done.solution.unpaired
        ],
        paired=done.solution.paired,
        fit=done.solution.fit,
    )


async def _change(
    runtime: Runtime, principal: Principal, pairing_id: uuid.UUID, decide: Any, *, hold_sides: bool = False
) -> PairingOut:
    """Load the pairing, check the coordinator's county, decide the change and record it, in one transaction."""
    async with runtime.transaction() as conn:
        row = await pairings.load(conn, pairing_id)
        require_county(principal, row.county_code)
        if hold_sides:
            await pairings.hold(runtime, conn, children=[row.child_id], volunteers=[row.volunteer_id])
            row = await pairings.load(conn, pairing_id)  # as it is now that nothing else counts this volunteer
        change: Transition = await decide(conn, row)
        await pairings.transition(runtime, conn, row, change)
        return PairingOut.model_validate((await pairings.load(conn, pairing_id))._mapping)


@router.post("/pairings/{pairing_id}/confirm", response_model=PairingOut)
async def confirm(pairing_id: uuid.UUID, runtime: RuntimeDep, principal: CoordinatorDep) -> PairingOut:
    """Confirm a proposal. Capacity and both sides' eligibility are checked again in the same transaction:
    of two coordinators confirming against a volunteer's last place, one wins and the other gets 409."""

    async def decide(conn: Any, row: Row[Any]) -> Transition:
        if row.status != "proposed":
            raise ApiError(409, f"pairing_{row.status}", f"the pairing is {row.status}; only a proposal is confirmed")
        if row.expires_at <= runtime.clock.now():
            raise ApiError(409, "pairing_lapsed", "the proposal was not confirmed in time; run matching again")
        volunteer = (
            await conn.execute(select(CandidateVolunteer).where(CandidateVolunteer.volunteer_id == row.volunteer_id))
        ).first()
        if volunteer is None or not volunteer.eligible:
            raise ApiError(409, "volunteer_not_eligible", "the volunteer may not be paired now")
        child = (await conn.execute(select(CandidateChild).where(CandidateChild.child_id == row.child_id))).first()
        if child is None or not child.eligible or not child.active:
            raise ApiError(409, "child_not_eligible", "the child may not be paired now")
        if (child.risk_level == "high" or child.flags) and volunteer.kind not in QUALIFIED_KINDS:
            raise ApiError(409, "volunteer_not_qualified", "the child now needs a social worker or a child director")
        if await pairings.count_active(conn, row.volunteer_id) >= volunteer.capacity:
            raise ApiError(409, "volunteer_at_capacity", f"the volunteer already has {volunteer.capacity} children")
        return PairingConfirmed(**pairings.ids(row))

    return await _change(runtime, principal, pairing_id, decide, hold_sides=True)


@router.post("/pairings/{pairing_id}/decline", response_model=PairingOut)
async def decline(pairing_id: uuid.UUID, body: DeclineIn, runtime: RuntimeDep, principal: CoordinatorDep) -> PairingOut:
    """Turn a proposal down (the coordinator, the volunteer, the child or the guardian); the pair is never proposed
    again."""

    async def decide(conn: Any, row: Row[Any]) -> Transition:
        return PairingDeclined(**pairings.ids(row), declined_by=body.declined_by, reason=body.reason)

    return await _change(runtime, principal, pairing_id, decide)


@router.post("/pairings/{pairing_id}/close", response_model=PairingOut)
async def close(pairing_id: uuid.UUID, body: CloseIn, runtime: RuntimeDep, principal: CoordinatorDep) -> PairingOut:
    """End a confirmed (or suspended) pairing with the reason; the child can then be matched again."""

    async def decide(conn: Any, row: Row[Any]) -> Transition:
        return PairingClosed(**pairings.ids(row), reason=body.reason)

    return await _change(runtime, principal, pairing_id, decide)


@router.get("/pairings/{pairing_id}", response_model=PairingOut)
async def read_pairing(pairing_id: uuid.UUID, runtime: RuntimeDep, principal: CoordinatorDep) -> PairingOut:
    async with runtime.db.read() as conn:
        row = await pairings.load(conn, pairing_id)
    require_county(principal, row.county_code)
    return PairingOut.model_validate(row._mapping)


@dataclass(frozen=True)
class PairingFilter:
    county_code: CountyCode
    status: PairingStatus | None = None
    volunteer_id: Annotated[uuid.UUID | None, Query()] = None
    child_id: Annotated[uuid.UUID | None, Query()] = None

    def query(self) -> Select[Any]:
        query = select(PairingRecord).where(PairingRecord.county_code == self.county_code)
        if self.status is not None:
            query = query.where(PairingRecord.status == self.status)
        if self.volunteer_id is not None:
            query = query.where(PairingRecord.volunteer_id == self.volunteer_id)
        if self.child_id is not None:
            query = query.where(PairingRecord.child_id == self.child_id)
        return query.order_by(PairingRecord.proposed_at, PairingRecord.pairing_id)


Filter = Annotated[PairingFilter, Depends()]


@router.get("/views/pairings", response_model=Page[PairingOut], tags=["views"])
async def pairings_view(
    runtime: RuntimeDep, principal: CoordinatorDep, where: Filter, paging: Paging
) -> Page[PairingOut]:
    """The county's pairings, by status, volunteer or child; a suspended or closed one says why."""
    require_county(principal, where.county_code)
    async with runtime.db.read() as conn:
        return await fetch_page(conn, where.query(), paging, lambda row: PairingOut.model_validate(row._mapping))


@router.get(
    "/views/pairings/export", response_class=Response, responses={200: {"content": {"text/csv": {}}}}, tags=["views"]
)
async def export_pairings(runtime: RuntimeDep, principal: CoordinatorDep, where: Filter) -> Response:
    require_county(principal, where.county_code)
    async with runtime.db.read() as conn:
        rows = await export_rows(conn, where.query(), runtime.settings.export_max_rows)
    fields = [f for f in PairingOut.model_fields if f != "score_parts"]
    return csv_response(
        (PairingOut.model_validate(row._mapping) for row in rows), fields, f"pairings-{where.county_code}.csv"
    )
