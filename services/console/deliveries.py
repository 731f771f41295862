"""Messages by SMS and email as the coordinators' delivery list shows them: where each one stands (held for quiet
hours, waiting, being tried again after a failure, sent, failed for good), why a try failed in the reader's words,
and who it went to by a short reference only (the console shows no one's phone number or address here)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.console.i18n import N_

CHINA = ZoneInfo("Asia/Shanghai")
STATUSES = ("pending", "sent", "failed")  # the list's filter: waiting, sent, failed (`sending` lasts moments)

# Why a try failed, by the notifications service's short code; a code not named here is shown as it is.
ERRORS: dict[str, str] = {
    "gateway_timeout": N_("SMS gateway timed out"),
    "gateway_unreachable": N_("SMS gateway unreachable"),
    "gateway_url_invalid": N_("SMS gateway address misconfigured"),
    "gateway_busy": N_("SMS gateway busy"),
    "gateway_bad_answer": N_("SMS gateway answer unreadable"),
    "gateway_refused": N_("SMS gateway refused it"),
    "bad_phone_number": N_("not a valid mobile number"),
    "sms_too_long": N_("SMS too long"),
    "bad_email_address": N_("not a valid email address"),
    "channel_not_configured": N_("channel not set up"),
    "no_address": N_("no phone number or email address on record"),
    "link_not_valid": N_("the link was used, replaced or expired before it went"),
    "smtp_timeout": N_("mail server timed out"),
    "smtp_unreachable": N_("mail server unreachable"),
    "smtp_disconnected": N_("mail server hung up"),
    "smtp_auth_failed": N_("mail server refused the sign-in"),
    "smtp_no_starttls": N_("mail server offers no encryption"),
    "smtp_no_auth": N_("mail server offers no sign-in"),
    "smtp_not_supported": N_("mail server does not take this address"),
    "smtp_tls_untrusted": N_("mail server certificate not trusted"),
    "smtp_tls_failed": N_("encryption with the mail server failed"),
    "smtp_error": N_("mail server error"),
    "internal_error": N_("error in the notifications service"),
    "no_answer": N_("the last try never reported back"),
}
# A provider's status code in the error's name (`gateway_status_503`, `smtp_status_550`).
ANSWERED = re.compile(r"(gateway|smtp)_status_(\d{3})")
ANSWERS = {"gateway": N_("SMS gateway answered %(status)s"), "smtp": N_("mail server answered %(status)s")}
NO_REASON = N_("no reason given")


def error_words(code: str | None, gettext: Callable[[str], str]) -> str:
    """Why a try failed, in the reader's language: a known code's label, a provider's answer by its number, else the
    code itself (a code added to the service later still says something)."""
    if code is None:
        return gettext(NO_REASON)
    if code in ERRORS:
        return gettext(ERRORS[code])
    answered = ANSWERED.fullmatch(code)
    if answered:
        return gettext(ANSWERS[answered[1]]) % {"status": answered[2]}
    return code


def progress(message: dict[str, Any]) -> str:
    """Where a message stands: `held` (until the person's quiet hours end), `waiting`, `retrying` (a try failed,
    another is due), `sending`, `sent`, `failed`; a status the console does not know, as it is."""
    status = str(message.get("status"))
    if status != "pending":
        return status
    if message.get("attempts"):
        return "retrying"
    return "held" if message.get("held") else "waiting"


def moment(value: str | None, day_of: str) -> str:
    """A time of the message's in China's clock: its hour alone on the day the message was decided, with the date on
    any other day."""
    if not value:
        return ""
    shown = datetime.fromisoformat(value).astimezone(CHINA)
    decided = datetime.fromisoformat(day_of).astimezone(CHINA)
    return shown.strftime("%H:%M" if shown.date() == decided.date() else "%Y-%m-%d %H:%M")


def person_ref(person_id: str) -> str:
    """How the list names whom a message went to: the first eight characters of their id, like a child's reference."""
    return str(person_id)[:8].upper()


def shown(message: dict[str, Any], reader: str | None) -> dict[str, Any]:
    """The message with what its row says: where it stands, the time that goes with that (when it is tried next,
    or was sent), and whom it went to (the reader themself, or a reference)."""
    state = progress(message)
    at = message.get("sent_at") if state == "sent" else message.get("due_at")
    return message | {
        "progress": state,
        "at": at if state in ("held", "retrying", "sent") else None,
        "at_shown": moment(at, message["decided_at"]) if state in ("held", "retrying", "sent") else "",
        "to_reader": reader is not None and message.get("person_id") == reader,
        "person_ref": person_ref(str(message.get("person_id", ""))),
    }
