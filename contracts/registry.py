"""Events of the registry context (stream REGISTRY). No personal data: ids, county, category, risk, bands."""

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import Field

from contracts.catalogue import Event, upcaster
from contracts.vocabulary import (
    AgeBand,
    Category,
    ConsentScope,
    CountyCode,
    Flag,
    Gender,
    Guardianship,
    Language,
    LeavingReason,
    Need,
    PlaceKey,
    RiskLevel,
    age_band,
)


class ChildRegisteredV1(Event):
    """Superseded by v2: v1 carried the child's exact age, which the bus should not."""

    type_name: ClassVar[str] = "registry.child.registered.v1"
    current: ClassVar[bool] = False

    child_id: UUID
    county_code: CountyCode
    category: Category
    risk_level: RiskLevel
    age: int = Field(ge=0, le=17)
    needs: list[Need] = []


class ChildRegistered(Event):
    """A child entered the programme in a county."""

    type_name: ClassVar[str] = "registry.child.registered.v2"

    child_id: UUID
    county_code: CountyCode
    category: Category
    risk_level: RiskLevel
    age_band: AgeBand
    needs: list[Need] = []
    languages: list[Language] = []
    flags: list[Flag] = []
    guardianship: Guardianship | None = None  # absent from the first v2 events
    township_key: PlaceKey | None = None  # absent from the first v2 events, and when the township is unknown
    village_key: PlaceKey | None = None
    gender: Gender | None = None  # absent from the first v2 events; a wish on the board says "girl, 9-11"


@upcaster(ChildRegisteredV1.type_name, ChildRegistered.type_name)
def _child_registered_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    upgraded = {key: value for key, value in data.items() if key != "age"}
    upgraded["age_band"] = age_band(int(data["age"]))
    return upgraded


class ChildPersonalDataErased(Event):
    """The child's personal data was erased (its key destroyed); the child still counts in every figure."""

    type_name: ClassVar[str] = "registry.child.personal_data_erased.v1"

    child_id: UUID


class ChildRiskChanged(Event):
    """A coordinator re-assessed the child's risk; the reason stays sealed in the registry."""

    type_name: ClassVar[str] = "registry.child.risk_changed.v1"

    child_id: UUID
    county_code: CountyCode
    previous_risk_level: RiskLevel
    risk_level: RiskLevel


class ChildNeedsChanged(Event):
    type_name: ClassVar[str] = "registry.child.needs_changed.v1"

    child_id: UUID
    needs: list[Need]


class ChildGuardianshipChanged(Event):
    """Who cares for the child changed (e.g. the county's minor-protection centre took temporary guardianship)."""

    type_name: ClassVar[str] = "registry.child.guardianship_changed.v1"

    child_id: UUID
    guardianship: Guardianship


class ChildLeftProgramme(Event):
    type_name: ClassVar[str] = "registry.child.left_programme.v1"

    child_id: UUID
    reason: LeavingReason


class GuardianConsentRecorded(Event):
    """A guardian consented to the processing of a child under 14 (PIPL Art. 31) for these purposes."""

    type_name: ClassVar[str] = "registry.child.consent_recorded.v1"

    child_id: UUID
    scope: list[ConsentScope]


class GuardianConsentWithdrawn(Event):
    type_name: ClassVar[str] = "registry.child.consent_withdrawn.v1"

    child_id: UUID


class ChildPairingEligibilityChanged(Event):
    """Whether the child may be proposed a volunteer now, and if not, why; matching takes this as it is."""

    type_name: ClassVar[str] = "registry.child.pairing_eligibility_changed.v1"

    child_id: UUID
    eligible: bool
    reasons: list[str] = []


class ChildPurposesChanged(Event):
    """What the child's data may now be processed for beyond the minimum record (PIPL Art. 28/31): every purpose
    from 14, under 14 only what a guardian consented to. Until the first of these a child has none; matching refuses
    a wish, aid or an in-person contact in a pairing for a purpose not allowed."""

    type_name: ClassVar[str] = "registry.child.purposes_changed.v1"

    child_id: UUID
    allowed: list[ConsentScope]


LinkRole = Literal["admin", "coordinator", "volunteer", "donor", "child_director"]  # every account's but a service's


class LinkIssued(Event):
    """A one-time link to choose a password was made for an account: an invitation (the account is new, or coming
    back) or a password reset. It carries no token and no contact: the notifications service asks the registry for
    both at send time (recipient `link:<link_id>` in POST /contacts/lookup), while the link still works."""

    type_name: ClassVar[str] = "registry.link.issued.v1"

    link_id: UUID
    account_id: UUID
    kind: Literal["invitation", "reset"]
    role: LinkRole
    county_code: CountyCode | None = None  # the account's first county; none for an admin or a donor
    expires_at: datetime
