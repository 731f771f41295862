"""Who could be paired, per county, folded from registry events: children and volunteers with their eligibility,
and what each child's data may be processed for (the purposes a guardian consented to for a child under 14).

The matching service never reads the registry's database; eligibility and purposes come as the registry decided them.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, Index, Integer, String, Table, Uuid, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from backbone.database import UtcDateTime
from backbone.errors import ApiError
from backbone.projection import Delivered, Projection, insert_rows, update_rows
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
        """The batch folded into each row's last values first, then written set-wise: one statement per table (and
        per set of columns changed)."""
        fold = _Fold()
        for delivered in events:
            match delivered.event:
                case ChildRegistered() as child:
                    fold.new_children[child.child_id] = {
                        **child.model_dump(include=_CHILD_FIELDS),
                        "eligible": False,
                        "active": True,
                        "registered_at": delivered.envelope.time,
                        "purposes": [],
                        "erased": False,
                    }
                    fold.children.add(child.child_id)
                case ChildRiskChanged(child_id=child_id, risk_level=risk_level):
                    fold.child(child_id, risk_level=risk_level)
                case ChildNeedsChanged(child_id=child_id, needs=needs):
                    fold.child(child_id, moved=False, needs=needs)
                case ChildLeftProgramme(child_id=child_id):
                    fold.child(child_id, active=False)
                case ChildPairingEligibilityChanged(child_id=child_id, eligible=eligible):
                    fold.child(child_id, eligible=eligible)
                case ChildPersonalDataErased(child_id=child_id):
                    fold.child(child_id, erased=True)
                case ChildPurposesChanged(child_id=child_id, allowed=allowed):
                    fold.child(child_id, purposes=sorted(allowed))
                case VolunteerRegistered() as volunteer:
                    fold.new_volunteers[volunteer.volunteer_id] = {
                        **volunteer.model_dump(include=_VOLUNTEER_FIELDS),
                        "eligible": False,
                        "erased": False,
                    }
                case VolunteerEligibilityChanged(volunteer_id=volunteer_id, eligible=eligible):
                    fold.volunteer(volunteer_id, eligible=eligible)
                case VolunteerPersonalDataErased(volunteer_id=volunteer_id):
                    fold.volunteer(volunteer_id, erased=True)
                case VolunteerCapacityChanged(volunteer_id=volunteer_id, capacity=capacity):
                    fold.volunteer(volunteer_id, moved=False, capacity=capacity)
                case CampaignCreated(campaign_id=campaign_id, counties=counties):
                    fold.campaigns.append({"campaign_id": campaign_id, "counties": counties})
                case DonorRegistered(donor_id=donor_id, kind=kind):
                    fold.donors.append({"donor_id": donor_id, "kind": kind})
        await insert_rows(conn, CandidateChild, list(fold.new_children.values()))
        await update_rows(conn, CandidateChild, "child_id", fold.child_changes)
        await insert_rows(conn, CandidateVolunteer, list(fold.new_volunteers.values()))
        await update_rows(conn, CandidateVolunteer, "volunteer_id", fold.volunteer_changes)
        await insert_rows(conn, KnownCampaign, fold.campaigns)
        await insert_rows(conn, KnownDonor, fold.donors)
        if self.changed is not None and (fold.children or fold.volunteers):
            await self.changed(conn, fold.children, fold.volunteers)


_VOLUNTEER_FIELDS = {
    "volunteer_id", "county_code", "kind", "skills", "languages", "capacity", "township_key", "village_key",
}  # fmt: skip


@dataclass
class _Fold:
    """A batch's changes, each row's new or last values; `children`/`volunteers`: whose eligibility, risk or presence
    moved (what `changed` hears)."""

    new_children: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    child_changes: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    new_volunteers: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    volunteer_changes: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    donors: list[dict[str, Any]] = field(default_factory=list)
    children: set[uuid.UUID] = field(default_factory=set)
    volunteers: set[uuid.UUID] = field(default_factory=set)

    def child(self, child_id: uuid.UUID, *, moved: bool = True, **values: Any) -> None:
        """A change to a child registered in this batch goes into its row's insert; others become an update."""
        if child_id in self.new_children:
            self.new_children[child_id].update(values)
        else:
            self.child_changes.setdefault(child_id, {}).update(values)
        if moved:
            self.children.add(child_id)

    def volunteer(self, volunteer_id: uuid.UUID, *, moved: bool = True, **values: Any) -> None:
        if volunteer_id in self.new_volunteers:
            self.new_volunteers[volunteer_id].update(values)
        else:
            self.volunteer_changes.setdefault(volunteer_id, {}).update(values)
        if moved:
            self.volunteers.add(volunteer_id)


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
