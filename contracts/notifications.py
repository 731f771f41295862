"""Events of the notifications context (stream NOTIFICATIONS)."""

from typing import ClassVar, Literal
from uuid import UUID

from contracts.catalogue import Event
from contracts.vocabulary import CountyCode

Channel = Literal["inbox", "email", "sms"]


class NoticeRecorded(Event):
    """The service decided someone must be told something; the delivery log starts here."""

    type_name: ClassVar[str] = "notifications.notice.recorded.v1"

    notice_id: UUID
    recipient_id: str
    channel: Channel
    reason: str
    county_code: CountyCode
    about_id: UUID
    cause_event_id: UUID
