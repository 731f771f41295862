"""Messages reach people: the notifications service in this process, the registry beside it for contacts (asked with
the service's own token), a real SMTP server (aiosmtpd) and a real HTTP server standing in for the SMS gateway, on
real NATS and each database. One message a person and channel, in their language, whatever the bus repeats; a
gateway that fails now and then costs no second SMS; a dead channel holds up no other; quiet hours hold a routine
SMS and not an escalation; no contact detail on the bus or in a log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from prometheus_client import REGISTRY as METRICS
from pydantic import SecretStr
from sqlalchemy import select
from structlog.testing import capture_logs

from backbone.clock import PROGRAMME_TIMEZONE, SettableClock, local_date
from backbone.database import Database
from backbone.natsserver import NatsServer
from backbone.servicetoken import ServiceToken
from backbone.settings import Settings
from contracts.catalogue import CATALOGUE, CONTEXT_STREAMS, Event
from contracts.cloudevents import CONTENT_TYPE, CloudEvent, dataschema, decode, encode
from contracts.matching import ChildOverdue, ChildVisitDue, PairingConfirmed, WishClaimed, WishFulfilled, WishPosted
from services.notifications.channels.email import SmtpMailer
from services.notifications.channels.sms import SmsGateway
from services.notifications.directory import Directory
from services.notifications.escalations import OpenEscalation
from services.notifications.sender import Outbound
from services.notifications.settings import ChannelSettings
from services.registry.app import create_app as create_registry_app
from tests.helpers import RegistryEvents, auth, child_registration, keys, read_stream, token, wait_until
from tests.integration.account_steps import PASSWORD, accept, active, create, sign_in, volunteer
from tests.integration.conftest import serve_matching, serve_notifications
from tests.integration.standins import KEY, SIGN, Answer, Gateway, Mailbox, serve_gateway, smtp_server

XINGAN = "450325"
MORNING = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai
SENDER = "noreply@handinhand.example"
COORDINATOR_PHONE, DIRECTOR_PHONE, VOLUNTEER_PHONE = "13907730325", "13907730888", "13977310001"
VOLUNTEER_EMAIL = "li.mei@example.org"
DONOR_PHONE, DONOR_EMAIL = "13907710520", "gifts@onefoundation.example"
COORDINATOR_EMAIL = "wei.coordinator@example.gov.cn"
CONTACTS = (
    COORDINATOR_PHONE,
    COORDINATOR_EMAIL,
    DIRECTOR_PHONE,
    VOLUNTEER_PHONE,
    VOLUNTEER_EMAIL,
    DONOR_PHONE,
    DONOR_EMAIL,
)
COORDINATOR = auth("coordinator", [XINGAN])
CONSOLE = "https://guanai.example.cn"


@dataclass
class Stack:
    registry: httpx.AsyncClient
    notifications: httpx.AsyncClient
    gateway: Gateway
    mailbox: Mailbox
    clock: SettableClock
    js: JetStreamContext
    database_url: str
    replica: Callable[[], contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]
    versions: dict[str, int] = field(default_factory=dict)

    async def emit(self, event: Event, times: int = 1) -> None:
        """Put `event` on its stream as matching would, `times` times over (the same envelope: a redelivery)."""
        aggregate = event.aggregate_id()
        self.versions[aggregate] = self.versions.get(aggregate, 0) + 1
        await put_on_the_bus(self.js, matching_envelope(event, self.versions[aggregate], self.clock.now()), times)

    async def messages(self, **params: str) -> list[dict[str, Any]]:
        answer = await self.notifications.get(
            "/views/messages", params={"county_code": XINGAN, "limit": "500", **params}, headers=COORDINATOR
        )
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    async def wait_for(self, count: int, what: str, **params: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []

        async def enough() -> bool:
            found[:] = await self.messages(**params)
            return len(found) >= count

        await wait_until(enough, within=30, what=what)
        return found

    async def person(self, role: str, phone: str, email: str | None = None, **body: Any) -> str:
        """An active account; returns the id its notices are addressed to (its person's, or its own)."""
        account = await active(self.registry, phone, role=role, email=email, **body)
        return str(account.get("person_id") or account["id"])

    async def prefer(self, role: str, person: str, **chosen: Any) -> None:
        headers = {"Authorization": f"Bearer {token(role, sub=person)}"}  # type: ignore[arg-type]
        body = {"channels": ["sms", "email"], "language": "zh-CN", "quiet_from": "22:00", "quiet_until": "07:00"}
        answer = await self.notifications.put("/preferences/me", json=body | chosen, headers=headers)
        assert answer.status_code == 200, answer.text


@pytest.fixture
async def registry_app(nats_server: NatsServer, clock: SettableClock, tmp_path: Path) -> AsyncIterator[FastAPI]:
    """The registry beside the notifications service, on the same NATS and clock, with a database of its own (the
    notifications service has the database under test)."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
    settings = Settings(database_url=database, nats_url=nats_server.url, timer_seconds=0.2, **keys().settings())
    app: FastAPI = create_registry_app(settings, clock)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def matching(nats_server: NatsServer, clock: SettableClock, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The matching service beside them, with a database of its own."""
    async with serve_matching(f"sqlite+aiosqlite:///{tmp_path / 'matching.db'}", nats_server, clock) as client:
        yield client


@pytest.fixture
async def stack(
    registry_app: FastAPI,
    registry: httpx.AsyncClient,
    nats_server: NatsServer,
    nc: NATS,
    database_url: str,
    clock: SettableClock,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Stack]:
    """Everything a message passes through; a test marked `@pytest.mark.channels(name=value)` gets those channel
    settings too."""
    clock.set(MORNING)
    marker = request.node.get_closest_marker("channels")
    created = await create(registry, login="notifications", role="service", name="notifications")
    secret = SecretStr(created["handover"]["token"])
    service_token = ServiceToken("http://registry/auth/token", "notifications", secret, clock)
    to_registry = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=registry_app), base_url="http://registry", auth=service_token
    )
    mailbox = Mailbox()
    async with serve_gateway() as gateway:
        with smtp_server(mailbox) as smtp_port:
            values: dict[str, Any] = {
                "sms_gateway_url": gateway.url,
                "sms_gateway_key": KEY,
                "sms_sign_name": SIGN,
                "sms_timeout_seconds": 1.0,
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp_port,
                "smtp_starttls": False,
                "smtp_from": SENDER,
                "smtp_timeout_seconds": 3.0,
                "console_url": CONSOLE,
                "send_every_seconds": 0.1,
                "retry_first_seconds": 60.0,  # the test moves the clock on to the next try
                "send_max_attempts": 3,
            } | (marker.kwargs if marker else {})
            chosen = ChannelSettings(**values)
            settings = Settings(
                database_url=database_url, nats_url=nats_server.url, timer_seconds=0.2, **keys().settings()
            )

            @contextlib.asynccontextmanager
            async def replica() -> AsyncIterator[httpx.AsyncClient]:
                """A replica of the notifications service: its own channels, the same database, NATS and registry."""
                outbound = Outbound(
                    chosen, Directory(to_registry), {"sms": SmsGateway(chosen), "email": SmtpMailer(chosen)}
                )
                async with serve_notifications(settings, clock, outbound) as (_, client):
                    yield client
                for channel in outbound.channels.values():
                    await channel.close()

            async with replica() as client:
                yield Stack(registry, client, gateway, mailbox, clock, nc.jetstream(), database_url, replica)
            await to_registry.aclose()


