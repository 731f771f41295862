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
        "item": N_("Wish"),
        "estimated_value_yuan": N_("Estimated value (yuan)"),
        "campaign_id": N_("Campaign"),
        "phone": N_("Phone"),
        "kind": N_("Kind"),
        "capacity": N_("Children at once"),
        "skills": N_("Skills"),
        "availability": N_("Availability"),
        # accounts and campaigns (pages/admin.py)
        "login": N_("Login"),
        "role": N_("Role"),
        "counties": N_("County codes"),
        "person_id": N_("Registered person (id)"),
        "starts_on": N_("Starts on"),
        "ends_on": N_("Ends on"),
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
    "leaving_reason": {
        "aged_out": N_("Came of age"),
        "moved": N_("Moved away"),
        "family_reunited": N_("Reunited with the family"),
        "adopted": N_("Adopted"),
        "deceased": N_("Deceased"),
        "other": N_("Other reason"),
    },
    "consent_scope": {
        "pairing": N_("Pairing with a volunteer"),
        "home_visits": N_("Home visits"),
        "wishes": N_("Micro-wishes"),
        "aid": N_("Campaign aid"),
    },
    "child_event": {
        "registered": N_("Registered"),
        "personal_data_erased": N_("Personal data erased"),
        "risk_changed": N_("Risk level changed"),
        "needs_changed": N_("Needs changed"),
        "guardianship_changed": N_("Guardianship changed"),
        "left_programme": N_("Left the programme"),
        "consent_recorded": N_("Guardian's consent recorded"),
        "consent_withdrawn": N_("Guardian's consent withdrawn"),
        "pairing_eligibility_changed": N_("Whether the child may be paired changed"),
        "purposes_changed": N_("What the data may be used for changed"),
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
    # Matching and visits (pages/matching.py, pages/visits.py): contracts.matching's vocabularies.
    "pairing_status": {
        "proposed": N_("Proposed"),
        "confirmed": N_("Confirmed"),
        "suspended": N_("Suspended"),
        "declined": N_("Declined"),
        "lapsed": N_("Lapsed unconfirmed"),
        "withdrawn": N_("Withdrawn"),
        "closed": N_("Closed"),
    },
    "unpaired_reason": {
        "child_not_eligible": N_("The child may not be paired now (see the child's record)"),
        "has_open_pairing": N_("Already proposed or paired"),
        "no_eligible_volunteer": N_("No volunteer of the county is screened and trained"),
        "no_qualified_volunteer": N_("Needs a social worker or child director, and none is free"),
        "all_at_capacity": N_("Every suitable volunteer is at capacity"),
        "only_declined_pairs": N_("Every volunteer with a place was declined for this child before"),
        "places_went_to_others": N_("The places went to children of higher risk or a better fit"),
    },
    "declined_by": {
        "coordinator": N_("The coordinator"),
        "volunteer": N_("The volunteer"),
        "child": N_("The child"),
        "guardian": N_("The guardian"),
    },
    "decline_reason": {
        "not_suitable": N_("Not suitable"),
        "distance": N_("Too far away"),
        "language": N_("No shared language"),
        "availability": N_("Not available"),
        "child_preference": N_("The child's preference"),
        "guardian_preference": N_("The guardian's preference"),
        "other": N_("Other reason"),
    },
    "closure_reason": {
        "goals_met": N_("Goals met"),
        "child_moved": N_("The child moved away"),
        "volunteer_moved": N_("The volunteer moved away"),
        "volunteer_withdrew": N_("The volunteer withdrew"),
        "child_or_guardian_withdrew": N_("The child or guardian withdrew"),
        "child_left_programme": N_("The child left the programme"),
        "volunteer_ineligible": N_("The volunteer may no longer be paired"),
        "safeguarding_concern": N_("Safeguarding concern"),
        "other": N_("Other reason"),
    },
    "suspension_reason": {
        "volunteer_ineligible": N_("The volunteer may not be paired for now"),
        "child_ineligible": N_("The child may not be paired for now"),
        "volunteer_not_qualified": N_("The child now needs a social worker or child director"),
    },
    "withdrawal_reason": {
        "volunteer_ineligible": N_("The volunteer may not be paired for now"),
        "child_ineligible": N_("The child may not be paired for now"),
        "volunteer_not_qualified": N_("The child now needs a social worker or child director"),
        "child_left_programme": N_("The child left the programme"),
    },
    "contact_kind": {
        "visit": N_("Home visit"),
        "call": N_("Phone call"),
        "video_call": N_("Video call"),
        "family_call": N_("Call with the family"),
        "tutoring": N_("Tutoring"),
        "counselling": N_("Counselling"),
        "birthday": N_("Birthday"),
        "gift": N_("Gift"),
    },
    "visitor": {
        "volunteer": N_("The paired volunteer"),
        "child_director": N_("Child director"),
        "cadre": N_("Visiting cadre"),
        "social_worker": N_("Social worker"),
        "coordinator": N_("Coordinator"),
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
        "child_director": N_("Child director"),
        "volunteer": N_("Volunteer"),
        "donor": N_("Donor"),
        "service": N_("Service"),
    },
    # Wishes and campaign figures (pages/wishes.py): contracts.matching's and contracts.campaigns' vocabularies.
    "wish_category": {
        "study": N_("For school"),
        "clothing": N_("Clothing"),
        "daily_use": N_("Daily use"),
        "toy": N_("Toy"),
        "book": N_("Books"),
        "sports": N_("Sports"),
        "other": N_("Other"),
    },
    "wish_status": {
        "posted": N_("On the board"),
        "claimed": N_("Claimed"),
        "fulfilled": N_("Fulfilled"),
        "acknowledged": N_("Thanked"),
        "withdrawn": N_("Withdrawn"),
    },
    "wish_child": {"girl": N_("Girl"), "boy": N_("Boy"), "child": N_("Child")},
    "aid_kind": {
        "warm_pack": N_("Warm packs"),
        "winter_clothes": N_("Winter clothes"),
        "health_pack": N_("Health packs"),
        "school_supplies": N_("School supplies"),
        "allowance": N_("Allowances"),
        "visit_money": N_("Visit money"),
        "other": N_("Other aid"),
    },
    # Volunteers (pages/volunteers.py): a vetting step's result, and why a volunteer may not be paired (the
    # registry's reasons, read by pages.volunteers.reason_of; %(step)s is the step's label, %(date)s its expiry).
    "screening_result": {"passed": N_("Passed"), "failed": N_("Failed")},
    "volunteer_reason": {
        "not_done": N_("%(step)s: not done"),
        "failed": N_("%(step)s: failed"),
        "expired": N_("%(step)s: expired on %(date)s"),
        "no_expiry": N_("%(step)s: passed without an expiry date"),
        "no_current_training": N_("No current training"),
        "erased": N_("Personal data erased"),
    },
    # Accounts (pages/admin.py).
    "account_state": {"invited": N_("Invited"), "active": N_("Active"), "disabled": N_("Disabled")},
    # The inbox (pages/inbox.py): why a notice was sent, as its line in the list says it (it names nobody).
    "notice_reason": {
        "child_registered": N_("Child registered"),
        "pairing_proposed": N_("Pairing proposed"),
        "pairing_confirmed": N_("Pairing confirmed"),
        "pairing_suspended": N_("Pairing suspended"),
        "pairing_closed": N_("Pairing closed"),
        "visit_overdue": N_("Visit overdue"),
        "overdue_escalated": N_("Overdue visit escalated"),
        "visit_due_tomorrow": N_("Visit due tomorrow"),
        "wish_claimed": N_("Wish claimed"),
        "wish_fulfilled": N_("Wish fulfilled"),
        "wish_thanked": N_("Thanks for a wish"),
        "claim_lapsing": N_("Claim about to lapse"),
        "aid_distributed": N_("Aid handed out"),
        "screening_expiring": N_("Screening expiring"),
        "screening_expired": N_("Screening expired"),
        "training_expiring": N_("Training expiring"),
        "training_expired": N_("Training expired"),
        "invitation": N_("Account invitation"),
        "password_reset": N_("Password reset"),
    },
    # Messages sent (pages/messages.py): the outward channels a notice goes through.
    "channel": {"sms": N_("SMS"), "email": N_("Email")},
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
    "occurred_at": N_("The date and time it happened (China time), not in the future."),
    "duration_minutes": N_("How long it took, in whole minutes (0 to 1440)."),
    "note": N_("A note of up to 2000 characters."),
    "high_days": N_("Days between visits for high risk: 1 to 90, no more than for medium risk."),
    "medium_days": N_("Days between visits for medium risk: 1 to 180, between the high and low risk days."),
    "low_days": N_("Days between visits for low risk: 1 to 365, no fewer than for medium risk."),
    "item": N_("The gift in a few words (up to 40 characters), such as a school bag; nothing about the child."),
    "estimated_value_yuan": N_("An amount in yuan from 0 to 100000, such as 80 or 79.50."),
    "campaign_id": N_("Choose a campaign that covers the child's county, or none."),
    # volunteers (pages/volunteers.py)
    "phone": N_("A mobile number of 11 digits, or a landline with its area code."),
    "capacity": N_("A whole number of children from 1 to 20."),
    "availability": N_("When they can visit, in up to 200 characters."),
    "checked_at": N_("The date of the check, not in the future."),
    "completed_at": N_("The date the course was completed, not in the future."),
    "expires_at": N_("The date until which it counts, after the date it was done; a pass needs one."),
    "course": N_("The course's name, up to 100 characters."),
    "served_on": N_("The day of the service, not in the future."),
    "hours": N_("Hours on that day: more than 0, at most 24, such as 2 or 1.5."),
    # accounts and campaigns (pages/admin.py), campaign aid (pages/aid.py)
    "login": N_("A mobile number of 11 digits; an admin's or a service's may be a name of 3 to 32 letters or digits."),
    "role": N_("Choose the account's role."),
    "counties": N_("Six-digit county codes of Guangxi separated by spaces, such as 450325 450721."),
    "person_id": N_("The id of the volunteer's or donor's registration, for those roles only; else leave it empty."),
    "starts_on": N_("The first day of the campaign, such as 2024-01-10."),
    "ends_on": N_("The last day of the campaign, on or after its first day."),
    "goals": N_("Whole numbers from 1 up, or leave a goal empty."),
    "quantity": N_("A whole number of items per child, from 1 to 1000."),
    "value_yuan": N_("The value per child in yuan, from 0 to 100000, such as 80 or 79.50."),
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
