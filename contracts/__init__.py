"""Every event the services exchange: frozen pydantic models, their wire format and their schemas."""

from contracts.catalogue import CATALOGUE, Event, UnknownEventType, event_class, upcast
from contracts.cloudevents import CloudEvent, MalformedMessage, decode, encode

__all__ = [
    "CATALOGUE",
    "CloudEvent",
    "Event",
    "MalformedMessage",
    "UnknownEventType",
    "decode",
    "encode",
    "event_class",
    "upcast",
]

# Importing the context modules registers their events in the catalogue.
from contracts import campaigns, matching, notifications, registry, volunteers  # noqa: F401
