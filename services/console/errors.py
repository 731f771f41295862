"""The one place that turns a refusal into words: each API error code (and the console's own) as a message in the
catalogue, and the pages shown for refusals no page handles itself."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.i18n import N_
from services.console.upstream import ApiFailure
from services.console.web import Refused, SignInRequired, sign_in_url

log = structlog.get_logger("console")

MESSAGES: dict[str, str] = {
    "invalid_credentials": N_("The login or the password is wrong."),
    "try_later": N_("Too many attempts. Wait a moment and try again."),
    "unauthorized": N_("Your session has ended. Please sign in again."),
    "invalid_refresh_token": N_("Your session has ended. Please sign in again."),
    "forbidden": N_("You may not see or do this."),
    "not_found": N_("This record does not exist, or no longer exists."),
    "gone": N_("This record's personal data has been erased."),
    "conflict": N_("Someone changed this record meanwhile. Reload the page and try again."),
    "busy": N_("Others changed the same records at the same moment. Try again."),
    "invalid": N_("Some fields are not valid. Check the marked fields."),
    "payload_too_large": N_("The file is too large."),
    "unsupported_media_type": N_("This kind of file cannot be read."),
    "unreachable": N_("A service does not answer. Try again in a moment."),
    "keys_unavailable": N_("A service does not answer. Try again in a moment."),
    "csrf": N_("This form has expired. Reload the page and send it again."),
    "purpose_required": N_("State why you need this child's personal data."),
    "no_consent": N_("The guardian's consent for this is not recorded."),
    "wrong_password": N_("The current password is wrong."),
    "not_confirmed": N_("Tick the box to confirm first."),
    "empty_consent": N_("Choose what the consent is for."),
    "passwords_differ": N_("The two passwords differ. Type the same one twice."),
    "invalid_link": N_("This link is not valid: it was used already, has expired, or was replaced by a newer one."),
    "password_too_short": N_("The password is too short: at least 10 characters."),
    "password_common": N_("This password is a common one. Choose another."),
    "password_weak": N_("This password is easy to guess: make it longer, or use unrelated words."),
    # matching: runs, pairings, contacts, visit policies
    "county_busy": N_("The county's children or volunteers kept changing during the run. Run it again."),
    "county_too_large": N_("The county is too large for one run."),
    "unknown_children": N_("Some of these children are not in the programme in this county."),
    "candidates_rebuilding": N_("Matching is rebuilding its list of children and volunteers. Try again in a moment."),
    "pairing_proposed": N_("This pairing is still a proposal: confirm or decline it first."),
    "pairing_confirmed": N_("This pairing is already confirmed."),
    "pairing_suspended": N_("This pairing is suspended."),
    "pairing_declined": N_("This proposal was declined."),
    "pairing_lapsed": N_("This proposal was not confirmed in time. Run matching again."),
    "pairing_withdrawn": N_("This proposal was withdrawn."),
    "pairing_closed": N_("This pairing is closed."),
    "volunteer_not_eligible": N_("The volunteer may not be paired now (screening or training)."),
    "child_not_eligible": N_("The child may not be paired now."),
    "volunteer_not_qualified": N_("This child now needs a social worker or a child director."),
    "volunteer_at_capacity": N_("The volunteer has no place left."),
    "left_programme": N_("The child has left the programme."),
    "in_future": N_("A contact is logged after it happened: the time is in the future."),
    "unknown_visitor": N_("That visitor is not a volunteer of the child's county."),
    "visitor_mismatch": N_("The visitor's role does not match their record."),
    "unknown_campaign": N_("That campaign is not known."),
    "campaign_not_in_county": N_("That campaign does not cover the child's county."),
    "invalid_policy": N_("Higher risk means visits at least as often: high ≤ medium ≤ low days."),
    # wishes (pages/wishes.py) and imports (pages/imports.py)
    "wish_posted": N_("This wish is on the board: nobody has claimed it."),
    "wish_claimed": N_("This wish has been claimed already."),
    "wish_fulfilled": N_("This wish has been fulfilled already."),
    "wish_acknowledged": N_("This wish has been fulfilled and thanked already."),
    "wish_withdrawn": N_("This wish is no longer on the board."),
    "unknown_contact": N_("That visit is not one of this child's."),
    "import_refused": N_("The file cannot be imported:"),
    "one_file_expected": N_("Send one CSV file."),
    "bad_upload": N_("The upload could not be read. Send the file again."),
    "no_file": N_("Choose a CSV file to import."),
    "already_registered": N_("This person is registered already."),
    "birth_date_in_future": N_("The birth date lies in the future."),
    "not_a_minor": N_("The child is 18 or older: the programme serves children under 18."),
    # volunteers (pages/volunteers.py); done_in_future is the console's word for the registry's in_future there
    "expiry_required": N_("A pass or a training counts only until it expires: give its expiry date."),
    "expires_before_done": N_("The expiry date must come after the date it was done."),
    "done_in_future": N_("It cannot be recorded before it happened: the date is in the future."),
    "erased": N_("This volunteer's personal data was erased; they take no more children."),
    # campaign aid (pages/aid.py): matching's refusals, and the console's own before it asks
    "already_received": N_("A child ticked has had this kind of aid under this campaign already: nothing was given."),
    "unknown_donor": N_("That donor is not registered."),
    "no_children_chosen": N_("Tick at least one child."),
    "too_many_children": N_("Too many children at once: hand out to at most 100 at a time."),
    "aid_campaign_not_here": N_("That campaign does not cover this county: choose one of the list."),
    # accounts (pages/admin.py): the registry's refusals
    "invalid_login": N_("A login is a mobile number, or for an admin or service a name of 3 to 32 letters or digits."),
    "mobile_login_required": N_("This role signs in with a mobile number."),
    "login_taken": N_("An account with this login exists already."),
    "counties_required": N_("A coordinator or child director serves at least one county: give its county codes."),
    "counties_not_allowed": N_("Only a coordinator or child director is given counties; a volunteer has their own."),
    "person_required": N_("A volunteer's or donor's account is linked to their registration: give its id."),
    "person_not_allowed": N_("Only a volunteer's or donor's account is linked to a registered person."),
    "person_not_found": N_("No volunteer or donor is registered with that id."),
    "person_has_account": N_("This volunteer or donor has an account already."),
    "person_erased": N_("This person's personal data was erased."),
    "service_role_fixed": N_("A service account stays a service account, and no other account becomes one."),
    "already_active": N_("The account is active already: give its owner a password reset link instead."),
    "not_active": N_("Only an active account is given a reset link; send an invited one a new invitation."),
    "service_account": N_("A service account has a client secret, not a password."),
    "not_a_service": N_("Only a service account has a client secret."),
    "account_erased": N_("This account's person was erased: it cannot be changed or opened again."),
}
FALLBACK = N_("The request could not be completed.")


def message(code: str, gettext: Callable[[str], str]) -> str:
    return gettext(MESSAGES.get(code, FALLBACK))


def install(app: FastAPI) -> None:
    pages = app.state.pages

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, error: SignInRequired) -> Response:
        target = sign_in_url(error.next_path)
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(Refused)
    async def _refused(request: Request, error: Refused) -> HTMLResponse:
        log.info("console.refused", reason=error.code)
        return pages.render(request, "error.html", status=403, code=error.code)  # type: ignore[no-any-return]

    @app.exception_handler(ApiFailure)
    async def _failure(request: Request, failure: ApiFailure) -> HTMLResponse:
        status = failure.status if failure.status in (403, 404, 409, 410, 413, 422, 429, 503) else 502
        return pages.render(request, "error.html", status=status, code=failure.code)  # type: ignore[no-any-return]
