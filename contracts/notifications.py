"""Events of the notifications context (stream NOTIFICATIONS)."""

from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import Field, StringConstraints

from contracts.catalogue import Event, upcaster
from contracts.vocabulary import CountyCode

Channel = Literal["inbox", "email", "sms"]
# Urgent: sent at once, quiet hours or not (an escalation); routine: held through the recipient's quiet hours.
Urgency = Literal["routine", "urgent"]


class NoticeRecordedV1(Event):
    """The service decided someone must be told something, through one channel (the inbox, until v2)."""

    type_name: ClassVar[str] = "notifications.notice.recorded.v1"
    current: ClassVar[bool] = False

    notice_id: UUID
    recipient_id: str
    channel: Channel
    reason: str
    county_code: CountyCode
    about_id: UUID
    cause_event_id: UUID


class NoticeRecorded(Event):
    """The service decided someone must be told something (a rule of services/notifications/rules.py, applied to
    the event `cause_event_id`); the delivery log starts here. The recipient is a person (the id their sign-in token
    carries) or a county's group (`county:<code>:coordinators`, `county:<code>:child_directors`); each channel of
    `channels` the recipient takes is tried; an urgent notice is sent in quiet hours too."""

    type_name: ClassVar[str] = "notifications.notice.recorded.v2"

    notice_id: UUID
    recipient_id: str
    reason: str
    channels: list[Channel] = Field(min_length=1)
    urgency: Urgency
    county_code: CountyCode
    about_id: UUID
    cause_event_id: UUID


@upcaster(NoticeRecordedV1.type_name, NoticeRecorded.type_name)
def _notice_recorded_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    upgraded = {key: value for key, value in data.items() if key != "channel"}
    return {**upgraded, "channels": [data["channel"]], "urgency": "routine"}


Language = Literal["zh-CN", "en"]
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]  # HH:MM, Asia/Shanghai


class PreferencesSet(Event):
    """A person chose how they are told: which outward channels (the inbox always), in which language, and their
    quiet hours (Asia/Shanghai; equal ends: none), through which no routine SMS is sent."""

    type_name: ClassVar[str] = "notifications.person.preferences_set.v1"

    person_id: str = Field(min_length=1, max_length=80)
    channels: list[Literal["sms", "email"]] = Field(max_length=2)
    language: Language
    quiet_from: ClockTime
    quiet_until: ClockTime


OutwardChannel = Literal["sms", "email"]
Reason = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,48}$")]  # a short code: never a provider's words


class MessageSent(Event):
    """One message went to one person through one outward channel: the provider took it. `message_id` is the same
    on every try (the provider's idempotency key); it names a notice, a person and a channel, and nothing else."""

    type_name: ClassVar[str] = "notifications.message.sent.v1"

    message_id: UUID
    notice_id: UUID
    person_id: str = Field(min_length=1, max_length=80)
    channel: OutwardChannel


class MessageFailed(Event):
    """One message could not go to one person through one channel, for good: `reason` says why in a short code
    (`gateway_timeout`, `bad_email_address`, …); the person's other channels are not affected."""

    type_name: ClassVar[str] = "notifications.message.failed.v1"

    message_id: UUID
    notice_id: UUID
    person_id: str = Field(min_length=1, max_length=80)
    channel: OutwardChannel
    reason: Reason
