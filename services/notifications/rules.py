"""Who is told what because of which event, through which channels, and how urgently: the rules as one table, and
the pure function that applies them to an event (no I/O, no clock: what it needs is passed in)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from backbone.clock import PROGRAMME_TIMEZONE
from contracts.catalogue import Event
from contracts.matching import (
    AidDistributed,
    ChildOverdue,
    ChildVisitDue,
    PairingClosed,
    PairingConfirmed,
    PairingProposed,
    PairingSuspended,
    WishAcknowledged,
    WishClaimed,
    WishFulfilled,
)
from contracts.notifications import Channel, Urgency
from contracts.registry import ChildRegistered, LinkIssued
from contracts.volunteers import VolunteerScreeningRecorded, VolunteerTrainingRecorded

# Whom a rule tells. A county's coordinators and child directors are groups, resolved into people when the message
# is sent; a volunteer or a donor is one person, named by the id their sign-in token carries; a link's owner is
# whoever the registry made the link for (perhaps not able to sign in yet), named by the link.
Audience = Literal["volunteer", "coordinators", "child_directors", "donor", "link_owner"]
MESSAGE_IDS = uuid.UUID("0b7f4c36-2f0e-4d55-8c9e-5b8f8f0e6a21")
DAY, NOW = timedelta(days=1), timedelta(0)


def _always(event: Any) -> bool:
    return True


def _escalated(event: ChildOverdue) -> bool:
    return event.escalated_to == "child_director"


def _not_escalated(event: ChildOverdue) -> bool:
    return event.escalated_to is None


def _from_a_donor(event: AidDistributed) -> bool:
    return event.donor_id is not None


def _invitation(event: LinkIssued) -> bool:
    return event.kind == "invitation"


def _reset(event: LinkIssued) -> bool:
    return event.kind == "reset"


def _planned(event: ChildVisitDue) -> bool:
    return event.due_at is not None


def _lapses(event: VolunteerScreeningRecorded | VolunteerTrainingRecorded) -> bool:
    """A vetting step passed, or a training, that counts until a date."""
    return event.expires_at is not None and getattr(event, "result", "passed") == "passed"


@dataclass(frozen=True)
class Rule:
    reason: str  # names the message, its templates and its metrics
    on: type[Event]
    to: tuple[Audience, ...]
    channels: tuple[Channel, ...]
    urgency: Urgency = "routine"
    when: Callable[[Any], bool] = _always
    daily: bool = False  # told again each day the event's state lasts (services/notifications/escalations.py)
    # A reminder: told this long before the event's deadline, not when the event happens (0: at the deadline)
    # (services/notifications/reminders.py).
    before: tuple[timedelta, ...] = ()


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
    # links to choose a password: to the person only, never the inbox (they cannot sign in yet, or forgot how); a
    # reset is asked for by the person, now, and works for an hour: it does not wait for the morning
    Rule("invitation",        LinkIssued,       ("link_owner",),                     ("sms", "email"),
         when=_invitation),
    Rule("password_reset",    LinkIssued,       ("link_owner",),                     ("sms", "email"), "urgent",
         when=_reset),
    # reminders: told `before` the event's deadline
    Rule("visit_due_tomorrow", ChildVisitDue,   ("volunteer",),                      ("sms", "inbox"),
         before=(DAY,), when=_planned),
    Rule("claim_lapsing",     WishClaimed,      ("coordinators", "donor"),           ("email", "inbox"),
         before=(2 * DAY,)),
    Rule("screening_expiring", VolunteerScreeningRecorded, ("volunteer", "coordinators"), ("sms", "email", "inbox"),
         before=(30 * DAY, 7 * DAY), when=_lapses),
    Rule("screening_expired", VolunteerScreeningRecorded, ("volunteer", "coordinators"), ("sms", "email", "inbox"),
         before=(NOW,), when=_lapses),
    Rule("training_expiring", VolunteerTrainingRecorded, ("volunteer", "coordinators"), ("sms", "email", "inbox"),
         before=(30 * DAY, 7 * DAY), when=_lapses),
    Rule("training_expired",  VolunteerTrainingRecorded, ("volunteer", "coordinators"), ("sms", "email", "inbox"),
         before=(NOW,), when=_lapses),
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
    county_code: str  # "" for a link to an account of no county (an admin's, a donor's)
    about_id: uuid.UUID
    cause_event_id: uuid.UUID


def link_of(link_id: uuid.UUID) -> str:
    return f"link:{link_id}"


def coordinators_of(county_code: str) -> str:
    return f"county:{county_code}:coordinators"


def child_directors_of(county_code: str) -> str:
    return f"county:{county_code}:child_directors"


@dataclass(frozen=True)
class Occasion:
    """Why an event is being decided on: as it happens (the default), again on the `day`-th day after it (daily
    rules), or `before` its deadline (reminders: 0 is the deadline itself). `county_code`: where it happened, for
    events that do not say (a volunteer's vetting: the volunteer's county)."""

    day: int = 0
    before: timedelta | None = None
    county_code: str | None = None

    def applies(self, rule: Rule) -> bool:
        if self.before is not None:
            return self.before in rule.before
        return not rule.before and (not self.day or rule.daily)

    def suffix(self) -> str:
        """What makes this occasion's message another than the event's own (the same occasion: the same message)."""
        if self.before is not None:
            return f"/before {int(self.before.total_seconds())}"
        return f"/day {self.day}" if self.day else ""


AS_IT_HAPPENS = Occasion()


def decide(
    event: Event,
    cause_event_id: uuid.UUID,
    paired_volunteer: uuid.UUID | None = None,
    occasion: Occasion = AS_IT_HAPPENS,
) -> list[Decision]:
    """What `event` makes the service tell whom, on `occasion`. `paired_volunteer`: the volunteer paired with the
    child an event is about, where the event does not name one (an overdue visit); without one, the volunteer is not
    told."""
    county = occasion.county_code or getattr(event, "county_code", None) or ""
    decisions = []
    for rule in RULES:
        if not isinstance(event, rule.on) or not rule.when(event) or not occasion.applies(rule):
            continue
        for audience in rule.to:
            recipient = _recipient(audience, event, county, paired_volunteer)
            if recipient is not None:
                seed = f"{cause_event_id}/{rule.reason}/{recipient}{occasion.suffix()}"
                decisions.append(
                    Decision(
                        uuid.uuid5(MESSAGE_IDS, seed),
                        rule.reason,
                        recipient,
                        rule.channels,
                        rule.urgency,
                        county,
                        _about(event),
                        cause_event_id,
                    )
                )
    return decisions


@dataclass(frozen=True, order=True)
class Reminder:
    at: datetime
    before: timedelta


def reminders(event: Event) -> list[Reminder]:
    """When `event`'s reminder rules tell of it, earliest first: its deadline less each rule's `before`."""
    deadline = deadline_of(event)
    if deadline is None:
        return []
    befores = {b for rule in RULES if isinstance(event, rule.on) and rule.when(event) for b in rule.before}
    return sorted(Reminder(deadline - before, before) for before in befores)


def deadline_of(event: Event) -> datetime | None:
    """The moment a reminder counts back from: a visit's due time, a claim's deadline, the first day a vetting step
    or training no longer counts (expiring "on 1 May" ends at midnight in China, as the registry counts it)."""
    for field in ("due_at", "claim_deadline", "expires_at"):
        value = getattr(event, field, None)
        if isinstance(value, datetime):
            return value
        if isinstance(value, date):
            return datetime.combine(value, time(0), PROGRAMME_TIMEZONE).astimezone(UTC)
    return None


def _recipient(audience: Audience, event: Any, county: str, paired_volunteer: uuid.UUID | None) -> str | None:
    match audience:
        case "coordinators":
            return coordinators_of(county)
        case "child_directors":
            return child_directors_of(county)
        case "volunteer":
            volunteer = getattr(event, "volunteer_id", None) or paired_volunteer
            return str(volunteer) if volunteer else None
        case "donor":
            return str(event.donor_id) if event.donor_id else None
        case "link_owner":
            return link_of(event.link_id)


def _about(event: Any) -> uuid.UUID:
    """What the message is about: the pairing, the wish, the distribution, the volunteer, the link, or else the
    child."""
    for field in ("pairing_id", "wish_id", "distribution_id", "volunteer_id", "link_id", "child_id"):
        if (about := getattr(event, field, None)) is not None:
            return uuid.UUID(str(about))
    raise ValueError(f"{type(event).__name__} names nothing a message can be about")
