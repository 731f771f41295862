"""The child as the API takes it in (from a coordinator, or from each row of a CSV import)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from backbone.fields import Text
from contracts.counties import county
from contracts.vocabulary import Category, CountyCode, Flag, Gender, Guardianship, Language, Need, RiskLevel
from services.registry import domain
from services.registry.fields import IdNumber, Phone, birth_date_of
from services.registry.places import place_keys

PERSONAL = ("name", "id_number", "birth_date", "township", "village", "guardian_name", "guardian_phone")


def _known_county(code: str) -> str:
    if county(code) is None:
        raise ValueError("not a county code of Guangxi (GB/T 2260)")
    return code


KnownCounty = Annotated[CountyCode, AfterValidator(_known_county)]


class ChildIn(BaseModel):
    """A child as a coordinator registers it (and as each row of a CSV import is read)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Text
    id_number: IdNumber | None = None
    birth_date: date
    gender: Gender
    category: Category
    county_code: KnownCounty
    township: Text
    village: Text
    risk_level: RiskLevel
    guardianship: Guardianship
    guardian_name: Text | None = None
    guardian_phone: Phone | None = None
    needs: list[Need] = Field(default=[], max_length=6)
    languages: list[Language] = Field(default=["zh"], max_length=10)
    flags: list[Flag] = Field(default=[], max_length=2)

    @model_validator(mode="after")
    def _consistent(self) -> ChildIn:
        if self.id_number and birth_date_of(self.id_number) != self.birth_date:
            raise ValueError("the birth date differs from the one in the ID number")
        if self.guardianship != "temporary_state" and not (self.guardian_name and self.guardian_phone):
            raise ValueError("a guardian's name and phone are needed unless the state is the temporary guardian")
        return self


def child_command(child: ChildIn, today: date, secret: bytes) -> domain.RegisterChild:
    """The registration a coordinator's form or an import row asks for, with a new id."""
    return domain.RegisterChild(
        child_id=uuid.uuid4(),
        county_code=child.county_code,
        category=child.category,
        gender=child.gender,
        risk_level=child.risk_level,
        guardianship=child.guardianship,
        birth_date=child.birth_date,
        today=today,
        needs=tuple(child.needs),
        languages=tuple(child.languages),
        flags=tuple(child.flags),
        **place_keys(secret, child.county_code, child.township, child.village),
    )