def matching_envelope(event: Event, version: int = 1, at: datetime | None = None) -> CloudEvent:
    """`event` as matching would publish it, the `version`-th of its aggregate."""
    return CloudEvent(
        id=str(uuid.uuid4()),
        source="/matching",
        type=event.type_name,
        subject=event.aggregate_id(),
        time=at or datetime.now(UTC),
        dataschema=dataschema(event.type_name),
        data=event.model_dump(mode="json"),
        sequence=version,
        correlationid=str(uuid.uuid4()),
    )


async def put_on_the_bus(js: JetStreamContext, envelope: CloudEvent, times: int = 1, first_copy: int = 0) -> None:
    """The envelope on its context's stream `times` times: each copy its own stream message (the duplicate window
    would drop copies of one message id), as a redelivery brings it again."""
    kind = CATALOGUE[envelope.type]
    for copy in range(first_copy, first_copy + times):
        headers = {"Nats-Msg-Id": f"{envelope.id}/{copy}", "Content-Type": CONTENT_TYPE}
        await js.publish(kind.subject(), encode(envelope), headers=headers, stream=CONTEXT_STREAMS[kind.context()])


def pairing(child: uuid.UUID | None = None, volunteer_id: str | None = None) -> PairingConfirmed:
    return PairingConfirmed(
        pairing_id=uuid.uuid4(),
        child_id=child or uuid.uuid4(),
        volunteer_id=uuid.UUID(volunteer_id) if volunteer_id else uuid.uuid4(),
        county_code=XINGAN,
    )


