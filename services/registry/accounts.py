"""Accounts' rules: logins, passwords, how failed sign-ins slow down and lock, who manages whom, states, sessions and
one-time links. Pure decisions: no I/O, no clock (`now` is passed in), no ids made here."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from zxcvbn import zxcvbn  # type: ignore[import-untyped]  # the package ships no type hints
from zxcvbn.matching import RANKED_DICTIONARIES  # type: ignore[import-untyped]

from backbone.auth import Role
from contracts.registry import LinkRole
from services.registry.domain import DomainError

State = Literal["invited", "active", "disabled"]
LinkKind = Literal["invitation", "reset"]
PersonKind = Literal["volunteer", "donor"]

MIN_PASSWORD = 10
MIN_SCORE = 3  # zxcvbn's 0-4 scale: 3 is "safely unguessable" (about 10^8 guesses and more)
SCORED_LENGTH = 72  # zxcvbn refuses longer input; a longer password is at least as strong as its first 72 characters
COMMON_PASSWORDS = RANKED_DICTIONARIES["passwords"]  # zxcvbn's list, lower case
SLOW_AFTER = 3  # consecutive failures of a login before each further attempt must wait 2^(n-3) s
LOCK_AT = 5  # ... and from this many on, each failure locks the login for LOCKOUT_MINUTES
LOCKOUT_MINUTES = 15
FAILURE_MEMORY = timedelta(hours=24)  # failures older than this are forgotten
SOURCE_LIMIT = 20  # more failures than this from one address within SOURCE_WINDOW: that address waits
SOURCE_WINDOW = timedelta(minutes=15)
LINK_LIFETIMES: dict[LinkKind, timedelta] = {"invitation": timedelta(hours=72), "reset": timedelta(hours=1)}
RESETS_SENT_A_DAY = 3  # reset links a self-service request makes for one account within 24 hours, at most
REFRESH_LIFETIME = timedelta(days=14)  # a session unused this long ends
SESSION_LIFETIME = timedelta(days=30)  # and any session ends this long after its sign-in
PERSON_ROLES: dict[Role, PersonKind] = {"volunteer": "volunteer", "donor": "donor"}
NAMED_ROLES: tuple[Role, ...] = ("admin", "service")  # roles whose login may be a name rather than a mobile number
COUNTY_ROLES: tuple[Role, ...] = ("coordinator", "child_director")  # roles whose accounts name the counties they serve
MANAGED_BY_COORDINATORS: tuple[Role, ...] = ("volunteer", "child_director")  # ... in the coordinator's own counties
MAX_EMAIL = 254  # RFC 5321's limit on a forward path, less its angle brackets
MAX_EMAIL_LOCAL = 64

_MOBILE = re.compile(r"(?:\+?86|0086)?(1[3-9][0-9]{9})")  # [0-9], not \d: NFKC leaves other scripts' digits as they are
_NAME = re.compile(r"(?=.*[a-z])[a-z0-9._-]{3,32}")  # a letter at least: a mistyped mobile number is no name
_PHONE_SPACING = re.compile(r"[\s()-]")
# An address as a mail form takes it, and no more: a dot-atom local part and a host name with a dot (letters or
# punycode at its end); no quoting, comments, brackets, spaces or non-ASCII, so nothing of it can write a header.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TOP = r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})"
_EMAIL = re.compile(rf"(?P<local>{_ATOM}(?:\.{_ATOM})*)@(?P<domain>(?:{_LABEL}\.)+{_TOP})")


class TryLater(DomainError):
    """Too many failures: the next attempt is not looked at before `retry_after` seconds."""

    def __init__(self, wait: timedelta) -> None:
        super().__init__("try_later", "too many failed attempts; try again later")
        self.retry_after = max(1, math.ceil(wait.total_seconds()))


def normal_login(text: str) -> str:
    """The login as stored and looked up: a mobile number's 11 digits however it was typed (full-width digits,
    spaces, +86), or a name in lower case."""
    folded = unicodedata.normalize("NFKC", text).strip()
    if mobile := _MOBILE.fullmatch(_PHONE_SPACING.sub("", folded)):
        return mobile.group(1)
    name = folded.casefold()
    if _NAME.fullmatch(name):
        return name
    raise DomainError(
        "invalid_login",
        "a login is a mobile number (11 digits, 1[3-9]…) or, for admin and service accounts, a name of 3 to 32 "
        "letters, digits, '.', '_' or '-' with a letter among them",
    )


def normal_email(text: str) -> str:
    """An email address as stored: full-width characters folded (as a Chinese keyboard may type them), the domain in
    lower case, the local part as typed (it may be case-sensitive)."""
    folded = unicodedata.normalize("NFKC", text).strip()
    found = _EMAIL.fullmatch(folded)
    if found is None or len(folded) > MAX_EMAIL or len(found["local"]) > MAX_EMAIL_LOCAL:
        raise DomainError(
            "invalid_email",
            f"an email address is name@example.org: at most {MAX_EMAIL} characters of ASCII letters, digits and "
            "a few signs, with a domain that has a dot; no spaces, quotes, brackets or names around it",
        )
    return f"{found['local']}@{found['domain'].lower()}"


def check_login(login: str, role: Role) -> None:
    if role not in NAMED_ROLES and not _MOBILE.fullmatch(login):
        raise DomainError("mobile_login_required", f"a {role} account signs in with a mobile number")


def check_password(password: str, hints: Sequence[str] = ()) -> None:
    """At least MIN_PASSWORD characters, not a common password, and hard to guess even knowing `hints` (the login,
    the display name)."""
    if len(password) < MIN_PASSWORD:
        raise DomainError("password_too_short", f"a password has at least {MIN_PASSWORD} characters")
    if password.casefold() in COMMON_PASSWORDS:
        raise DomainError("password_common", "this password is on the list of common passwords")
    if zxcvbn(password[:SCORED_LENGTH], user_inputs=list(hints))["score"] < MIN_SCORE:
        raise DomainError("password_weak", "this password is easy to guess: make it longer, or use unrelated words")


@dataclass(frozen=True)
class Failures:
    """A login's failed attempts since its last success (within FAILURE_MEMORY), and the latest one's moment."""

    count: int = 0
    last_at: datetime | None = None


def lockout() -> timedelta:
    return timedelta(minutes=LOCKOUT_MINUTES)


def admit(failures: Failures, now: datetime) -> None:
    """Whether the login may be tried now: after SLOW_AFTER failures each attempt waits 2^(n-3) s after the last
    one, from LOCK_AT on LOCKOUT_MINUTES. The same for a login nobody has, so the answers tell nothing."""
    if failures.last_at is None or failures.count < SLOW_AFTER:
        return
    pause = lockout() if failures.count >= LOCK_AT else timedelta(seconds=2 ** (failures.count - SLOW_AFTER))
    if now < failures.last_at + pause:
        raise TryLater(failures.last_at + pause - now)


def locks(count: int) -> bool:
    """Whether the failure that brought the count to `count` locked the login."""
    return count >= LOCK_AT


def admit_source(recent: Sequence[datetime], now: datetime) -> None:
    """Whether an address may try again, given its failures within SOURCE_WINDOW (oldest first): not while more
    than SOURCE_LIMIT lie in the window."""
    excess = len(recent) - SOURCE_LIMIT
    if excess > 0:
        raise TryLater(recent[excess - 1] + SOURCE_WINDOW - now)


@dataclass(frozen=True)
class Person:
    """The registered volunteer or donor an account is linked to."""

    id: UUID
    kind: PersonKind
    county_code: str | None = None
    erased: bool = False


def settle(role: Role, counties: Sequence[str], person: Person | None, login: str) -> tuple[str, ...]:
    """The counties an account of `role` acts in, if the combination is allowed: a coordinator or a child director
    names at least one; a volunteer's is their registered county; volunteers and donors are linked to their
    registration."""
    check_login(login, role)
    needed = PERSON_ROLES.get(role)
    if needed is None and person is not None:
        raise DomainError("person_not_allowed", f"a {role} account is linked to no registered person")
    if needed is not None:
        if person is None or person.kind != needed:
            raise DomainError("person_required", f"a {role} account is linked to a registered {needed} (person_id)")
        if person.erased:
            raise DomainError("person_erased", f"the {needed}'s personal data was erased")
    if role in COUNTY_ROLES:
        if not counties:
            raise DomainError("counties_required", f"a {role.replace('_', ' ')} acts in at least one county")
        return tuple(sorted(set(counties)))
    own = (person.county_code,) if role == "volunteer" and person and person.county_code else ()
    if counties and tuple(sorted(set(counties))) != own:
        raise DomainError(
            "counties_not_allowed",
            "only coordinators and child directors are given counties; a volunteer has their own",
        )
    return own


def may_manage(actor_role: Role, actor_counties: Sequence[str], role: Role, counties: Sequence[str]) -> bool:
    """Admins manage every account; a coordinator, the volunteer and child director accounts whose counties are all
    among their own."""
    if actor_role == "admin":
        return True
    in_theirs = bool(counties) and set(counties) <= set(actor_counties)
    return actor_role == "coordinator" and role in MANAGED_BY_COORDINATORS and in_theirs


def change_role(before: Role, after: Role) -> None:
    if before != after and "service" in (before, after):
        raise DomainError("service_role_fixed", "a service account stays one, and no other becomes one")


Standing = tuple[Role, Sequence[str], UUID | None]  # what an account's tokens carry: role, counties, linked person


def sessions_end_for(before: Standing, after: Standing) -> str | None:
    """Why a change ends the account's sessions (its tokens carry role, counties and, as their sub, the linked
    person), or None if it does not."""
    if before[0] != after[0]:
        return "role_changed"
    if sorted(before[1]) != sorted(after[1]):
        return "counties_changed"
    if before[2] != after[2]:
        return "person_changed"
    return None


def reinvite(state: State, role: Role) -> State:
    """A new invitation for an account not yet accepted, or a disabled one coming back (with no password)."""
    link_role(role)
    if state == "active":
        raise DomainError("already_active", "the account is active: give its owner a password reset link")
    return "invited"


def may_reset(state: State, role: Role) -> None:
    link_role(role)
    if state != "active":
        raise DomainError("not_active", "only an active account's password is reset; an invited one is re-invited")


def link_role(role: Role) -> LinkRole:
    """The role of an account that may be given a link (and is named by its `LinkIssued`): any but a service's."""
    if role == "service":
        raise DomainError("service_account", "a service account has a client secret, not a password")
    return role


