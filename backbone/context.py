"""The ids that tie a request to the events it causes: correlation, causation and W3C trace context."""

from __future__ import annotations

import re
import secrets
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

import structlog

# An id taken from outside (a request's header, a delivered event) goes into every log line, every event's metadata,
# the NATS store and the other services' databases, where erasure cannot reach it. So only a shape that cannot hold
# a name, a phone or an ID number is kept: a UUID, or 16 to 64 hex digits with at least one letter (nginx's
# $request_id, a W3C trace id). A number alone (a phone has 11 digits, an ID number 18) is never an id.
_UUID = r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
_ID = re.compile(rf"{_UUID}|(?=[0-9]*[a-fA-F])[0-9a-fA-F]{{16,64}}")
# W3C trace context, level 1: version ff is invalid, and so is a trace or parent id of zeros only.
_TRACEPARENT = re.compile(r"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


@dataclass(frozen=True)
class Causes:
    correlation_id: str
    causation_id: str | None
    traceparent: str


_current: ContextVar[Causes | None] = ContextVar("causes", default=None)


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def safe_id(value: str | None) -> str | None:
    """`value` if it has the shape of an id that carries nothing personal, else None (it is dropped, not repeated)."""
    return value if value is not None and _ID.fullmatch(value) else None


def safe_traceparent(value: str | None) -> str | None:
    """`value` if it is a valid W3C `traceparent`, else None."""
    return value if value is not None and _TRACEPARENT.fullmatch(value) else None


def current() -> Causes:
    """The causes of whatever is happening now; a fresh correlation when nothing set one."""
    causes = _current.get()
    return causes if causes is not None else fresh()


def bind(causes: Causes) -> None:
    _current.set(causes)
    structlog.contextvars.bind_contextvars(correlation_id=causes.correlation_id)


def fresh() -> Causes:
    """Bind new causes (a timer's tick starts its own correlation) and return them."""
    return received(None, None, None)


def received(correlation_id: str | None, causation_id: str | None, traceparent: str | None) -> Causes:
    """Bind the causes that came from outside (a request's headers, a delivered event); return them."""
    causes = of(correlation_id, causation_id, traceparent)
    bind(causes)
    return causes


def of(correlation_id: str | None, causation_id: str | None, traceparent: str | None) -> Causes:
    """Causes from outside, each kept only if it has a safe shape; a new correlation id or trace replaces whatever
    does not."""
    return Causes(
        safe_id(correlation_id) or str(uuid.uuid4()),
        safe_id(causation_id),
        safe_traceparent(traceparent) or new_traceparent(),
    )


def caused_by(correlation_ids: set[str], event_id: str | None, traceparent: str | None) -> Causes:
    """Bind the causes of what a batch of delivered events makes happen: their correlation if they share one (one
    request's events), else a new one; `event_id` is the event the reaction answers (None if the batch mixes)."""
    shared = len(correlation_ids) == 1
    if not shared:
        return received(None, None, None)
    return received(next(iter(correlation_ids)), event_id, traceparent)


def clear() -> None:
    _current.set(None)
    structlog.contextvars.unbind_contextvars("correlation_id")