async def on_the_bus(js: JetStreamContext, type_name: str, count: int) -> tuple[list[dict[str, Any]], str]:
    """Once the NOTIFICATIONS stream holds `count` events of `type_name` (the relay publishes what was committed a
    moment later): those events' data, and all of the stream's text."""
    text: list[str] = []

    async def published() -> bool:
        text[:] = [message.data.decode() for message in await read_stream(js, "NOTIFICATIONS")]
        return len(of_type(text, type_name)) >= count

    await wait_until(published, what=f"{count} {type_name} on the bus")
    return of_type(text, type_name), "".join(text)


def of_type(messages: list[str], type_name: str) -> list[dict[str, Any]]:
    events = [json.loads(message) for message in messages]
    return [event["data"] for event in events if event["type"] == type_name]


async def test_a_pairing_confirmation_reaches_the_volunteer_once_by_email_in_their_language_though_told_thrice(
    stack: Stack,
) -> None:
    with capture_logs() as logs:
        volunteer_id = await volunteer(stack.registry, phone=VOLUNTEER_PHONE)
        await stack.person("volunteer", VOLUNTEER_PHONE, VOLUNTEER_EMAIL, counties=[], person_id=volunteer_id)
        await stack.prefer("volunteer", volunteer_id, channels=["email"], language="en")
        await stack.person("coordinator", COORDINATOR_PHONE, counties=[XINGAN])

        await stack.emit(pairing(volunteer_id=volunteer_id), times=3)
        sent = await stack.wait_for(2, "the volunteer's email and the coordinator's SMS", status="sent")
        # Something after the copies, on the same consumer: once it is told, the copies were all seen.
        await stack.emit(pairing())
        await stack.wait_for(3, "the next pairing's SMS to the coordinator", status="sent")

    assert sorted((m["channel"], m["person_id"] == volunteer_id, m["attempts"]) for m in sent) == [
        ("email", True, 1),
        ("sms", False, 1),
    ]
    [mail] = stack.mailbox.messages()
    assert mail["To"] == VOLUNTEER_EMAIL
    assert mail["Content-Language"] == "en"
    assert mail["Message-ID"] == f"<{next(m['message_id'] for m in sent if m['channel'] == 'email')}@handinhand>"
    body = mail.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Xing'an" in text  # the county, in English
    assert "兴安" not in text + mail["Subject"]
    first_sms = stack.gateway.received[0]
    assert first_sms.body["phone_numbers"] == [COORDINATOR_PHONE]
    assert first_sms.body["template_code"] == "pairing_confirmed.zh-CN"
    assert first_sms.body["template_param"]["county"] == "兴安县"
    assert len(stack.gateway.received) == 2  # the coordinator's two pairings, each once
    events, text = await on_the_bus(stack.js, "notifications.message.sent.v1", 3)
    assert len(events) == 3
    assert not [contact for contact in CONTACTS if contact in text]
    assert not [contact for contact in CONTACTS if contact in str(logs)]


@pytest.mark.channels(send_max_attempts=3)
async def test_a_503_then_a_200_from_the_gateway_is_one_sms(stack: Stack) -> None:
    await stack.person("coordinator", COORDINATOR_PHONE, counties=[XINGAN])
    stack.gateway.script = [Answer(status=503)]

    await stack.emit(pairing())

    async def first_try_failed() -> bool:
        return any(m["error"] for m in await stack.messages(status="pending"))

    await wait_until(first_try_failed, what="the first try to fail")
    [waiting] = await stack.messages()
    assert (waiting["error"], waiting["attempts"]) == ("gateway_status_503", 1)
    stack.clock.advance(timedelta(seconds=60))  # the first back-off
    [sent] = await stack.wait_for(1, "the second try to go", status="sent")

    assert sent["attempts"] == 2
    keys_sent = [request.headers["idempotency-key"] for request in stack.gateway.received]
    assert keys_sent == [sent["message_id"]] * 2  # the gateway knows the second for the first: one SMS


