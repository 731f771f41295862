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
