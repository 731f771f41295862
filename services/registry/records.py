"""The registry's own tables: the current record of each child, personal fields included (never on the bus)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Index, MetaData, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backbone.database import UtcDateTime


class Records(DeclarativeBase):
    metadata = MetaData()


class ChildRecord(Records):
    __tablename__ = "children"
    __table_args__ = (Index("ix_children_county", "county_code", "registered_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[date] = mapped_column(Date)
    gender: Mapped[str] = mapped_column(String(8))
    category: Mapped[str] = mapped_column(String(32))
    county_code: Mapped[str] = mapped_column(String(6))
    township: Mapped[str] = mapped_column(String(100))
    village: Mapped[str] = mapped_column(String(100))
    risk_level: Mapped[str] = mapped_column(String(8))
    needs: Mapped[list[Any]] = mapped_column(JSON)
    languages: Mapped[list[Any]] = mapped_column(JSON)
    flags: Mapped[list[Any]] = mapped_column(JSON)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