@pytest.mark.channels(send_max_attempts=2)
async def test_a_gateway_that_never_answers_ends_failed_with_a_reason_and_the_email_still_goes(stack: Stack) -> None:
    volunteer_id = await volunteer(stack.registry, phone=VOLUNTEER_PHONE)
    await stack.person("volunteer", VOLUNTEER_PHONE, VOLUNTEER_EMAIL, counties=[], person_id=volunteer_id)
    stack.gateway.script = [Answer(hang=True), Answer(hang=True)]

    await stack.emit(pairing(volunteer_id=volunteer_id))
    [email] = await stack.wait_for(1, "the email to go while the SMS hangs", status="sent")
    assert email["channel"] == "email"
    assert len(stack.mailbox.messages()) == 1

    async def first_try_timed_out() -> bool:
        return any(m["error"] == "gateway_timeout" for m in await stack.messages(status="pending"))

    await wait_until(first_try_timed_out, what="the SMS's first try to time out")
    stack.clock.advance(timedelta(seconds=60))
    [failed] = await stack.wait_for(1, "the SMS to be given up", status="failed")

    assert (failed["channel"], failed["error"], failed["attempts"]) == ("sms", "gateway_timeout", 2)
    [told], _ = await on_the_bus(stack.js, "notifications.message.failed.v1", 1)
    assert told == {
        "message_id": failed["message_id"],
        "notice_id": failed["notice_id"],
        "person_id": failed["person_id"],
        "channel": "sms",
        "reason": "gateway_timeout",
    }


async def test_quiet_hours_hold_a_routine_sms_until_seven_but_not_an_escalation(stack: Stack) -> None:
    stack.clock.set(datetime(2026, 12, 1, 15, 30, tzinfo=UTC))  # 23:30 in Asia/Shanghai
    coordinator = await stack.person("coordinator", COORDINATOR_PHONE, counties=[XINGAN])
    director = await stack.person("child_director", DIRECTOR_PHONE, counties=[XINGAN])

    await stack.emit(pairing())
    late = {"child_id": uuid.uuid4(), "county_code": XINGAN, "risk_level": "high", "due_at": MORNING}
    await stack.emit(ChildVisitDue(**late, because="registered"))
    await stack.emit(ChildOverdue(**late, escalated_to="child_director"))

    urgent = await stack.wait_for(2, "the escalation by SMS at night", status="sent")
    assert {(m["person_id"], m["reason"]) for m in urgent} == {
        (director, "overdue_escalated"),
        (coordinator, "overdue_escalated"),
    }
    [held] = await stack.wait_for(1, "the pairing's SMS held", status="pending")
    seven = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)  # 07:00 in Asia/Shanghai
    assert (held["reason"], held["held"], datetime.fromisoformat(held["due_at"])) == ("pairing_confirmed", True, seven)

    stack.clock.set(seven - timedelta(minutes=1))
    await asyncio.sleep(0.5)  # the sender goes round a few times: still held
    assert [m["reason"] for m in await stack.messages(status="pending")] == ["pairing_confirmed"]
    stack.clock.set(seven)
    await stack.wait_for(3, "the held SMS at seven", status="sent")
    assert [r.body["template_code"] for r in stack.gateway.received] == [
        "overdue_escalated.zh-CN",
        "overdue_escalated.zh-CN",
        "pairing_confirmed.zh-CN",
    ]


