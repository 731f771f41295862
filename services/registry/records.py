"""The registry's own tables: each child's current record; personal fields only sealed (see `vault`)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, Index, Integer, LargeBinary, MetaData, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backbone.database import UtcDateTime


class Records(DeclarativeBase):
    metadata = MetaData()


class ChildRecord(Records):
    __tablename__ = "children"
    __table_args__ = (Index("ix_children_county", "county_code", "registered_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    gender: Mapped[str] = mapped_column(String(8))
    category: Mapped[str] = mapped_column(String(32))
    county_code: Mapped[str] = mapped_column(String(6))
    risk_level: Mapped[str] = mapped_column(String(8))
    guardianship: Mapped[str] = mapped_column(String(16))
    age_band: Mapped[str] = mapped_column(String(8))
    needs: Mapped[list[Any]] = mapped_column(JSON)
    languages: Mapped[list[Any]] = mapped_column(JSON)
    flags: Mapped[list[Any]] = mapped_column(JSON)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(8), default="active")
    left_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    consent_scope: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    eligible_for_pairing: Mapped[bool] = mapped_column(Boolean, default=False)
    ineligible_reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # what the child's data may be processed for beyond the minimum (consent scopes), as last published
    allowed_purposes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # active minors: the timer looks at these for a 14th or 18th birthday
    watch_birthdays: Mapped[bool] = mapped_column(Boolean, default=False)
    # name, ID number, birth date, township, village, guardian's name and phone: encrypted with the child's key
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class VolunteerRecord(Records):
    __tablename__ = "volunteers"
    __table_args__ = (
        Index("ix_volunteers_county", "county_code", "registered_at"),
        Index("ix_volunteers_eligibility_due", "eligibility_changes_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    county_code: Mapped[str] = mapped_column(String(6))
    capacity: Mapped[int] = mapped_column(Integer)
    skills: Mapped[list[Any]] = mapped_column(JSON)
    languages: Mapped[list[Any]] = mapped_column(JSON)
    availability: Mapped[str | None] = mapped_column(String(200), nullable=True)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    screenings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the latest result per step
    trainings: Mapped[list[Any]] = mapped_column(JSON, default=list)
    eligible: Mapped[bool] = mapped_column(Boolean, default=False)
    ineligible_reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # when a pass or a training next expires: the timer looks at volunteers whose moment has come
    eligibility_changes_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    service_hours: Mapped[float] = mapped_column(Float, default=0.0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # name, phone, township, village: encrypted with the volunteer's own key
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class DonorRecord(Records):
    __tablename__ = "donors"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # name, contact person, phone


class CampaignRecord(Records):
    __tablename__ = "campaigns"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    counties: Mapped[list[Any]] = mapped_column(JSON)
    goals: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ImportFingerprint(Records):
    """A keyed hash of an imported person's identifying fields (see `fingerprints`)."""

    __tablename__ = "import_fingerprints"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
