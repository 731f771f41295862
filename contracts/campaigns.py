"""Donor and campaign events of the registry context (stream REGISTRY)."""

from datetime import date
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from contracts.catalogue import Event
from contracts.vocabulary import CountyCode

DonorKind = Literal["foundation", "enterprise", "association", "individual"]
AidKind = Literal["warm_pack", "winter_clothes", "health_pack", "school_supplies", "allowance", "visit_money", "other"]


class DonorRegistered(Event):
    """A donor joined; its name and contacts stay sealed in the registry (an individual's name is personal)."""

    type_name: ClassVar[str] = "registry.donor.registered.v1"

    donor_id: UUID
    kind: DonorKind


class CampaignCreated(Event):
    """A named period that contacts, wishes and aid are tagged with, e.g. 情暖新春 共护未来 2023-01-10..02-15."""

    type_name: ClassVar[str] = "registry.campaign.created.v1"

    campaign_id: UUID
    name: str = Field(min_length=1, max_length=100)
    starts_on: date
    ends_on: date
    counties: list[CountyCode] = Field(min_length=1)
    goals: dict[AidKind, int] = {}
