"""Quiet hours and channel settings, without I/O: a routine SMS in the quiet hours waits for their end (Asia/Shanghai);
an escalation, an email and the inbox do not wait; the channels a person takes out of a rule's; the SMS gateway over
HTTPS only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from backbone.clock import PROGRAMME_TIMEZONE as ZONE
from services.notifications.preferences import DEFAULT, Preferences, channels_for, release_at
from services.notifications.settings import ChannelSettings


def shanghai(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (shanghai(3, 23, 15), shanghai(4, 7)),  # late evening: the next morning
        (shanghai(4, 2, 30), shanghai(4, 7)),  # after midnight: the same morning
        (shanghai(4, 22), shanghai(5, 7)),  # the first minute of the quiet hours is quiet
        (shanghai(4, 7), shanghai(4, 7)),  # the first minute after them is not
        (shanghai(4, 12), shanghai(4, 12)),  # midday: at once
    ],
)
def test_a_routine_sms_in_the_quiet_hours_waits_for_their_end(now: datetime, expected: datetime) -> None:
    assert release_at(now, "sms", "routine", DEFAULT) == expected


@pytest.mark.parametrize(("channel", "urgency"), [("sms", "urgent"), ("email", "routine"), ("inbox", "routine")])
def test_an_escalation_an_email_and_the_inbox_go_at_once_at_night(channel: str, urgency: str) -> None:
    night = shanghai(4, 3)
    assert release_at(night, channel, urgency, DEFAULT) == night  # type: ignore[arg-type]


def test_quiet_hours_of_the_persons_own_within_one_day_and_none_at_all() -> None:
    siesta = Preferences(quiet_from="12:30", quiet_until="14:00")
    assert release_at(shanghai(4, 13), "sms", "routine", siesta) == shanghai(4, 14)
    assert release_at(shanghai(4, 23), "sms", "routine", siesta) == shanghai(4, 23)
    never = Preferences(quiet_from="00:00", quiet_until="00:00")
    assert release_at(shanghai(4, 3), "sms", "routine", never) == shanghai(4, 3)


def test_a_person_gets_the_rules_channels_they_take_and_always_the_inbox() -> None:
    rule = ("sms", "email", "inbox")
    assert channels_for(rule, DEFAULT) == ["sms", "email", "inbox"]  # type: ignore[arg-type]
    assert channels_for(rule, Preferences(channels=("email",))) == ["email", "inbox"]  # type: ignore[arg-type]
    assert channels_for(rule, Preferences(channels=())) == ["inbox"]  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["http://sms.example.cn/send", "ftp://sms.example.cn", "https://", "sms.example.cn"])
def test_the_sms_gateway_is_reached_over_https_only_but_on_this_machine(url: str) -> None:
    with pytest.raises(ValidationError, match="SMS_GATEWAY_URL"):
        ChannelSettings(sms_gateway_url=url)
    assert ChannelSettings(sms_gateway_url="https://sms.example.cn/send").sms_gateway_url
    assert ChannelSettings(sms_gateway_url="http://127.0.0.1:9000/send").sms_gateway_url
