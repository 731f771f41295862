"""The event base type, the catalogue of versioned type names, and the upcasters that read old versions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeAlias

from pydantic import BaseModel, ConfigDict

Upcaster: TypeAlias = Callable[[dict[str, Any]], dict[str, Any]]


class UnknownEventType(LookupError):
    """A message names a type this code has never heard of (not even as an old version)."""


class Event(BaseModel):
    """An immutable fact. `type_name` is `<context>.<aggregate>.<event>.v<N>` and never changes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type_name: ClassVar[str]
    description: ClassVar[str] = ""
    current: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        type_name = cls.__dict__.get("type_name")
        if type_name:
            parts = type_name.split(".")
            if len(parts) != 4 or not parts[3].startswith("v") or not parts[3][1:].isdigit():
                raise ValueError(f"event type {type_name!r} must be <context>.<aggregate>.<event>.v<N>")
            CATALOGUE[type_name] = cls

    @classmethod
    def context(cls) -> str:
        return cls.type_name.split(".")[0]

    @classmethod
    def aggregate(cls) -> str:
        return cls.type_name.split(".")[1]

    @classmethod
    def subject(cls) -> str:
        """The NATS subject: `<context>.<aggregate>.<event>`, the same for every version."""
        return cls.type_name.rsplit(".", 1)[0]

    def aggregate_id(self) -> str:
        """The id of the aggregate the event belongs to: the field named `<aggregate>_id`."""
        return str(getattr(self, f"{self.aggregate()}_id"))


CATALOGUE: dict[str, type[Event]] = {}
# One JetStream stream per context; an event's context is the first part of its type name.
CONTEXT_STREAMS = {"registry": "REGISTRY", "matching": "MATCHING", "notifications": "NOTIFICATIONS"}
UPCASTERS: dict[str, tuple[str, Upcaster]] = {}


def upcaster(old: str, new: str) -> Callable[[Upcaster], Upcaster]:
    """Register the function that turns the data of `old` into the data of the next version `new`."""

    def register(fn: Upcaster) -> Upcaster:
        UPCASTERS[old] = (new, fn)
        return fn

    return register


def event_class(type_name: str) -> type[Event]:
    try:
        return CATALOGUE[type_name]
    except KeyError:
        raise UnknownEventType(type_name) from None


def upcast(type_name: str, data: dict[str, Any]) -> Event:
    """Read `data` stored or sent as `type_name` as the newest version of that event."""
    event = event_class(type_name).model_validate(data)  # an old shape must itself be valid
    if type_name not in UPCASTERS:
        return event
    while type_name in UPCASTERS:
        type_name, step = UPCASTERS[type_name]
        data = step(data)
    return event_class(type_name).model_validate(data)
