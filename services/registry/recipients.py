"""Whom the notifications service writes to, and where: the recipients it names (a person by the id their tokens
carry, a county's coordinators or child directors, or the owner of a one-time link) and the phone and email address
each person found is reached at. Pure rules: no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from backbone.auth import Role
from services.registry.accounts import LinkKind

MAX_RECIPIENTS = 500
GROUPS: dict[str, Role] = {"coordinators": "coordinator", "child_directors": "child_director"}
# A person's id as a token's `sub` writes it: a UUID, lower case. Services (`service:<name>`) are no one to write to.
_PERSON = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_GROUP = re.compile(rf"county:(?P<county>[0-9]{{6}}):(?P<group>{'|'.join(GROUPS)})")
# A link's owner, by the link's id as its `LinkIssued` event names it: whoever the link was made for, invited or not.
_LINK = re.compile(rf"link:(?P<link_id>{_PERSON.pattern})")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")


@dataclass(frozen=True)
class Group:
    """Every active account of `role` whose counties include `county_code`."""

    county_code: str
    role: Role


def group_of(recipient: str) -> Group | None:
    found = _GROUP.fullmatch(recipient)
    return Group(found["county"], GROUPS[found["group"]]) if found else None


def check(recipient: str) -> str:
    """A recipient as the notifications service names one, or a ValueError that does not repeat it."""
    if not (_PERSON.fullmatch(recipient) or _GROUP.fullmatch(recipient) or _LINK.fullmatch(recipient)):
        raise ValueError(
            "a recipient is a person's id (a UUID in lower case, as their token's sub), a county's group "
            "(county:<six-digit county code>:coordinators or county:<six-digit county code>:child_directors) or a "
            "link's owner (link:<the link's id, a UUID in lower case>)"
        )
    return recipient


def check_distinct(recipients: list[str]) -> list[str]:
    if len(set(recipients)) != len(recipients):
        raise ValueError("each recipient is named at most once")
    return recipients


def groups(recipients: Sequence[str]) -> list[Group]:
    return [group for recipient in recipients if (group := group_of(recipient)) is not None]


def person_ids(recipients: Sequence[str]) -> list[str]:
    return [recipient for recipient in recipients if _PERSON.fullmatch(recipient)]


def link_ids(recipients: Sequence[str]) -> list[str]:
    """The ids of the links whose owners are asked for."""
    return [found["link_id"] for recipient in recipients if (found := _LINK.fullmatch(recipient))]


def mobile(text: str | None) -> str | None:
    """The number if it is a mainland mobile number as stored (11 digits, 1[3-9]…), else None: what SMS reaches."""
    return text if text is not None and _MOBILE.fullmatch(text) else None


@dataclass(frozen=True)
class Reachable:
    """An active account, opened: whom it stands for (its tokens' `sub`) and where its owner is reached."""

    sub: str
    role: Role
    counties: Sequence[str]
    login: str
    email: str | None


@dataclass(frozen=True)
class OpenLink:
    """A link that can still be used, opened: its account, whom it stands for (its tokens' `sub`), where its owner is
    reached, and what to send them."""

    account_id: UUID
    sub: str
    login: str
    email: str | None
    kind: LinkKind
    token: str = field(repr=False)


@dataclass(frozen=True)
class Found:
    """One person found for one recipient asked for; a link's owner with the link's token and kind."""

    recipient: str
    person_id: str
    phone: str | None
    email: str | None
    token: str | None = field(default=None, repr=False)
    kind: LinkKind | None = None


def found(
    recipients: Sequence[str],
    accounts: Sequence[Reachable],
    volunteer_phones: Mapping[str, str | None],
    links: Mapping[str, OpenLink] | None = None,
) -> list[Found]:
    """The people the recipients name, in the order asked. A group: each of `accounts` of its role whose counties
    include its county, in their order. A person's id: their active account, reached at its login if that is a
    mobile number and at its email address; else, for a volunteer without one, the phone of their registration
    (`volunteer_phones`, erased volunteers left out). A link's owner (`links`, by link id: those that can still be
    used): the account it was made for, reached as an active one is, with the token, whether the account is active
    or still invited. Anyone else (unknown, invited, disabled, erased, a dead link): nothing."""
    by_sub = {account.sub: account for account in accounts}
    people: list[Found] = []
    for recipient in recipients:
        if (group := group_of(recipient)) is not None:
            members = [a for a in accounts if a.role == group.role and group.county_code in a.counties]
            people += [Found(recipient, a.sub, mobile(a.login), a.email) for a in members]
        elif (found_link := _LINK.fullmatch(recipient)) is not None:
            if (link := (links or {}).get(found_link["link_id"])) is not None:
                people.append(Found(recipient, link.sub, mobile(link.login), link.email, link.token, link.kind))
        elif (account := by_sub.get(recipient)) is not None:
            people.append(Found(recipient, account.sub, mobile(account.login), account.email))
        elif recipient in volunteer_phones:
            people.append(Found(recipient, recipient, mobile(volunteer_phones[recipient]), None))
    return people
