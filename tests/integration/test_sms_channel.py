"""The SMS channel against a real HTTP server standing in for the gateway (Starlette on uvicorn, in this event loop):
what the gateway receives, how each failure is told, and that no failure or log line holds the number or the text."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from structlog.testing import capture_logs

from backbone.natsserver import free_port
from services.notifications.channels import Outgoing, SendFailed
from services.notifications.channels.sms import SmsGateway, segments, signed
from services.notifications.settings import ChannelSettings
from tests.helpers import assert_nothing_told
from tests.integration.standins import KEY, SEND_PATH, SIGN, Answer, Gateway, serve_gateway

PHONE = "13800138000"
TEXT = "李梅您好：志愿者王芳将于周六上午十点到家探访。"
TEMPLATE = "SMS_301234567"
PARAMS = {"name": "李梅", "volunteer": "王芳", "when": "周六上午十点"}


def outgoing(to: str = PHONE, text: str = TEXT, sms_segments: int = 1) -> Outgoing:
    return Outgoing(
        message_id=uuid.uuid4(), to=to, text=text, template_id=TEMPLATE, params=dict(PARAMS), sms_segments=sms_segments
    )


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    async with serve_gateway() as served:
        yield served


async def failure(channel: SmsGateway, message: Outgoing) -> SendFailed:
    with pytest.raises(SendFailed) as raised:
        await asyncio.wait_for(channel.send(message), 10)  # a bug in the timeouts fails the test, not hangs it
    return raised.value


async def test_one_send_is_one_request_with_the_template_the_number_and_the_keys(gateway: Gateway) -> None:
    channel = SmsGateway(gateway.settings())
    message = outgoing()

    sent = await channel.send(message)
    await channel.close()

    assert sent == "biz-1"
    [request] = gateway.received
    assert request.body == {
        "phone_numbers": [PHONE],
        "sign_name": SIGN,
        "template_code": TEMPLATE,
        "template_param": PARAMS,
        "out_id": str(message.message_id),
    }
    assert request.headers["idempotency-key"] == str(message.message_id)
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"


async def test_without_a_key_no_authorization_is_sent_and_without_a_biz_id_the_message_id_is_the_answer(
    gateway: Gateway,
) -> None:
    channel = SmsGateway(gateway.settings(sms_gateway_key=None))
    message = outgoing("+8613800138000")
    gateway.script.append(Answer(body=b'{"code": "OK"}'))

    assert await channel.send(message) == str(message.message_id)
    await channel.close()

    [request] = gateway.received
    assert "authorization" not in request.headers
    assert request.body["phone_numbers"] == ["+8613800138000"]


async def test_a_503_is_retried_and_the_retry_carries_the_same_idempotency_key(gateway: Gateway) -> None:
    channel = SmsGateway(gateway.settings())
    message = outgoing()
    gateway.script.append(Answer(503, b"Service Unavailable"))

    failed = await failure(channel, message)
    assert (failed.reason, failed.retryable) == ("gateway_status_503", True)

    assert await channel.send(message) == "biz-1"
    await channel.close()
    assert len(gateway.received) == 2
    first, retry = gateway.received
    assert first.headers["idempotency-key"] == retry.headers["idempotency-key"] == str(message.message_id)
    assert first.body == retry.body


@pytest.mark.parametrize("answer", [Answer(hang=True), Answer(drip=True)], ids=["silent", "dripping"])
async def test_a_gateway_that_takes_too_long_is_retried_as_a_timeout(gateway: Gateway, answer: Answer) -> None:
    channel = SmsGateway(gateway.settings(sms_timeout_seconds=0.3))
    gateway.script.append(answer)

    began = time.monotonic()
    failed = await failure(channel, outgoing())
    took = time.monotonic() - began
    await channel.close()

    assert (failed.reason, failed.retryable) == ("gateway_timeout", True)
    assert len(gateway.received) == 1
    assert took < 1.5  # the setting bounds the whole send, not each read of it


@pytest.mark.parametrize(
    ("answer", "reason", "retryable"),
    [
        (Answer(400, b'{"code": "InvalidParameter"}'), "gateway_status_400", False),
        (Answer(401, b'{"code": "Unauthorized"}'), "gateway_status_401", False),
        (Answer(302, b""), "gateway_status_302", False),  # not followed: the number would go wherever it points
        (Answer(200, b'{"code": "isv.MOBILE_NUMBER_ILLEGAL", "message": "bad number"}'), "gateway_refused", False),
        (Answer(429, b'{"code": "Throttling"}'), "gateway_busy", True),
        (Answer(500, b"oops"), "gateway_status_500", True),
        (Answer(200, b"<html>502 Bad Gateway</html>"), "gateway_bad_answer", True),
        (Answer(200, b'["OK"]'), "gateway_bad_answer", True),
        (Answer(200, b'{"biz_id": "biz-1"}'), "gateway_bad_answer", True),
        (Answer(200, b"\xff\xfe\x00garbage"), "gateway_bad_answer", True),
    ],
    ids=["400", "401", "302", "refused", "429", "500", "html", "list", "no-code", "bytes"],
)
async def test_each_answer_is_told_retryable_or_final(
    gateway: Gateway, answer: Answer, reason: str, retryable: bool
) -> None:
    channel = SmsGateway(gateway.settings())
    gateway.script.append(answer)

    failed = await failure(channel, outgoing())
    await channel.close()

    assert (failed.reason, failed.retryable) == (reason, retryable)
    assert len(gateway.received) == 1


async def test_nothing_listening_is_retried_as_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}{SEND_PATH}"
    channel = SmsGateway(ChannelSettings(sms_gateway_url=url, sms_timeout_seconds=3.0))

    failed = await failure(channel, outgoing())
    await channel.close()

    assert (failed.reason, failed.retryable) == ("gateway_unreachable", True)


async def test_without_a_url_the_channel_is_not_configured_and_sends_nothing(gateway: Gateway) -> None:
    channel = SmsGateway(gateway.settings(sms_gateway_url=None))

    failed = await failure(channel, outgoing())
    await channel.close()

    assert (failed.reason, failed.retryable) == ("channel_not_configured", False)
    assert gateway.received == []


@pytest.mark.parametrize("url", ["127.0.0.1/v1/sms/send", "ftp://127.0.0.1/v1/sms/send", "http://[::1"])
async def test_a_url_that_is_not_http_is_a_final_failure(url: str) -> None:
    # Settings refuse these at start-up (tests/unit/test_quiet_hours.py); the channel, given one anyway, still fails
    # for good rather than try again and again.
    channel = SmsGateway(ChannelSettings.model_construct(sms_gateway_url=url, sms_timeout_seconds=1.0))

    failed = await failure(channel, outgoing())
    await channel.close()

    assert (failed.reason, failed.retryable) == ("gateway_url_invalid", False)


@pytest.mark.parametrize(
    "number",
    [
        "",
        "1380013800",  # ten digits
        "12800138000",  # no mainland mobile prefix
        "138 0013 8000",
        "+86 13800138000",
        "１３８００１３８０００",  # full-width digits
        "13800138000\n",
        "13800138000,13900139000",
        "+0123456789",
        "+1234567",  # seven digits
        "+1234567890123456",  # sixteen
        "li.mei@example.org",
    ],
)
async def test_what_is_not_a_phone_number_is_refused_before_sending(gateway: Gateway, number: str) -> None:
    channel = SmsGateway(gateway.settings())

    failed = await failure(channel, outgoing(number))
    await channel.close()

    assert (failed.reason, failed.retryable) == ("bad_phone_number", False)
    assert gateway.received == []


def test_segments_count_ucs2_and_gsm7_parts() -> None:
    assert segments("") == 1
    assert (segments("关" * 70), segments("关" * 71)) == (1, 2)
    assert (segments("关" * 134), segments("关" * 135)) == (2, 3)  # 67 a part once split
    assert (segments("a" * 160), segments("a" * 161)) == (1, 2)
    assert (segments("a" * 306), segments("a" * 307)) == (2, 3)  # 153 a part once split
    assert (segments("[" * 80), segments("[" * 81)) == (1, 2)  # an extension character costs two septets
    assert (segments("a" * 69 + "关"), segments("a" * 70 + "关")) == (1, 2)  # one Chinese character: all UCS-2
    assert (segments("a" * 69 + "`"), segments("a" * 70 + "`")) == (1, 2)  # ASCII, but not GSM-7
    assert segments("😀" * 35) == 1
    assert segments("😀" * 36) == 2  # beyond the BMP: two UCS-2 units each


async def test_a_text_longer_than_one_segment_with_its_signature_is_refused_before_sending(gateway: Gateway) -> None:
    channel = SmsGateway(gateway.settings())
    fits = "关" * (70 - len(signed(SIGN, "")))  # 【手拉手关爱】 takes 7 of the 70

    assert segments(signed(SIGN, fits)) == 1
    assert await channel.send(outgoing(text=fits)) == "biz-1"
    failed = await failure(channel, outgoing(text=fits + "关"))
    await channel.close()

    assert (failed.reason, failed.retryable) == ("sms_too_long", False)
    assert len(gateway.received) == 1


async def test_a_message_allowed_three_parts_goes_in_three_and_not_four(gateway: Gateway) -> None:
    channel = SmsGateway(gateway.settings())
    fits = "关" * (3 * 67 - len(signed(SIGN, "")))

    assert await channel.send(outgoing(text=fits, sms_segments=3)) == "biz-1"
    failed = await failure(channel, outgoing(text=fits + "关", sms_segments=3))
    await channel.close()

    assert (failed.reason, len(gateway.received)) == ("sms_too_long", 1)


async def test_a_client_given_is_used_and_left_open_and_one_made_is_closed(gateway: Gateway) -> None:
    async with httpx.AsyncClient(headers={"X-Trace": "t-1"}) as client:
        given = SmsGateway(gateway.settings(), client)
        await given.send(outgoing())
        await given.close()
        assert not client.is_closed
    assert gateway.received[0].headers["x-trace"] == "t-1"

    made = SmsGateway(gateway.settings())
    await made.close()
    assert made._client.is_closed


async def test_no_failure_or_log_line_holds_the_number_the_text_the_params_or_the_gateways_words(
    gateway: Gateway,
) -> None:
    channel = SmsGateway(gateway.settings(sms_timeout_seconds=0.3))
    message = outgoing()
    gateway_words = f"number {PHONE} refused for {PARAMS['name']}"
    failures: list[SendFailed] = []
    with capture_logs() as logs:
        gateway.script.append(Answer(200, json.dumps({"code": "isv.BLACK_KEY", "message": gateway_words}).encode()))
        failures.append(await failure(channel, message))
        gateway.script.append(Answer(400, json.dumps({"code": "Invalid", "message": gateway_words}).encode()))
        failures.append(await failure(channel, message))
        gateway.script.append(Answer(503, gateway_words.encode()))
        failures.append(await failure(channel, message))
        gateway.script.append(Answer(200, f"not json: {gateway_words}".encode()))
        failures.append(await failure(channel, message))
        gateway.script.append(Answer(hang=True))
        failures.append(await failure(channel, message))
        failures.append(await failure(channel, outgoing(f"{PHONE}\n")))
        failures.append(await failure(channel, outgoing(text=TEXT * 3)))
        unreachable = ChannelSettings(sms_gateway_url=f"http://127.0.0.1:{free_port()}/{PHONE}")
        failures.append(await failure(SmsGateway(unreachable), message))
        await channel.send(message)
    await channel.close()

    assert [f.reason for f in failures] == [
        "gateway_refused",
        "gateway_status_400",
        "gateway_status_503",
        "gateway_bad_answer",
        "gateway_timeout",
        "bad_phone_number",
        "sms_too_long",
        "gateway_unreachable",
    ]
    secrets = (PHONE, TEXT, *PARAMS.values(), "refused for", KEY)
    assert_nothing_told(failures, logs, secrets, str(message.message_id))
