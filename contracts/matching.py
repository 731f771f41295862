"""Events of the matching context (stream MATCHING): runs and the pairing lifecycle. Ids, county, reasons; no people."""

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from contracts.catalogue import Event
from contracts.vocabulary import CountyCode, RiskLevel

# Who turned a proposal down: the coordinator, or the people it concerns (a child or guardian may say no).
DeclinedBy = Literal["coordinator", "volunteer", "child", "guardian"]
DeclineReason = Literal[
    "not_suitable", "distance", "language", "availability", "child_preference", "guardian_preference", "other"
]
# Why a pairing ended (MENTOR, Elements of Effective Practice: closure). The matching service closes pairings for
# `child_left_programme` itself; a `safeguarding_concern` bars the pair from ever being proposed again.
ClosureReason = Literal[
    "goals_met",
    "child_moved",
    "volunteer_moved",
    "volunteer_withdrew",
    "child_or_guardian_withdrew",
    "child_left_programme",
    "volunteer_ineligible",
    "safeguarding_concern",
    "other",
]
# Why a confirmed pairing is on hold: one side may not be paired for now (an expired check, withdrawn consent), or
# the child's risk rose to high and the volunteer is neither a social worker nor a child director.
SuspensionReason = Literal["volunteer_ineligible", "child_ineligible", "volunteer_not_qualified"]
# Why a proposal was withdrawn before anyone decided on it.
WithdrawalReason = Literal[
    "volunteer_ineligible", "child_ineligible", "volunteer_not_qualified", "child_left_programme"
]
UnpairedReason = Literal[
    "child_not_eligible",
    "has_open_pairing",
    "no_eligible_volunteer",
    "no_qualified_volunteer",
    "all_at_capacity",
    "only_declined_pairs",
    "places_went_to_others",
]


class MatchingRunCompleted(Event):
    """A coordinator's run over a county: how many children it proposed a volunteer for, and how many it could not."""

    type_name: ClassVar[str] = "matching.run.completed.v1"

    run_id: UUID
    county_code: CountyCode
    proposed: dict[RiskLevel, int]
    unpaired: dict[UnpairedReason, int]
    fit: int = Field(ge=0, description="total fit of the proposals, the run's second objective")


class PairingProposed(Event):
    type_name: ClassVar[str] = "matching.pairing.proposed.v1"

    pairing_id: UUID
    run_id: UUID
    child_id: UUID
    volunteer_id: UUID
    county_code: CountyCode
    risk_level: RiskLevel
    score: int
    score_parts: dict[str, int]
    expires_at: datetime


class PairingConfirmed(Event):
    type_name: ClassVar[str] = "matching.pairing.confirmed.v1"

    pairing_id: UUID
    child_id: UUID
    volunteer_id: UUID
    county_code: CountyCode


class PairingDeclined(Event):
    type_name: ClassVar[str] = "matching.pairing.declined.v1"

    pairing_id: UUID
    child_id: UUID
    volunteer_id: UUID
    county_code: CountyCode
    declined_by: DeclinedBy
    reason: DeclineReason


class PairingLapsed(Event):
    """Nobody confirmed the proposal in time; the volunteer's place is free again and the pair may be proposed again."""

    type_name: ClassVar[str] = "matching.pairing.lapsed.v1"

    pairing_id: UUID
    child_id: UUID
    volunteer_id: UUID
    county_code: CountyCode


class PairingWithdrawn(Event):
    """A proposal taken back because one side may no longer be paired."""

    type_name: ClassVar[str] = "matching.pairing.withdrawn.v1"

    pairing_id: UUID
    child_id: UUID
    volunteer_id: UUID
    county_code: CountyCode
    reason: WithdrawalReason


class PairingSuspended(Event):
    """On hold, with why; suspended again when the reason changes (the other side became the obstacle)."""

    type_name: ClassVar[str] = "matching.pairing.suspended.v1"

    pairing_id: UUID
    child_id: UUID
    volunteer_id: UUID
    county_code: CountyCode
    reason: SuspensionReason


class PairingResumed(Event):
    type_name: ClassVar[str] = "matching.pairing.resumed.v1"

    pairing_id: UUID
    child_id: UUID
    volunteer_id: UUID
    county_code: CountyCode


class PairingClosed(Event):
    type_name: ClassVar[str] = "matching.pairing.closed.v1"

    pairing_id: UUID
    child_id: UUID
    volunteer_id: UUID
    county_code: CountyCode
    reason: ClosureReason