@dataclass(frozen=True)
class Link:
    kind: LinkKind
    expires_at: datetime
    used_at: datetime | None
    account_state: State


def link_expiry(kind: LinkKind, now: datetime) -> datetime:
    return now + LINK_LIFETIMES[kind]


def usable(link: Link, now: datetime) -> bool:
    """Whether the link still works: not used nor replaced, not expired, and its account still in the state the link
    was made for (an invitation for an invited account, a reset for an active one; a disabled account, neither)."""
    wanted: State = "invited" if link.kind == "invitation" else "active"
    return link.used_at is None and now < link.expires_at and link.account_state == wanted


def use_link(link: Link | None, kind: LinkKind, now: datetime) -> State:
    """The account's state once the link is used: once, while it is `usable`."""
    if link is None or link.kind != kind or not usable(link, now):
        raise DomainError("invalid_link", "the link is not valid: used, expired, replaced by a newer one, or unknown")
    return "active"


def sends_reset(reachable: bool, working: int, sent_today: Sequence[datetime], now: datetime) -> bool:
    """Whether a self-service reset request makes (and so sends) a new reset link: only for an owner who can be
    reached (a mobile-number login, an email address), while none of the account's reset links works (a new one
    would retire the one its owner may be about to use, or one an admin handed over), and fewer than
    RESETS_SENT_A_DAY were sent in the last 24 hours (`sent_today`: when). Anyone may ask for any login, as often as
    they like: its owner gets at most one message an hour, three a day."""
    recent = [made for made in sent_today if now - made < timedelta(days=1)]
    return reachable and working == 0 and len(recent) < RESETS_SENT_A_DAY


@dataclass(frozen=True)
class Refresh:
    """A refresh token as found: when it expires, whether it was used, whether its session still runs."""

    expires_at: datetime
    used: bool
    session_open: bool
    account_state: State


def refresh(token: Refresh | None, now: datetime) -> Literal["rotate", "reuse"]:
    """A refresh token works once. Presented again while its session runs, someone else holds a copy: the whole
    session ends ("reuse"). Anything else that does not work is refused alike."""
    if token is None or not token.session_open or token.account_state != "active":
        raise DomainError("invalid_refresh_token", "the refresh token is not valid; sign in again")
    if token.used:
        return "reuse"
    if now >= token.expires_at:
        raise DomainError("invalid_refresh_token", "the refresh token is not valid; sign in again")
    return "rotate"


def refresh_expiry(signed_in_at: datetime, now: datetime) -> datetime:
    return min(now + REFRESH_LIFETIME, signed_in_at + SESSION_LIFETIME)