async def test_a_donor_is_told_of_their_wish_by_email_and_nothing_names_the_child(stack: Stack) -> None:
    created = await stack.registry.post("/donors", json={"name": "壹基金", "kind": "foundation"}, headers=auth("admin"))
    assert created.status_code == 201, created.text
    donor_id = created.json()["id"]
    await stack.person("donor", DONOR_PHONE, DONOR_EMAIL, counties=[], person_id=donor_id)
    await stack.prefer("donor", donor_id, channels=["email"])
    registration = child_registration()  # a real child in the registry, with a name, a village, a guardian
    registered = await stack.registry.post("/children", json=registration, headers=COORDINATOR)
    assert registered.status_code == 201, registered.text
    wish, child = uuid.uuid4(), uuid.UUID(registered.json()["id"])
    facts = {"wish_id": wish, "child_id": child, "county_code": XINGAN}
    deadline = datetime(2026, 12, 20, 4, 0, tzinfo=UTC)
    await stack.emit(WishPosted(**facts, item="一个书包", category="study", estimated_value_yuan=80))
    await stack.emit(WishClaimed(**facts, donor_id=donor_id, claim_deadline=deadline))
    await stack.emit(WishFulfilled(**facts, donor_id=donor_id))

    await stack.wait_for(2, "the donor's two emails", status="sent")
    mails = stack.mailbox.messages()
    assert [mail["To"] for mail in mails] == [DONOR_EMAIL, DONOR_EMAIL]
    told = [
        "\n".join((str(mail["Subject"]), *(mail.get_body((part,)).get_content() for part in ("plain", "html"))))
        for mail in mails
    ]  # as the donor reads them: decoded
    secrets = [str(child), "一个书包", *(registration[field] for field in ("name", "village", "guardian_name"))]
    assert not [secret for secret in secrets for text in told if secret in text]
    assert [text for text in told if "12月20日" in text]  # the claim's deadline, in China's calendar
    assert all("兴安县" in text for text in told)


