"""Writes the JSON Schema of every event's wire message and the AsyncAPI 3.0 document, both from the models.

Run by `make contracts`; `python -m contracts.export --check` only reports files that are out of date.
"""

from __future__ import annotations

import argparse
import inspect
import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

from contracts import CATALOGUE
from contracts.catalogue import CONTEXT_STREAMS, UPCASTERS, Event
from contracts.cloudevents import CONTENT_TYPE, CloudEvent, dataschema

HERE = Path(__file__).parent
SCHEMAS = HERE / "schemas"
ASYNCAPI = HERE / "asyncapi.json"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
HEADERS_SCHEMA = "JetStreamHeaders"


def schemas() -> dict[str, dict[str, Any]]:
    """The schema of the whole CloudEvent for each type name, current and old versions alike."""
    return {
        type_name: {
            "$schema": DRAFT_2020_12,
            "$id": dataschema(type_name),
            **_message_schema(CATALOGUE[type_name], "#/$defs"),
        }
        for type_name in sorted(CATALOGUE)
    }


def _message_schema(event: type[Event], defs: str) -> dict[str, Any]:
    """The envelope with `data` set to the event's own schema, whose `$defs` are lifted to the JSON pointer `defs`."""
    envelope = CloudEvent.model_json_schema(ref_template=defs + "/{model}")
    data = event.model_json_schema(ref_template=defs + "/{model}")
    lifted = {**envelope.pop("$defs", {}), **data.pop("$defs", {})}
    properties = envelope["properties"]
    properties["type"] = {"type": "string", "const": event.type_name}
    properties["dataschema"] = {"type": "string", "const": dataschema(event.type_name)}
    properties["data"] = data
    # encode() leaves out only the fields that are None, so a field with any other default is always sent.
    envelope["required"] = [
        name for name, field in CloudEvent.model_fields.items() if field.is_required() or field.default is not None
    ]
    envelope["title"], envelope["description"] = event.type_name, _summary(event)
    return {**envelope, "$defs": lifted} if lifted else envelope


def asyncapi() -> dict[str, Any]:
    """One channel per subject, one message per type, and a `send` operation for the context that owns it."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    # A `$id` would rebase the refs inside the payload, so here they point into the document instead.
    payloads = {t: _message_schema(CATALOGUE[t], f"#/components/schemas/{t}/$defs") for t in sorted(CATALOGUE)}
    for type_name in sorted(CATALOGUE):
        event = CATALOGUE[type_name]
        subject, context = event.subject(), event.context()
        messages[type_name] = _message(event)
        channel = channels.setdefault(subject, _channel(subject, context))
        channel["messages"][type_name] = {"$ref": f"#/components/messages/{type_name}"}
        if event.current:
            operation = operations.setdefault(f"send.{subject}", _send(subject, context))
            operation["messages"].append({"$ref": f"#/channels/{subject}/messages/{type_name}"})
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "handinhand events",
            "version": version("handinhand"),
            "description": "Every event the services exchange: CloudEvents 1.0 in structured JSON mode on NATS "
            "JetStream, one stream per context. Old versions stay readable through upcasters.",
        },
        "defaultContentType": CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": {**payloads, HEADERS_SCHEMA: _headers()}},
    }


def _channel(subject: str, context: str) -> dict[str, Any]:
    stream = CONTEXT_STREAMS[context]
    return {
        "address": subject,
        "description": f"Every version of {subject}, published by the {context} service to stream {stream}.",
        "messages": {},
        "x-stream": stream,
    }


def _send(subject: str, context: str) -> dict[str, Any]:
    return {
        "action": "send",
        "channel": {"$ref": f"#/channels/{subject}"},
        "summary": f"The {context} service publishes {subject} once the event is committed.",
        "tags": [{"name": context}],
        "messages": [],
    }


def _message(event: type[Event]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": event.type_name,
        "title": event.__name__,
        "summary": _summary(event),
        "contentType": CONTENT_TYPE,
        "headers": {"$ref": f"#/components/schemas/{HEADERS_SCHEMA}"},
        "payload": {"$ref": f"#/components/schemas/{event.type_name}"},
    }
    if not event.current:
        newest = _newest(event.type_name)
        message["description"] = f"Superseded by {newest}: consumers read it as {newest} through its upcaster."
        message["x-deprecated"] = True
    return message


def _headers() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["Nats-Msg-Id", "Content-Type"],
        "properties": {
            "Nats-Msg-Id": {"type": "string", "description": "the event id: JetStream drops a repeat of it"},
            "Content-Type": {"type": "string", "const": CONTENT_TYPE},
        },
    }


def _newest(type_name: str) -> str:
    while type_name in UPCASTERS:
        type_name = UPCASTERS[type_name][0]
    return type_name


def _summary(event: type[Event]) -> str:
    return event.description or inspect.getdoc(event) or event.type_name


def rendered() -> dict[Path, str]:
    """Every generated file and its exact text."""
    files = {SCHEMAS / f"{type_name}.json": _json(schema) for type_name, schema in schemas().items()}
    files[ASYNCAPI] = _json(asyncapi())
    return files


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m contracts.export", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is out of date")
    check = parser.parse_args(argv).check
    files = rendered()
    stale = sorted(set(SCHEMAS.glob("*.json")) - files.keys())
    changed = sorted(path for path, text in files.items() if not path.exists() or path.read_text("utf-8") != text)
    if check:
        if stale or changed:
            listing = "\n".join(f"  {path.relative_to(HERE.parent)}" for path in changed + stale)
            raise SystemExit(f"out of date (run `make contracts`):\n{listing}")
        return
    SCHEMAS.mkdir(exist_ok=True)
    for path in stale:
        path.unlink()
    for path in changed:
        path.write_text(files[path], encoding="utf-8")


if __name__ == "__main__":
    main()
