"""The event contracts: generated schemas are current and valid, real messages match them, old versions upcast."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.formats.json import JSONFormat
from jsonschema import Draft202012Validator, ValidationError
from pydantic import ValidationError as ModelInvalid
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

import contracts.export as export
from backbone.relay import envelope
from backbone.store import RecordedEvent
from contracts import CATALOGUE, CloudEvent, MalformedMessage, decode, encode, upcast
from contracts.catalogue import CONTEXT_STREAMS, UPCASTERS
from contracts.registry import ChildRegistered, ChildRegisteredV1

TYPE_NAME = re.compile(r"^[a-z_]+\.[a-z_]+\.[a-z_]+\.v[0-9]+$")
CHILD_ID = uuid.UUID("6f1c2a7e-0d4b-4f7e-9a53-2b8d1c0e4a11")
V1_DATA = {
    "child_id": str(CHILD_ID),
    "county_code": "152223",
    "category": "left_behind",
    "risk_level": "medium",
    "age": 9,
    "needs": ["tutoring"],
}


def recorded(type_name: str, data: dict[str, Any]) -> RecordedEvent:
    return RecordedEvent(
        position=1,
        tx_id=1,
        event_id=uuid.uuid4(),
        stream_id=str(CHILD_ID),
        version=3,
        type=type_name,
        data=data,
        recorded_at=datetime(2024, 3, 1, 8, 30, tzinfo=UTC),
        correlation_id=str(uuid.uuid4()),
        causation_id=str(uuid.uuid4()),
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )


def child_registered() -> bytes:
    """What the relay publishes for a ChildRegistered event."""
    event = ChildRegistered(
        child_id=CHILD_ID,
        county_code="152223",
        category="left_behind",
        risk_level="medium",
        age_band="9-11",
        languages=["mn", "zh"],
    )
    return encode(envelope(recorded(event.type_name, event.model_dump(mode="json")), "registry"))


def validator(type_name: str) -> Draft202012Validator:
    return Draft202012Validator(export.schemas()[type_name], format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_generated_files_are_current() -> None:
    expected = export.rendered()
    on_disk = {*export.SCHEMAS.glob("*.json"), export.ASYNCAPI}
    out_of_date = sorted(
        path.name
        for path in on_disk | expected.keys()
        if path not in expected or not path.exists() or path.read_text("utf-8") != expected[path]
    )
    assert not out_of_date, f"contracts are out of date, run `make contracts`: {out_of_date}"


def test_export_writes_deterministic_files_deletes_stale_ones_and_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "HERE", tmp_path)
    monkeypatch.setattr(export, "SCHEMAS", tmp_path / "schemas")
    monkeypatch.setattr(export, "ASYNCAPI", tmp_path / "asyncapi.json")
    with pytest.raises(SystemExit, match=r"asyncapi\.json"):
        export.main(["--check"])

    export.main([])
    first = {path: path.read_bytes() for path in tmp_path.rglob("*.json")}
    assert {path.stem for path in (tmp_path / "schemas").iterdir()} == set(CATALOGUE)
    export.main(["--check"])

    stale = tmp_path / "schemas" / "registry.child.deleted.v1.json"
    stale.write_text("{}\n")
    (tmp_path / "asyncapi.json").write_text("{}\n")
    with pytest.raises(SystemExit, match="out of date") as exit_info:
        export.main(["--check"])
    listing = str(exit_info.value.code)
    assert "registry.child.deleted.v1.json" in listing
    assert "asyncapi.json" in listing

    export.main([])
    assert not stale.exists()
    assert {path: path.read_bytes() for path in tmp_path.rglob("*.json")} == first


@pytest.mark.parametrize("type_name", sorted(CATALOGUE))
def test_every_schema_is_valid_draft_2020_12(type_name: str) -> None:
    schema = export.schemas()[type_name]
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == schema["properties"]["dataschema"]["const"] == f"urn:handinhand:schema:{type_name}"
    assert schema["properties"]["type"]["const"] == type_name
    assert schema["properties"]["data"]["required"] == CATALOGUE[type_name].model_json_schema()["required"]


def test_an_encoded_message_matches_its_schema_and_the_cloudevents_sdk_reads_it() -> None:
    raw = child_registered()
    message = json.loads(raw)
    validator(ChildRegistered.type_name).validate(message)

    parsed = JSONFormat().read(None, raw)
    assert parsed.get_specversion() == "1.0"
    assert parsed.get_id() == message["id"]
    assert parsed.get_type() == "registry.child.registered.v2"
    assert parsed.get_subject() == str(CHILD_ID)
    assert parsed.get_dataschema() == "urn:handinhand:schema:registry.child.registered.v2"
    assert parsed.get_time() == datetime(2024, 3, 1, 8, 30, tzinfo=UTC)
    assert parsed.get_extension("sequence") == "3"  # a String, as the sequence extension defines it
    assert parsed.get_extension("correlationid") == message["correlationid"]
    assert parsed.get_data() == message["data"]


def without(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda message: message.pop(key)


def set_to(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda message: message.update({key: value})


def drop_age_band(message: dict[str, Any]) -> None:
    del message["data"]["age_band"]


def add_age(message: dict[str, Any]) -> None:
    message["data"]["age"] = 9


@pytest.mark.parametrize(
    "damage",
    [
        without("id"),
        set_to("id", ""),
        without("specversion"),
        without("sequence"),
        set_to("sequence", 0),
        drop_age_band,
        add_age,
        set_to("name", "a name must never travel"),
        set_to("type", "registry.child.registered.v1"),
        set_to("dataschema", "urn:handinhand:schema:registry.child.registered.v1"),
        set_to("datacontenttype", "text/plain"),
    ],
    ids=[
        "no-id",
        "empty-id",
        "no-specversion",
        "no-sequence",
        "sequence-0",
        "data-missing-field",
        "data-extra-field",
        "extra-top-level-field",
        "other-type",
        "other-dataschema",
        "other-datacontenttype",
    ],
)
def test_a_damaged_message_fails_its_schema(damage: Callable[[dict[str, Any]], None]) -> None:
    message = json.loads(child_registered())
    damage(message)
    with pytest.raises(ValidationError):
        validator(ChildRegistered.type_name).validate(message)


@pytest.mark.parametrize("damage", [without("id"), drop_age_band, set_to("name", "x")], ids=["id", "data", "extra"])
def test_the_decoder_refuses_what_the_schema_refuses(damage: Callable[[dict[str, Any]], None]) -> None:
    message = json.loads(child_registered())
    damage(message)
    with pytest.raises(MalformedMessage):
        decode(json.dumps(message).encode()).event()


def test_a_v1_payload_is_read_as_v2_with_an_age_band_instead_of_the_age() -> None:
    event = upcast(ChildRegisteredV1.type_name, V1_DATA)
    assert isinstance(event, ChildRegistered)
    assert event.age_band == "9-11"
    assert event.child_id == CHILD_ID
    assert event.needs == ["tutoring"]
    assert "age" not in event.model_dump()


@pytest.mark.parametrize(
    "change", [{"age": 18}, {"age": -1}, {"age": "nine"}, {"county_code": "12345"}, {"age_band": "9-11"}]
)
def test_an_invalid_v1_payload_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises((ModelInvalid, ValueError)):
        upcast(ChildRegisteredV1.type_name, {**V1_DATA, **change})


def test_a_v1_envelope_yields_the_v2_model() -> None:
    raw = encode(envelope(recorded(ChildRegisteredV1.type_name, V1_DATA), "registry"))
    validator(ChildRegisteredV1.type_name).validate(json.loads(raw))
    event = decode(raw).event()
    assert isinstance(event, ChildRegistered)
    assert event.age_band == "9-11"


def test_a_v1_envelope_with_an_age_out_of_range_is_malformed() -> None:
    raw = encode(envelope(recorded(ChildRegisteredV1.type_name, {**V1_DATA, "age": 40}), "registry"))
    with pytest.raises(MalformedMessage):
        CloudEvent.model_validate_json(raw).event()


@pytest.mark.parametrize("type_name", sorted(CATALOGUE))
def test_type_names_and_subjects_follow_the_conventions(type_name: str) -> None:
    event = CATALOGUE[type_name]
    assert TYPE_NAME.match(type_name), type_name
    assert event.type_name == type_name
    assert event.subject() == type_name.rsplit(".", 1)[0]
    assert event.context() in CONTEXT_STREAMS, f"{type_name}: no stream for context {event.context()!r}"


@pytest.mark.parametrize("type_name", sorted(name for name, event in CATALOGUE.items() if not event.current))
def test_every_old_version_upcasts_to_the_current_version_of_its_subject(type_name: str) -> None:
    newest = type_name
    while newest in UPCASTERS:
        newest = UPCASTERS[newest][0]
    assert CATALOGUE[newest].current, f"{type_name} upcasts to {newest}, which is not current"
    assert CATALOGUE[newest].subject() == CATALOGUE[type_name].subject()


def test_each_subject_has_one_current_version() -> None:
    subjects = [event.subject() for event in CATALOGUE.values() if event.current]
    assert len(subjects) == len(set(subjects))


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_asyncapi_document_describes_every_subject_and_type() -> None:
    document = export.asyncapi()
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "handinhand events"
    channels = {channel["address"]: channel for channel in document["channels"].values()}
    for type_name, event in CATALOGUE.items():
        channel = channels[event.subject()]
        assert channel["x-stream"] == CONTEXT_STREAMS[event.context()]
        message = resolve(document, channel["messages"][type_name]["$ref"])
        assert message == document["components"]["messages"][type_name]
        assert message["name"] == type_name
        assert message["contentType"] == "application/cloudevents+json"
        assert resolve(document, message["payload"]["$ref"])["properties"]["type"]["const"] == type_name
        assert message.get("x-deprecated", False) is not event.current


def test_asyncapi_send_operations_cover_every_current_type() -> None:
    document = export.asyncapi()
    sent = set()
    for operation in document["operations"].values():
        assert operation["action"] == "send"
        channel = resolve(document, operation["channel"]["$ref"])
        for ref in operation["messages"]:
            assert ref["$ref"].startswith(operation["channel"]["$ref"] + "/messages/")
            name = resolve(document, resolve(document, ref["$ref"])["$ref"])["name"]
            assert CATALOGUE[name].context() == operation["tags"][0]["name"]
            assert CATALOGUE[name].subject() == channel["address"]
            sent.add(name)
    assert sent == {name for name, event in CATALOGUE.items() if event.current}


def test_asyncapi_payloads_accept_and_refuse_what_the_standalone_schemas_do() -> None:
    document = export.asyncapi()
    registry: Registry[Any] = Registry().with_resource(
        "urn:asyncapi", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    payload = document["components"]["messages"][ChildRegistered.type_name]["payload"]["$ref"]
    in_document = Draft202012Validator({"$ref": f"urn:asyncapi{payload}"}, registry=registry)
    message = json.loads(child_registered())
    in_document.validate(message)
    drop_age_band(message)
    with pytest.raises(ValidationError):
        in_document.validate(message)
