"""Events of the registry context (stream REGISTRY). No personal data: ids, county, category, risk, bands."""

from typing import Any, ClassVar
from uuid import UUID

from pydantic import Field

from contracts.catalogue import Event, upcaster
from contracts.vocabulary import AgeBand, Category, CountyCode, Flag, Guardianship, Language, Need, RiskLevel, age_band


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


@upcaster(ChildRegisteredV1.type_name, ChildRegistered.type_name)
def _child_registered_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    upgraded = {key: value for key, value in data.items() if key != "age"}
    upgraded["age_band"] = age_band(int(data["age"]))
    return upgraded


class ChildPersonalDataErased(Event):
    """The child's personal data was erased (its key destroyed); the child still counts in every figure."""

    type_name: ClassVar[str] = "registry.child.personal_data_erased.v1"

    child_id: UUID