async def test_an_overdue_high_risk_child_is_escalated_on_day_8_again_on_day_9_and_not_after_the_visit(
    stack: Stack, matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    stack.clock.set(datetime.now(UTC))  # the registry's events carry the time they are sent
    director = await stack.person("child_director", DIRECTOR_PHONE, counties=[XINGAN])
    child = await registry_events.child("high")  # a visit every 7 days (matching's default for high risk)

    async def escalations() -> list[dict[str, Any]]:
        found = await stack.messages(status="sent")
        return [m for m in found if m["reason"] == "overdue_escalated" and m["person_id"] == director]

    async def told(times: int) -> bool:
        return len(await escalations()) == times

    stack.clock.advance(timedelta(days=7, hours=1))  # day 8: the visit due on day 7 has not been made
    await wait_until(lambda: told(1), what="the child director told on day 8")
    day_9 = local_date(stack.clock.now()) + timedelta(days=1)
    stack.clock.set(datetime.combine(day_9, time(7, 59), PROGRAMME_TIMEZONE))  # day 9, before the day's work
    await asyncio.sleep(0.5)  # the timers go round: not yet
    assert await told(1)
    stack.clock.set(datetime.combine(day_9, time(8, 1), PROGRAMME_TIMEZONE))  # its morning
    await wait_until(lambda: told(2), what="the child director told again on the morning of day 9")

    visit = {
        "kind": "visit",
        "in_person": True,
        "visitor": "child_director",
        "occurred_at": (stack.clock.now() - timedelta(hours=1)).isoformat(),
        "duration_minutes": 45,
    }
    answer = await matching.post(f"/children/{child}/contacts", json=visit, headers=COORDINATOR)
    assert answer.status_code == 201, answer.text

    async def closed() -> bool:  # the visit has moved the schedule on: no escalation stays open
        async with Database(stack.database_url).read() as conn:
            return not (await conn.execute(select(OpenEscalation))).all()

    await wait_until(closed, what="the escalation closed by the visit")
    stack.clock.set(datetime.combine(day_9 + timedelta(days=1), time(9, 0), PROGRAMME_TIMEZONE))  # day 10's morning
    await asyncio.sleep(1)
    assert len(await escalations()) == 2
    assert [r.body["phone_numbers"] for r in stack.gateway.received] == [[DIRECTOR_PHONE]] * 2


async def test_reminders_before_a_visit_and_before_a_vetting_step_expires_on_the_clock(stack: Stack) -> None:
    volunteer_id = await volunteer(stack.registry, phone=VOLUNTEER_PHONE)
    await stack.person("volunteer", VOLUNTEER_PHONE, counties=[], person_id=volunteer_id)
    await stack.prefer("volunteer", volunteer_id, channels=["sms"], quiet_from="00:00", quiet_until="00:00")  # none
    child, registered = uuid.uuid4(), stack.clock.now()
    await stack.emit(pairing(child, volunteer_id))
    due = registered + timedelta(days=3)
    await stack.emit(
        ChildVisitDue(child_id=child, county_code=XINGAN, risk_level="high", due_at=due, because="visited")
    )
    expires = (registered + timedelta(days=40)).date()  # it no longer counts from midnight in China that day
    step = {
        "step": "record_check",
        "result": "passed",
        "checked_at": str(registered.date()),
        "expires_at": str(expires),
    }
    answer = await stack.registry.post(f"/volunteers/{volunteer_id}/screenings", json=step, headers=COORDINATOR)
    assert answer.status_code == 200, answer.text
    await stack.wait_for(1, "the pairing's SMS", status="sent")

    async def reminded(count: int) -> bool:
        told = [m["reason"] for m in reversed(await stack.messages(status="sent"))]
        return told[1:] == [reason for _, reason in moments[:count]]  # the pairing's first

    ends = datetime.combine(expires, datetime.min.time(), ZoneInfo("Asia/Shanghai")).astimezone(UTC)
    moments = [
        (due - timedelta(days=1), "visit_due_tomorrow"),
        (ends - timedelta(days=30), "screening_expiring"),
        (ends - timedelta(days=7), "screening_expiring"),
        (ends, "screening_expired"),
    ]
    for count, (at, reason) in enumerate(moments, start=1):
        stack.clock.set(at - timedelta(minutes=1))
        await asyncio.sleep(0.5)  # the timers go round: not yet
        assert await reminded(count - 1)
        stack.clock.set(at + timedelta(minutes=1))
        await wait_until(partial(reminded, count), what=f"the {reason} reminder")
    texts = [request.body["template_code"] for request in stack.gateway.received]
    assert texts == ["pairing_confirmed.zh-CN", "visit_due_tomorrow.zh-CN"] + ["screening_expiring.zh-CN"] * 2 + [
        "screening_expired.zh-CN"
    ]


async def test_two_replicas_sending_at_once_send_each_message_once(stack: Stack) -> None:
    await stack.person("coordinator", COORDINATOR_PHONE, counties=[XINGAN])
    stack.gateway.script = [Answer(delay=0.2) for _ in range(20)]  # slow: both senders have sends in flight at once
    labels = {"channel": "sms", "reason": "pairing_confirmed"}
    before = METRICS.get_sample_value("notifications_messages_sent_total", labels) or 0
    async with stack.replica():  # a second replica: its consumers share the work, its sender races the first's
        for _ in range(20):
            await stack.emit(pairing())
        sent = await stack.wait_for(20, "twenty SMS to the coordinator", status="sent")
        await asyncio.sleep(1)  # both senders go round a few more times
    keys = [request.headers["idempotency-key"] for request in stack.gateway.received]
    assert sorted(keys) == sorted(m["message_id"] for m in sent)  # each message once, none twice
    assert {m["attempts"] for m in sent} == {1}
    assert METRICS.get_sample_value("notifications_messages_sent_total", labels) == before + 20
    assert "notifications_delivery_seconds_bucket" in (await stack.notifications.get("/metrics")).text


def link_in(sms: Any, page: str) -> str:
    """The token of the link an SMS carries to `page` of the console."""
    link: str = sms.body["template_param"]["link"]
    assert link.startswith(f"{CONSOLE}/{page}#"), "a link to another page"
    return link.split("#", 1)[1]


async def test_an_invitation_reaches_its_owner_once_by_sms_and_email_and_its_link_sets_the_password(
    stack: Stack,
) -> None:
    with capture_logs() as logs:
        volunteer_id = await volunteer(stack.registry, phone=VOLUNTEER_PHONE)
        invited = {"role": "volunteer", "person_id": volunteer_id, "email": VOLUNTEER_EMAIL}
        created = await create(stack.registry, by=COORDINATOR, login=VOLUNTEER_PHONE, **invited)
        sent = await stack.wait_for(2, "the invitation by SMS and email", status="sent")

        # The registry's event again, twice (a redelivery), then another invitation on the same consumer: once that
        # one is sent, the copies were seen, and sent nothing.
        [issued] = await read_stream(stack.js, "REGISTRY", "registry.link.>")
        envelope = decode(issued.data)
        await put_on_the_bus(stack.js, envelope, times=2, first_copy=1)
        await create(stack.registry, by=COORDINATOR, login=DIRECTOR_PHONE, role="child_director", counties=[XINGAN])
        await stack.wait_for(3, "the second invitation's SMS", status="sent")
        await asyncio.sleep(0.5)  # the sender goes round a few more times

    assert sorted((m["reason"], m["channel"], m["person_id"]) for m in sent) == [
        ("invitation", "email", volunteer_id),
        ("invitation", "sms", volunteer_id),
    ]
    first_sms, second_sms = stack.gateway.received
    assert first_sms.body["phone_numbers"] == [VOLUNTEER_PHONE]
    assert first_sms.body["template_code"] == "invitation.zh-CN"
    token = link_in(first_sms, "accept-invitation")
    assert token == created["handover"]["token"]  # the link the coordinator was shown, not another
    [mail] = stack.mailbox.messages()
    body = mail.get_body(("plain",))
    assert body is not None
    assert f"{CONSOLE}/accept-invitation#{token}" in body.get_content()
    assert second_sms.body["phone_numbers"] == [DIRECTOR_PHONE]
    assert len(await stack.messages()) == 3

    assert (await accept(stack.registry, {"token": token})).status_code == 204
    assert (await sign_in(stack.registry, VOLUNTEER_PHONE)).status_code == 200
    secrets = (token, link_in(second_sms, "accept-invitation"), *CONTACTS)
    read = [await read_stream(stack.js, stream) for stream in ("REGISTRY", "NOTIFICATIONS")]
    bus = "".join(message.data.decode() for messages in read for message in messages)
    assert not [secret for secret in secrets if secret in bus]
    assert not [secret for secret in secrets if secret in str(logs)]


async def test_a_reset_asked_for_at_night_is_sent_at_once_and_its_link_sets_a_new_password(stack: Stack) -> None:
    stack.clock.set(datetime(2026, 12, 1, 15, 30, tzinfo=UTC))  # 23:30 in Asia/Shanghai
    coordinator = await stack.person("coordinator", COORDINATOR_PHONE, COORDINATOR_EMAIL, counties=[XINGAN])
    await stack.prefer("coordinator", coordinator, channels=[])  # the inbox alone: but a link they asked for goes

    asked = await stack.registry.post("/auth/password-resets", json={"login": COORDINATOR_PHONE})
    assert asked.status_code == 202
    sent = await stack.wait_for(2, "the reset link by SMS and email, at night", status="sent")

    assert {(m["reason"], m["channel"], m["held"]) for m in sent} == {
        ("password_reset", "sms", False),
        ("password_reset", "email", False),
    }
    [sms] = stack.gateway.received
    assert sms.body["template_code"] == "password_reset.zh-CN"
    token = link_in(sms, "reset-password")
    new = {"token": token, "password": "river-stone-lantern-52"}
    assert (await stack.registry.post("/auth/password-resets/complete", json=new)).status_code == 204
    assert (await sign_in(stack.registry, COORDINATOR_PHONE, "river-stone-lantern-52")).status_code == 200
    assert (await sign_in(stack.registry, COORDINATOR_PHONE, PASSWORD)).status_code == 401


async def test_an_invitation_replaced_while_its_sms_waits_for_the_morning_sends_only_the_newer_link(
    stack: Stack,
) -> None:
    stack.clock.set(datetime(2026, 12, 1, 15, 30, tzinfo=UTC))  # 23:30 in Asia/Shanghai
    created = await create(
        stack.registry, by=COORDINATOR, login=DIRECTOR_PHONE, role="child_director", counties=[XINGAN]
    )
    await stack.wait_for(1, "the first invitation's SMS held", status="pending")
    again = await stack.registry.post(f"/accounts/{created['account']['id']}/invitation", headers=COORDINATOR)
    assert again.status_code == 201, again.text
    held = await stack.wait_for(2, "both invitations' SMS held", status="pending")
    assert {m["held"] for m in held} == {True}

    stack.clock.set(datetime(2026, 12, 1, 23, 0, tzinfo=UTC))  # 07:00
    [failed] = await stack.wait_for(1, "the replaced link given up", status="failed")
    [sent] = await stack.wait_for(1, "the newer link sent", status="sent")

    assert (failed["error"], failed["attempts"]) == ("link_not_valid", 1)
    assert sent["notice_id"] != failed["notice_id"]
    [sms] = stack.gateway.received
    assert link_in(sms, "accept-invitation") == again.json()["token"]
