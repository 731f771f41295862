"""Correlation ids and trace context taken from outside: only shapes that cannot carry a name or a phone are kept."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import structlog

from backbone import context

NAME, PHONE, ID_NUMBER = "韦小芳", "13907730001", "450325201503021234"
W3C_EXAMPLE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"  # the example of the W3C recommendation


@pytest.fixture(autouse=True)
def unbound() -> Iterator[None]:
    yield
    context.clear()


@pytest.mark.parametrize(
    "value",
    [
        "0f8c2a4e-5b1d-4c3f-9e7a-2d6b8f1c3a5e",
        "0F8C2A4E-5B1D-4C3F-9E7A-2D6B8F1C3A5E",  # as .NET writes them
        "8a3f0c9e1b7d4e2f6a5c0b9d8e7f6a1b",  # nginx's $request_id
        "4bf92f3577b34da6a3ce929d0e0e4736",  # a W3C trace id
        "00f067aa0ba902b7",  # a 64-bit span id
        "a" * 64,
    ],
)
def test_a_uuid_or_hex_id_with_a_letter_is_kept(value: str) -> None:
    assert context.safe_id(value) == value
    assert context.received(value, None, None).correlation_id == value


@pytest.mark.parametrize(
    "value",
    [
        NAME,
        PHONE,
        ID_NUMBER,  # 18 digits: hex digits all, but a number alone is never an id
        "45032520150302123X",
        "0" * 21 + PHONE,  # 32 digits, the length of an nginx id
        f"guardian-{PHONE}-{NAME}",
        "weixiaofang",  # a name in pinyin
        "wei-xiaofang-2015",
        "child-13907730001",
        "abcdef0123456789a" + "b" * 48,  # 65 characters
        "abcdef012345678",  # 15
        "0f8c2a4e-5b1d-4c3f-9e7a-2d6b8f1c3a5e\n",
        f"0f8c2a4e-5b1d-4c3f-9e7a-2d6b8f1c3a5e{NAME}",
        "",
    ],
)
def test_anything_else_is_replaced_by_a_new_uuid_and_never_bound(value: str) -> None:
    assert context.safe_id(value) is None
    causes = context.received(value, value, None)
    assert causes.correlation_id != value
    assert uuid.UUID(causes.correlation_id).version == 4
    assert causes.causation_id is None
    assert structlog.contextvars.get_contextvars()["correlation_id"] == causes.correlation_id
    assert context.current() == causes


@pytest.mark.parametrize(
    "value", [W3C_EXAMPLE, "00-5a0e9c3b7d1f4e2a8c6b0d9e7f1a3c5b-7e9a1c3b5d0f2e4a-01", "01-" + W3C_EXAMPLE[3:]]
)
def test_a_w3c_traceparent_is_kept(value: str) -> None:
    assert context.received(None, None, value).traceparent == value


@pytest.mark.parametrize(
    "value",
    [
        "ff" + W3C_EXAMPLE[2:],  # version ff is forbidden
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # an all-zero trace id
        f"00-4bf92f3577b34da6a3ce929d0e0e4736-{'0' * 16}-01",  # an all-zero parent id
        W3C_EXAMPLE.upper(),  # lowercase hex only
        W3C_EXAMPLE + "-extra",
        f"00-{'0' * 21}{PHONE}-00f067aa0ba902b7-{NAME}",
        NAME,
        PHONE,
        "",
    ],
)
def test_any_other_traceparent_is_replaced_by_a_new_one(value: str) -> None:
    traceparent = context.received(None, None, value).traceparent
    assert traceparent != value
    assert context.safe_traceparent(traceparent) == traceparent


def test_a_reaction_to_an_event_with_a_bad_id_does_not_carry_it_on() -> None:
    """An event recorded before ids were checked (its correlation id a phone, its trace version ff) starts a new
    correlation and trace in what it causes; a good one is carried on, with the event as the cause."""
    event_id = str(uuid.uuid4())
    bad = context.caused_by({f"guardian-{PHONE}-{NAME}"}, event_id, "ff" + W3C_EXAMPLE[2:])
    assert f"guardian-{PHONE}" not in bad.correlation_id
    assert uuid.UUID(bad.correlation_id).version == 4
    assert bad.causation_id == event_id
    assert bad.traceparent != "ff" + W3C_EXAMPLE[2:]
    assert structlog.contextvars.get_contextvars()["correlation_id"] == bad.correlation_id

    good_id = str(uuid.uuid4())
    good = context.caused_by({good_id}, event_id, W3C_EXAMPLE)
    assert (good.correlation_id, good.causation_id, good.traceparent) == (good_id, event_id, W3C_EXAMPLE)

    mixed = context.caused_by({good_id, str(uuid.uuid4())}, event_id, W3C_EXAMPLE)
    assert mixed.correlation_id != good_id
    assert (mixed.causation_id, mixed.traceparent == W3C_EXAMPLE) == (None, False)
