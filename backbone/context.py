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
    if causes is None:
        causes = Causes(str(uuid.uuid4()), None, new_traceparent())
        bind(causes)
    return causes


def bind(causes: Causes) -> None:
    _current.set(causes)
    structlog.contextvars.bind_contextvars(correlation_id=causes.correlation_id)


def clear() -> None:
    _current.set(None)
    structlog.contextvars.unbind_contextvars("correlation_id")
