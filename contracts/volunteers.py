"""Volunteer events of the registry context (stream REGISTRY): vetting and eligibility, no personal data."""

from datetime import date, datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from contracts.catalogue import Event
from contracts.vocabulary import CountyCode, Language, Need, PlaceKey

VolunteerKind = Literal[
    "caring_parent", "child_director", "social_worker", "association_volunteer", "enterprise_volunteer", "cadre"
]
# Application, interview, the record query for people in close contact with minors (Minors Protection Law
# Art. 62) and references: every one must be passed and unexpired before a volunteer is paired.
ScreeningStep = Literal["application", "interview", "record_check", "references"]
SCREENING_STEPS: tuple[ScreeningStep, ...] = ("application", "interview", "record_check", "references")


class VolunteerRegistered(Event):
    type_name: ClassVar[str] = "registry.volunteer.registered.v1"

    volunteer_id: UUID
    kind: VolunteerKind
    county_code: CountyCode
    skills: list[Need] = []
    languages: list[Language] = []
    capacity: int = Field(ge=1, le=20)
    township_key: PlaceKey | None = None  # absent from the first events
    village_key: PlaceKey | None = None


class VolunteerCapacityChanged(Event):
    """How many children the volunteer can take on at once, from now on."""

    type_name: ClassVar[str] = "registry.volunteer.capacity_changed.v1"

    volunteer_id: UUID
    capacity: int = Field(ge=1, le=20)


class VolunteerScreeningRecorded(Event):
    type_name: ClassVar[str] = "registry.volunteer.screening_recorded.v1"

    volunteer_id: UUID
    step: ScreeningStep
    result: Literal["passed", "failed"]
    checked_at: date
    expires_at: date | None = None


class VolunteerTrainingRecorded(Event):
    type_name: ClassVar[str] = "registry.volunteer.training_recorded.v1"

    volunteer_id: UUID
    course: str = Field(min_length=1, max_length=100)
    completed_at: date
    expires_at: date | None = None


class VolunteerEligibilityChanged(Event):
    """Whether the volunteer may be paired now, and if not, why; matching takes this as it is."""

    type_name: ClassVar[str] = "registry.volunteer.eligibility_changed.v1"

    volunteer_id: UUID
    eligible: bool
    reasons: list[str] = []
    as_of: datetime


class VolunteerServiceRecorded(Event):
    """Hours of service on a day, for the volunteer's record and the campaign's figures."""

    type_name: ClassVar[str] = "registry.volunteer.service_recorded.v1"

    volunteer_id: UUID
    served_on: date
    hours: float = Field(gt=0, le=24)
    campaign_id: UUID | None = None


class VolunteerPersonalDataErased(Event):
    """The volunteer's personal data was erased (its key destroyed); the service hours still count."""

    type_name: ClassVar[str] = "registry.volunteer.personal_data_erased.v1"

    volunteer_id: UUID
