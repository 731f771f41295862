"""The ids that tie a request to the events it causes: correlation, causation and W3C trace context."""

from __future__ import annotations

import secrets
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

import structlog


@dataclass(frozen=True)
class Causes:
    correlation_id: str
    causation_id: str | None
    traceparent: str


_current: ContextVar[Causes | None] = ContextVar("causes", default=None)


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def current() -> Causes:
    """The causes of whatever is happening now; a fresh correlation when nothing set one."""
    causes = _current.get()
    return causes if causes is not None else fresh()


def bind(causes: Causes) -> None:
    _current.set(causes)
    structlog.contextvars.bind_contextvars(correlation_id=causes.correlation_id)


def fresh() -> Causes:
    """Bind new causes (a timer's tick starts its own correlation) and return them."""
    causes = Causes(str(uuid.uuid4()), None, new_traceparent())
    bind(causes)
    return causes


def caused_by(correlation_ids: set[str], event_id: str | None, traceparent: str | None) -> Causes:
    """Bind the causes of what a batch of delivered events makes happen: their correlation if they share one (one
    request's events), else a new one; `event_id` is the event the reaction answers (None if the batch mixes)."""
    shared = len(correlation_ids) == 1
    correlation = next(iter(correlation_ids)) if shared else str(uuid.uuid4())
    causes = Causes(correlation, event_id if shared else None, (traceparent if shared else None) or new_traceparent())
    bind(causes)
    return causes


def clear() -> None:
    _current.set(None)
    structlog.contextvars.unbind_contextvars("correlation_id")
