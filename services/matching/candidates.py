"""Who could be paired, per county, folded from registry events: children and volunteers with their eligibility,
and what each child's data may be processed for (the purposes a guardian consented to for a child under 14).

The matching service never reads the registry's database; eligibility and purposes come as the registry decided them.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, Index, Integer, String, Table, Uuid, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from backbone.database import UtcDateTime
from backbone.errors import ApiError
from backbone.projection import Delivered, Projection
from contracts.campaigns import CampaignCreated, DonorRegistered
from contracts.registry import (
    ChildLeftProgramme,
    ChildNeedsChanged,
    ChildPairingEligibilityChanged,
    ChildPersonalDataErased,
    ChildPurposesChanged,
    ChildRegistered,
    ChildRiskChanged,
)
from contracts.vocabulary import ConsentScope
from contracts.volunteers import (
    VolunteerCapacityChanged,
    VolunteerEligibilityChanged,
    VolunteerPersonalDataErased,
    VolunteerRegistered,
)
from services.matching.views import Views


class CandidateChild(Views):
    __tablename__ = "candidate_children"
    __table_args__ = (
        Index("ix_candidate_children_county", "county_code", "eligible"),
        # the view's pages: a county's children still in the programme (or those who left) in order of id
        Index("ix_candidate_children_county_page", "county_code", "active", "child_id"),
    )

    child_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    county_code: Mapped[str] = mapped_column(String(6))
    risk_level: Mapped[str] = mapped_column(String(8))
    category: Mapped[str] = mapped_column(String(32))
    age_band: Mapped[str] = mapped_column(String(8))
    needs: Mapped[list[Any]] = mapped_column(JSON)
    languages: Mapped[list[Any]] = mapped_column(JSON)
    flags: Mapped[list[Any]] = mapped_column(JSON)
    township_key: Mapped[str | None] = mapped_column(String(16), nullable=True)
    village_key: Mapped[str | None] = mapped_column(String(16), nullable=True)
    eligible: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    gender: Mapped[str | None] = mapped_column(String(8), nullable=True)
    # what the registry allows the child's data to be processed for (consent scopes); none until it says so
    purposes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    erased: Mapped[bool] = mapped_column(Boolean, default=False)  # the registry erased the child's personal data


class KnownCampaign(Views):
    """The registry's campaigns: contacts, wishes and aid may be tagged only with one of these, in its counties."""

    __tablename__ = "known_campaigns"

    campaign_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    counties: Mapped[list[Any]] = mapped_column(JSON)


class CandidateVolunteer(Views):
    __tablename__ = "candidate_volunteers"
    __table_args__ = (Index("ix_candidate_volunteers_county", "county_code", "eligible"),)

    volunteer_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    county_code: Mapped[str] = mapped_column(String(6))
    kind: Mapped[str] = mapped_column(String(32))
    skills: Mapped[list[Any]] = mapped_column(JSON)
    languages: Mapped[list[Any]] = mapped_column(JSON)
    capacity: Mapped[int] = mapped_column(Integer)
    township_key: Mapped[str | None] = mapped_column(String(16), nullable=True)
    village_key: Mapped[str | None] = mapped_column(String(16), nullable=True)
    eligible: Mapped[bool] = mapped_column(Boolean, default=False)
    erased: Mapped[bool] = mapped_column(Boolean, default=False)  # the registry erased the volunteer's personal data


_CHILD_FIELDS = {
    "child_id", "county_code", "risk_level", "category", "age_band", "needs", "languages", "flags", "township_key",
    "village_key", "gender",
}  # fmt: skip
# Called in the projection's transaction with the children (registered, risk, eligibility, leaving, erasure) and
# volunteers (eligibility, erasure) that changed in the batch.
Changed = Callable[[AsyncConnection, set[uuid.UUID], set[uuid.UUID]], Awaitable[object]]


class KnownDonor(Views):
    """The registry's donors: aid may name only one of these as its giver (ids and kinds; names stay sealed there)."""

    __tablename__ = "known_donors"

    donor_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))


