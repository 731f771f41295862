"""The wire format: a CloudEvents 1.0 message in structured JSON mode, and its encoding and decoding."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationError, WithJsonSchema

from contracts.catalogue import Event, UnknownEventType, upcast

CONTENT_TYPE = "application/cloudevents+json"
SCHEMA_PREFIX = "urn:handinhand:schema:"


class MalformedMessage(ValueError):
    """The bytes are not a CloudEvent this system can read."""


# The CloudEvents `sequence` extension is a String: on the wire "7", in Python the int 7 (old messages with a JSON
# number still read).
AggregateVersion = Annotated[
    int,
    Field(ge=1),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "pattern": "^[1-9][0-9]*$", "description": "the aggregate's version after this event"}
    ),
]


class CloudEvent(BaseModel):
    """One event as it travels: the CloudEvents context attributes, our extensions, and the data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, description="the event id, also the Nats-Msg-Id")
    source: str = Field(min_length=1, description="the service that decided the event, e.g. /registry")
    type: str = Field(pattern=r"^[a-z_]+\.[a-z_]+\.[a-z_]+\.v[0-9]+$")
    subject: str = Field(min_length=1, description="the aggregate id")
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str
    data: dict[str, Any]
    sequence: AggregateVersion
    correlationid: str = Field(min_length=1)
    causationid: str | None = None
    traceparent: str | None = Field(default=None, pattern=r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

    def event(self) -> Event:
        """The data read as the newest version of its type (old versions go through their upcasters)."""
        try:
            return upcast(self.type, self.data)
        except (UnknownEventType, ValidationError, ValueError) as error:
            raise MalformedMessage(f"{self.type} {self.id}: {error}") from error


def dataschema(type_name: str) -> str:
    return SCHEMA_PREFIX + type_name


def encode(envelope: CloudEvent) -> bytes:
    return envelope.model_dump_json(exclude_none=True).encode()


def decode(raw: bytes) -> CloudEvent:
    try:
        return CloudEvent.model_validate_json(raw)
    except ValidationError as error:
        raise MalformedMessage(str(error)) from error
