"""The programme's words, as the values events and APIs carry (see DESIGN.md, "Domain words")."""

from typing import Annotated, Literal

from pydantic import StringConstraints

Category = Literal["orphan", "de_facto_unsupported", "left_behind", "in_difficulty"]
RiskLevel = Literal["low", "medium", "high"]
Gender = Literal["female", "male"]
Guardianship = Literal["parents", "grandparents", "relative", "institution", "temporary_state"]
LeavingReason = Literal["aged_out", "moved", "family_reunited", "adopted", "deceased", "other"]
# What a guardian may consent to for a child under 14, beyond the minimum record the law requires.
ConsentScope = Literal["pairing", "home_visits", "wishes", "aid"]
CONSENT_AGE = 14
Need = Literal["tutoring", "psychological", "companionship", "material", "safety", "family_calls"]
AgeBand = Literal["0-2", "3-5", "6-8", "9-11", "12-14", "15-17"]
CountyCode = Annotated[str, StringConstraints(pattern=r"^[1-8][0-9]{5}$")]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,12}$")]
Flag = Literal["drug_involved_family", "cross_border_marriage_family"]
# A township or village as a keyed token (see the registry's `places`): equal for the same place, revealing none.
PlaceKey = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]

AGE_BANDS: tuple[tuple[int, int, AgeBand], ...] = (
    (0, 2, "0-2"),
    (3, 5, "3-5"),
    (6, 8, "6-8"),
    (9, 11, "9-11"),
    (12, 14, "12-14"),
    (15, 17, "15-17"),
)


def age_band(age: int) -> AgeBand:
    """The band an age in whole years falls in; the bus never carries the age itself."""
    for low, high, band in AGE_BANDS:
        if low <= age <= high:
            return band
    raise ValueError(f"age {age} is outside 0..17")
