"""Ways a message reaches a person outside the console: what every channel is given, and how it says it failed.

A channel sends one message and says whether it went; it decides nothing (who, what, when: the rules and the
outbox) and keeps nothing. It never logs or raises with the address or the text: they are personal data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol

from contracts.notifications import OutwardChannel

ChannelName = OutwardChannel


@dataclass(frozen=True)
class Outgoing:
    """One message to one person, rendered. `message_id` is the same on every try of the same message: the channel
    passes it on as the provider's idempotency key where the provider has one."""

    message_id: uuid.UUID
    # Not in its repr: a traceback or a debugger's view of it shows no address and no words.
    to: str = field(repr=False)  # a phone number (E.164 or 11-digit mainland) or an email address
    text: str = field(repr=False)  # the SMS, or the email's plain-text part
    subject: str = field(default="", repr=False)  # email only
    html: str | None = field(default=None, repr=False)  # email only: the HTML part, already autoescaped
    template_id: str = ""  # SMS only: the gateway's approved template
    params: dict[str, str] = field(default_factory=dict, repr=False)  # SMS only: the template's parameters
    # SMS only: the parts it may take. One: a notice split in two may arrive half, and each part is billed; a link
    # to choose a password cannot fit one.
    sms_segments: int = 1
    language: str = "zh-CN"


class SendFailed(Exception):
    """The message did not go. `retryable`: a later try may succeed (a timeout, a refused connection); if
    not, trying again cannot help (the address refused, the credentials wrong). What a reply means is the
    channel's to say (an HTTP 5xx is worth another try; an SMTP 5xx is final). `reason` is a short code, safe to
    store and show: never the address, the text, or the provider's own words (they may quote either)."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason, self.retryable = reason, retryable


class Channel(Protocol):
    name: ChannelName

    async def send(self, message: Outgoing) -> str:
        """Send `message`; returns the provider's id for it (or the message id if it gives none); raises SendFailed."""
        ...

    async def close(self) -> None: ...
