"""Who is told what because of which event, through which channels, and how urgently: the rules as one table, and
the pure function that applies them to an event (no I/O, no clock: what it needs is passed in)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from contracts.catalogue import Event
from contracts.matching import (
    AidDistributed,
    ChildOverdue,
    PairingClosed,
    PairingConfirmed,
    PairingProposed,
    PairingSuspended,
    WishAcknowledged,
    WishClaimed,
    WishFulfilled,
)
from contracts.notifications import Channel, Urgency
from contracts.registry import ChildRegistered

# Whom a rule tells. A county's coordinators and child directors are groups, resolved into people when the message
# is sent; a volunteer or a donor is one person, named by the id their sign-in token carries.
Audience = Literal["volunteer", "coordinators", "child_directors", "donor"]
MESSAGE_IDS = uuid.UUID("0b7f4c36-2f0e-4d55-8c9e-5b8f8f0e6a21")


def _always(event: Any) -> bool:
    return True


def _escalated(event: ChildOverdue) -> bool:
    return event.escalated_to == "child_director"


def _not_escalated(event: ChildOverdue) -> bool:
    return event.escalated_to is None


def _from_a_donor(event: AidDistributed) -> bool:
    return event.donor_id is not None


@dataclass(frozen=True)
class Rule:
    reason: str  # names the message, its templates and its metrics
    on: type[Event]
    to: tuple[Audience, ...]
    channels: tuple[Channel, ...]
    urgency: Urgency = "routine"
    when: Callable[[Any], bool] = _always
    daily: bool = False  # told again each day the event's state lasts (services/notifications/escalations.py)


# fmt: off
RULES: tuple[Rule, ...] = (
    #    reason               on event          to                                   channels                  urgency
    Rule("child_registered",  ChildRegistered,  ("coordinators",),                   ("inbox",)),
    Rule("pairing_proposed",  PairingProposed,  ("coordinators",),                   ("inbox",)),
    Rule("pairing_confirmed", PairingConfirmed, ("volunteer", "coordinators"),       ("sms", "email", "inbox")),
    Rule("pairing_suspended", PairingSuspended, ("volunteer", "coordinators"),       ("sms", "email", "inbox")),
    Rule("pairing_closed",    PairingClosed,    ("volunteer", "coordinators"),       ("email", "inbox")),
    Rule("visit_overdue",     ChildOverdue,     ("volunteer",),                      ("sms", "inbox")),
    Rule("visit_overdue",     ChildOverdue,     ("coordinators",),                   ("inbox",),
         when=_not_escalated),
    Rule("overdue_escalated", ChildOverdue,     ("child_directors", "coordinators"), ("sms", "email", "inbox"),
         "urgent", when=_escalated, daily=True),
    Rule("wish_claimed",      WishClaimed,      ("coordinators", "donor"),           ("email", "inbox")),
    Rule("wish_fulfilled",    WishFulfilled,    ("coordinators", "donor"),           ("email", "inbox")),
    Rule("wish_thanked",      WishAcknowledged, ("donor",),                          ("email", "inbox")),
    Rule("aid_distributed",   AidDistributed,   ("donor",),                          ("email", "inbox"),
         when=_from_a_donor),
)
# fmt: on


@dataclass(frozen=True)
class Decision:
    """Someone must be told something: one message of one rule to one recipient (a person or a county's group),
    sent through each of the rule's channels the recipient takes. Its id comes from the event that caused it, so
    deciding again (a redelivered or replayed event) decides the same message."""

    message_id: uuid.UUID
    reason: str
    recipient: str
    channels: tuple[Channel, ...]
    urgency: Urgency
    county_code: str
    about_id: uuid.UUID
    cause_event_id: uuid.UUID


def coordinators_of(county_code: str) -> str:
    return f"county:{county_code}:coordinators"


def child_directors_of(county_code: str) -> str:
    return f"county:{county_code}:child_directors"


def decide(
    event: Event, cause_event_id: uuid.UUID, paired_volunteer: uuid.UUID | None = None, day: int = 0
) -> list[Decision]:
    """What `event` makes the service tell whom. `paired_volunteer`: the volunteer paired with the child an event is
    about, where the event does not name one (an overdue visit); without one, the volunteer is not told. `day`: the
    day after the event it is told again (the daily rules only); 0, the event itself."""
    decisions = []
    for rule in RULES:
        if not isinstance(event, rule.on) or not rule.when(event) or (day and not rule.daily):
            continue
        for audience in rule.to:
            recipient = _recipient(audience, event, paired_volunteer)
            if recipient is not None:
                again = f"/day {day}" if day else ""
                message_id = uuid.uuid5(MESSAGE_IDS, f"{cause_event_id}/{rule.reason}/{recipient}{again}")
                decisions.append(
                    Decision(
                        message_id,
                        rule.reason,
                        recipient,
                        rule.channels,
                        rule.urgency,
                        _county(event),
                        _about(event),
                        cause_event_id,
                    )
                )
    return decisions


def _recipient(audience: Audience, event: Any, paired_volunteer: uuid.UUID | None) -> str | None:
    match audience:
        case "coordinators":
            return coordinators_of(event.county_code)
        case "child_directors":
            return child_directors_of(event.county_code)
        case "volunteer":
            volunteer = getattr(event, "volunteer_id", None) or paired_volunteer
            return str(volunteer) if volunteer else None
        case "donor":
            return str(event.donor_id) if event.donor_id else None


def _county(event: Any) -> str:
    return str(event.county_code)  # every event a rule is on names the county it happened in


def _about(event: Any) -> uuid.UUID:
    """What the message is about: the pairing, the wish, the distribution, or else the child."""
    for field in ("pairing_id", "wish_id", "distribution_id", "child_id"):
        if (about := getattr(event, field, None)) is not None:
            return uuid.UUID(str(about))
    raise ValueError(f"{type(event).__name__} names nothing a message can be about")
