"""The programme's words as a page shows them: each value of the contracts' vocabularies, marked for the catalogue
and translated in the reader's language where it is shown."""

from __future__ import annotations

from collections.abc import Callable

from services.console.i18n import N_

LABELS: dict[str, dict[str, str]] = {
    "category": {
        "orphan": N_("Orphan"),
        "de_facto_unsupported": N_("De facto unsupported child"),
        "left_behind": N_("Left-behind child"),
        "in_difficulty": N_("Other child in difficulty"),
    },
    "risk_level": {"high": N_("High risk"), "medium": N_("Medium risk"), "low": N_("Low risk")},
    "field": {
        "name": N_("Name"),
        "id_number": N_("ID number"),
        "birth_date": N_("Birth date"),
        "gender": N_("Gender"),
        "category": N_("Category"),
        "county_code": N_("County code"),
        "township": N_("Township"),
        "village": N_("Village"),
        "risk_level": N_("Risk"),
        "guardianship": N_("Guardianship"),
        "guardian_name": N_("Guardian's name"),
        "guardian_phone": N_("Guardian's phone"),
        "needs": N_("Needs"),
        "languages": N_("Languages"),
        "flags": N_("Special family situation"),
    },
    "gender": {"female": N_("Girl"), "male": N_("Boy")},
    "guardianship": {
        "parents": N_("Parents"),
        "grandparents": N_("Grandparents"),
        "relative": N_("Relative"),
        "institution": N_("Institution"),
        "temporary_state": N_("Temporary state guardianship"),
    },
    "need": {
        "tutoring": N_("Tutoring"),
        "psychological": N_("Psychological support"),
        "companionship": N_("Companionship"),
        "material": N_("Material help"),
        "safety": N_("Safety"),
        "family_calls": N_("Calls with family"),
    },
    "flag": {
        "drug_involved_family": N_("Drug-involved family"),
        "cross_border_marriage_family": N_("Cross-border marriage family"),
    },
    "language": {
        "zh": N_("Mandarin"),
        "zhuang": N_("Zhuang"),
        "yao": N_("Yao"),
        "miao": N_("Miao"),
        "dong": N_("Dong"),
    },
    "child_status": {"active": N_("In the programme"), "left": N_("Left the programme")},
    "volunteer_kind": {
        "caring_parent": N_("Caring parent"),
        "child_director": N_("Child director"),
        "social_worker": N_("Social worker"),
        "association_volunteer": N_("Association volunteer"),
        "enterprise_volunteer": N_("Enterprise volunteer"),
        "cadre": N_("Visiting cadre"),
    },
    "score_part": {
        "same_township": N_("Same township"),
        "same_village": N_("Same village"),
        "needs_met": N_("Skills meet the child's needs"),
        "shared_language": N_("Shared language"),
        "continuity": N_("Knows the child already"),
    },
    "screening_step": {
        "application": N_("Application"),
        "interview": N_("Interview"),
        "record_check": N_("Record check"),
        "references": N_("References"),
    },
    "role": {
        "admin": N_("Administrator"),
        "coordinator": N_("Coordinator"),
        "volunteer": N_("Volunteer"),
        "donor": N_("Donor"),
        "service": N_("Service"),
    },
}

# What a form says beside a field the API found wrong: what the field takes (the API's own words are English, and
# the console never repeats what was sent). "" is the form as a whole.
FIELD_HINTS: dict[str, str] = {
    "": N_(
        "Check that the birth date matches the ID number, and that the guardian's name and phone are given unless"
        " the state is the temporary guardian."
    ),
    "name": N_("Give the name, up to 100 characters."),
    "id_number": N_("An 18-character resident ID number with a valid check digit."),
    "birth_date": N_("A date such as 2015-03-01, not in the future, matching the ID number."),
    "county_code": N_("A six-digit county code of Guangxi, such as 450325."),
    "township": N_("Give the township, up to 100 characters."),
    "village": N_("Give the village, up to 100 characters."),
    "guardian_name": N_("Give the guardian's name, up to 100 characters."),
    "guardian_phone": N_("A mobile number of 11 digits, or a landline with its area code."),
}
DEFAULT_HINT = N_("Check this field.")


def hinter(gettext: Callable[[str], str]) -> Callable[[str], str]:
    def field_hint(name: str) -> str:
        return gettext(FIELD_HINTS.get(name, DEFAULT_HINT))

    return field_hint


def labeller(gettext: Callable[[str], str]) -> Callable[[str, str | None], str]:
    """`label(kind, value)` for templates: the value's label in the page's language (a value the console has no
    label for is shown as it is, so that a new value in an API never breaks a page)."""

    def label(kind: str, value: str | None) -> str:
        if value is None:
            return ""
        known = LABELS.get(kind, {}).get(value)
        return gettext(known) if known is not None else value

    return label
