"""Events of the matching context (stream MATCHING): runs, pairings, visits, contacts, wishes, aid. Ids, no people."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import Field, StringConstraints

from contracts.campaigns import AidKind
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


ContactKind = Literal["visit", "call", "video_call", "family_call", "tutoring", "counselling", "birthday", "gift"]
# Who made contact: the paired volunteer, or someone visiting outside a pairing (the county's child director, a
# visiting cadre, a social worker, the coordinator).
Visitor = Literal["volunteer", "child_director", "cadre", "social_worker", "coordinator"]
# Who may visit a child outside a pairing: officials doing a statutory duty, never a volunteer on their own.
Official = Literal["child_director", "cadre", "social_worker", "coordinator"]
# Why a child's next in-person contact is due when it is.
DueBecause = Literal["registered", "risk_changed", "visited", "policy_changed", "left_programme"]


class ChildVisitDue(Event):
    """When the child's next in-person contact is due (None: no longer, the child left the programme)."""

    type_name: ClassVar[str] = "matching.child.visit_due.v1"

    child_id: UUID
    county_code: CountyCode
    risk_level: RiskLevel
    due_at: datetime | None
    because: DueBecause


class ChildOverdue(Event):
    """The child's in-person contact is past due; a high-risk child is escalated to the county's child director."""

    type_name: ClassVar[str] = "matching.child.overdue.v1"

    child_id: UUID
    county_code: CountyCode
    risk_level: RiskLevel
    due_at: datetime
    escalated_to: Literal["child_director"] | None = None


class ContactRecorded(Event):
    """A visit, call or other contact with a child; the note, if any, stays in the matching service."""

    type_name: ClassVar[str] = "matching.contact.recorded.v1"

    contact_id: UUID
    child_id: UUID
    county_code: CountyCode
    pairing_id: UUID | None = None
    volunteer_id: UUID | None = None
    visitor: Visitor
    kind: ContactKind
    in_person: bool
    occurred_at: datetime
    duration_minutes: int = Field(ge=0, le=24 * 60)
    campaign_id: UUID | None = None


class VisitPolicyChanged(Event):
    """A county's own visit intervals (days between in-person contacts per risk level); every schedule re-planned."""

    type_name: ClassVar[str] = "matching.county.visit_policy_changed.v1"

    county_code: CountyCode
    high_days: int = Field(ge=1, le=90)
    medium_days: int = Field(ge=1, le=180)
    low_days: int = Field(ge=1, le=365)

    def aggregate_id(self) -> str:
        return f"county-{self.county_code}"


WishCategory = Literal["study", "clothing", "daily_use", "toy", "book", "sports", "other"]
# `no_consent`: the child's data may no longer be shown for wishes (a guardian withdrew consent, or it was erased).
WishWithdrawalReason = Literal["no_longer_needed", "child_left_programme", "no_consent", "duplicate", "other"]
# What a donor sees on the board, and all the bus carries of a wish: a short item, never a note about the child.
WishItem = Annotated[str, StringConstraints(min_length=1, max_length=40, strip_whitespace=True)]
Yuan = Annotated[Decimal, Field(ge=0, le=100_000, max_digits=8, decimal_places=2)]


class WishPosted(Event):
    """A micro-wish (微心愿) for a child, put on the board; donors see it as "girl, 9-11, Xing'an: a school bag"."""

    type_name: ClassVar[str] = "matching.wish.posted.v1"

    wish_id: UUID
    child_id: UUID
    county_code: CountyCode
    item: WishItem
    category: WishCategory
    estimated_value_yuan: Yuan
    campaign_id: UUID | None = None


class WishClaimed(Event):
    """A donor took the wish off the board, to fulfil by the deadline."""

    type_name: ClassVar[str] = "matching.wish.claimed.v1"

    wish_id: UUID
    child_id: UUID
    county_code: CountyCode
    donor_id: str = Field(max_length=80)
    claim_deadline: datetime


class WishReleased(Event):
    """The claim ended unfulfilled (the donor gave it up, or its deadline passed): the wish is on the board again."""

    type_name: ClassVar[str] = "matching.wish.released.v1"

    wish_id: UUID
    child_id: UUID
    county_code: CountyCode
    donor_id: str = Field(max_length=80)
    lapsed: bool


class WishFulfilled(Event):
    """The gift reached the child, perhaps brought by the caring parent on a visit (that contact is linked)."""

    type_name: ClassVar[str] = "matching.wish.fulfilled.v1"

    wish_id: UUID
    child_id: UUID
    county_code: CountyCode
    donor_id: str = Field(max_length=80)
    contact_id: UUID | None = None


class WishAcknowledged(Event):
    """The child's side said thank you; the donor hears it without learning who the child is."""

    type_name: ClassVar[str] = "matching.wish.acknowledged.v1"

    wish_id: UUID
    child_id: UUID
    county_code: CountyCode
    donor_id: str = Field(max_length=80)


class WishWithdrawn(Event):
    type_name: ClassVar[str] = "matching.wish.withdrawn.v1"

    wish_id: UUID
    child_id: UUID
    county_code: CountyCode
    reason: WishWithdrawalReason


class AidDistributed(Event):
    """Goods or money given to a child under a campaign; the receipt number is the distribution's id."""

    type_name: ClassVar[str] = "matching.aid.distributed.v1"

    distribution_id: UUID
    child_id: UUID
    county_code: CountyCode
    campaign_id: UUID
    kind: AidKind
    quantity: int = Field(ge=1, le=1000)
    value_yuan: Yuan
    donor_id: UUID | None = None

    def aggregate_id(self) -> str:
        return str(self.distribution_id)  # matching appends a hand-out under its distribution's id (the receipt)
