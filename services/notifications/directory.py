"""Who a recipient is and how to reach them, asked of the registry at send time with the service's own token: a
county's group becomes its people, a person their phone number and email address. Contacts are held in memory for
the send that needs them, never stored, logged or put on the bus."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from contracts.notifications import OutwardChannel

LOOKUP_LIMIT = 500  # recipients in one request, as the registry takes them
# What the registry can look up: a person's id (a token's `sub`: a UUID), a county's group, or a link's owner.
# Anything else (a token minted by hand for a test or a partner) names nobody it knows, and would have the whole
# request refused.
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_RECIPIENT = re.compile(rf"{_UUID}|county:[0-9]{{6}}:(?:coordinators|child_directors)|link:{_UUID}")


def well_formed(recipient: str) -> bool:
    return _RECIPIENT.fullmatch(recipient) is not None


def is_link(recipient: str) -> bool:
    return recipient.startswith("link:")


@dataclass(frozen=True)
class Contact:
    """One person `recipient` names (the person, one of a group's people, or a link's owner), and where they can be
    reached; for a link, its token, while the link still works."""

    recipient: str
    person_id: str
    phone: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    kind: str | None = None  # a link's: invitation, reset

    def address(self, channel: OutwardChannel) -> str | None:
        return self.phone if channel == "sms" else self.email


class DirectoryUnavailable(Exception):
    """The registry gave no answer to use; the message is tried again later. Says how, never what was asked."""


class Directory:
    """The registry's `POST /contacts/lookup`, through `client` (its base URL and the service's token as auth)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def lookup(self, recipients: Sequence[str]) -> list[Contact]:
        """Everyone the recipients name (persons, groups, links' owners), with their contacts and a link's token; an
        unknown one, or a dead link, names nobody."""
        found: list[Contact] = []
        for start in range(0, len(recipients), LOOKUP_LIMIT):
            body = {"recipients": list(recipients[start : start + LOOKUP_LIMIT])}
            try:
                response = await self._client.post("/contacts/lookup", json=body)
            except httpx.HTTPError as error:
                raise DirectoryUnavailable(type(error).__name__) from None  # its text may quote the request
            if response.status_code != 200:
                raise DirectoryUnavailable(f"the registry answered {response.status_code}")
            try:
                found += [
                    Contact(
                        str(p["recipient"]),
                        str(p["person_id"]),
                        p.get("phone"),
                        p.get("email"),
                        p.get("token"),
                        p.get("kind"),
                    )
                    for p in response.json()["people"]
                ]
            except (ValueError, KeyError, TypeError):
                raise DirectoryUnavailable("the registry's answer was not a list of people") from None
        return found

    async def close(self) -> None:
        await self._client.aclose()