class Candidates(Projection):
    """The candidate view; after each batch, `changed` hears whose eligibility, risk or presence moved."""

    name: ClassVar[str] = "matching-candidates"
    stream: ClassVar[str] = "REGISTRY"
    subjects: ClassVar[list[str]] = [
        "registry.child.>",
        "registry.volunteer.>",
        "registry.campaign.>",
        "registry.donor.>",
    ]
    views: ClassVar[list[Table]] = [
        CandidateChild.__table__,  # type: ignore[list-item]
        CandidateVolunteer.__table__,  # type: ignore[list-item]
        KnownCampaign.__table__,  # type: ignore[list-item]
        KnownDonor.__table__,  # type: ignore[list-item]
    ]

    def __init__(self, changed: Changed | None = None) -> None:
        self.changed = changed

    async def apply(self, conn: AsyncConnection, events: Sequence[Delivered]) -> None:
        children: set[uuid.UUID] = set()
        volunteers: set[uuid.UUID] = set()
        registered: list[dict[str, Any]] = []  # consecutive registrations go in one statement
        for delivered in events:
            if isinstance(child := delivered.event, ChildRegistered):
                registered.append(
                    {
                        **child.model_dump(include=_CHILD_FIELDS),
                        "eligible": False,
                        "active": True,
                        "registered_at": delivered.envelope.time,
                        "purposes": [],
                        "erased": False,
                    }
                )
                children.add(child.child_id)
                continue
            if registered:
                await conn.execute(insert(CandidateChild), registered)
                registered = []
            match delivered.event:
                case ChildRiskChanged(child_id=child_id, risk_level=risk_level):
                    await self._child(conn, child_id, risk_level=risk_level)
                    children.add(child_id)
                case ChildNeedsChanged(child_id=child_id, needs=needs):
                    await self._child(conn, child_id, needs=needs)
                case ChildLeftProgramme(child_id=child_id):
                    await self._child(conn, child_id, active=False)
                    children.add(child_id)
                case ChildPairingEligibilityChanged(child_id=child_id, eligible=eligible):
                    await self._child(conn, child_id, eligible=eligible)
                    children.add(child_id)
                case ChildPersonalDataErased(child_id=child_id):
                    await self._child(conn, child_id, erased=True)
                    children.add(child_id)
                case ChildPurposesChanged(child_id=child_id, allowed=allowed):
                    await self._child(conn, child_id, purposes=sorted(allowed))
                    children.add(child_id)
                case VolunteerRegistered() as volunteer:
                    await conn.execute(
                        insert(CandidateVolunteer).values(
                            volunteer_id=volunteer.volunteer_id,
                            county_code=volunteer.county_code,
                            kind=volunteer.kind,
                            skills=volunteer.skills,
                            languages=volunteer.languages,
                            capacity=volunteer.capacity,
                            township_key=volunteer.township_key,
                            village_key=volunteer.village_key,
                            eligible=False,
                            erased=False,
                        )
                    )
                case VolunteerEligibilityChanged(volunteer_id=volunteer_id, eligible=eligible):
                    await self._volunteer(conn, volunteer_id, eligible=eligible)
                    volunteers.add(volunteer_id)
                case VolunteerPersonalDataErased(volunteer_id=volunteer_id):
                    await self._volunteer(conn, volunteer_id, erased=True)
                    volunteers.add(volunteer_id)
                case VolunteerCapacityChanged(volunteer_id=volunteer_id, capacity=capacity):
                    await self._volunteer(conn, volunteer_id, capacity=capacity)
                case CampaignCreated(campaign_id=campaign_id, counties=counties):
                    await conn.execute(insert(KnownCampaign).values(campaign_id=campaign_id, counties=counties))
                case DonorRegistered(donor_id=donor_id, kind=kind):
                    await conn.execute(insert(KnownDonor).values(donor_id=donor_id, kind=kind))

        if registered:
            await conn.execute(insert(CandidateChild), registered)
        if self.changed is not None and (children or volunteers):
            await self.changed(conn, children, volunteers)

    async def _child(self, conn: AsyncConnection, child_id: uuid.UUID, **values: Any) -> None:
        await conn.execute(update(CandidateChild).where(CandidateChild.child_id == child_id).values(**values))

    async def _volunteer(self, conn: AsyncConnection, volunteer_id: uuid.UUID, **values: Any) -> None:
        await conn.execute(
            update(CandidateVolunteer).where(CandidateVolunteer.volunteer_id == volunteer_id).values(**values)
        )


async def require_campaign(conn: AsyncConnection, campaign_id: uuid.UUID | None, county_code: str) -> None:
    """A 422 unless the campaign is one the registry created and it covers the county (None: untagged, fine)."""
    if campaign_id is None:
        return
    counties = await conn.scalar(select(KnownCampaign.counties).where(KnownCampaign.campaign_id == campaign_id))
    if counties is None:
        raise ApiError(422, "unknown_campaign", f"no campaign {campaign_id} known to matching")
    if county_code not in counties:
        raise ApiError(422, "campaign_not_in_county", f"campaign {campaign_id} does not cover county {county_code}")


def allows(child: Row[Any], purpose: ConsentScope) -> bool:
    """Whether the registry allows processing the child's data for `purpose` (from 14, or with a guardian's consent)."""
    return purpose in (child.purposes or ())


def require_purpose(children: Sequence[Row[Any]], purpose: ConsentScope) -> None:
    """A 409 naming every child whose data may not be processed for `purpose`: nothing is done for any of them."""
    if refused := [child.child_id for child in children if not allows(child, purpose)]:
        raise no_consent(purpose, refused, len(children))


def no_consent(purpose: ConsentScope, refused: Sequence[uuid.UUID], of: int = 1) -> ApiError:
    who = "the child" if of == 1 else f"{len(refused)} of the {of} children"
    return ApiError(
        409,
        "no_consent",
        f"no consent to {purpose} for {who}: under 14, a child's data is processed for {purpose} only with a"
        " guardian's consent to it",
        {"purpose": purpose, "child_ids": sorted(str(child_id) for child_id in refused)},
    )


async def require_donor(conn: AsyncConnection, donor_id: uuid.UUID | None) -> None:
    """A 422 unless the donor is one the registry registered (None: no donor named, fine)."""
    if (
        donor_id is not None
        and await conn.scalar(select(KnownDonor.kind).where(KnownDonor.donor_id == donor_id)) is None
    ):
        raise ApiError(422, "unknown_donor", f"no donor {donor_id} known to matching")
