"""The SMS channel: one templated message to one phone number through an HTTP SMS gateway (Aliyun/Tencent style),
each failure sorted into "try again later" or "trying again cannot help"."""

from __future__ import annotations

import asyncio
import math
import re

import httpx
import structlog

from services.notifications.channels import ChannelName, Outgoing, SendFailed
from services.notifications.settings import ChannelSettings

log = structlog.get_logger("notifications.sms")

# GSM 03.38: the basic set costs one septet a character, the extension set two (an escape first). Anything else (a
# Chinese character, the signature's 【】, a backtick) sends the whole SMS as UCS-2.
_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = set("\f^{}\\[~]|€")

# ASCII digits only (\d would take full-width ones too); fullmatch, so a trailing newline is no number either.
_PHONE = re.compile(r"1[3-9][0-9]{9}|\+[1-9][0-9]{7,14}")


def signed(sign_name: str, text: str) -> str:
    """The SMS as the phone shows it: the gateway puts the signature first."""
    return f"【{sign_name}】{text}"


def segments(text: str) -> int:
    """How many SMS `text` goes as: 160 GSM-7 septets or 70 UCS-2 units in one; 153 or 67 a part once split (the
    rest holds the header that joins the parts again)."""
    if all(character in _GSM7 or character in _GSM7_EXTENSION for character in text):
        septets = sum(2 if character in _GSM7_EXTENSION else 1 for character in text)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(text.encode("utf-16-le")) // 2  # a character beyond the BMP (an emoji) takes two
    return 1 if units <= 70 else math.ceil(units / 67)


class SmsGateway:
    name: ChannelName = "sms"

    def __init__(self, settings: ChannelSettings, client: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._owns_client = client is None
        # Redirects are not followed (httpx's default): the phone number would go on to wherever we are sent.
        self._client = client or httpx.AsyncClient(timeout=settings.sms_timeout_seconds)

    async def send(self, message: Outgoing) -> str:
        settings = self._settings
        if not settings.sms_gateway_url:
            raise SendFailed("channel_not_configured", retryable=False)
        if not _PHONE.fullmatch(message.to):
            raise SendFailed("bad_phone_number", retryable=False)
        if segments(signed(settings.sms_sign_name, message.text)) > message.sms_segments:
            raise SendFailed("sms_too_long", retryable=False)
        message_id = str(message.message_id)
        # The same on every try, as header and out_id: a gateway that has the first copy does not send a second.
        headers = {"Idempotency-Key": message_id}
        if settings.sms_gateway_key is not None:
            headers["Authorization"] = f"Bearer {settings.sms_gateway_key.get_secret_value()}"
        body = {
            "phone_numbers": [message.to],
            "sign_name": settings.sms_sign_name,
            "template_code": message.template_id,
            "template_param": message.params,
            "out_id": message_id,
        }
        try:
            # httpx's timeout is per step (connect, each read); the setting bounds the whole send.
            async with asyncio.timeout(settings.sms_timeout_seconds):
                response = await self._client.post(settings.sms_gateway_url, json=body, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            failure = SendFailed("gateway_timeout", retryable=True)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            failure = SendFailed("gateway_url_invalid", retryable=False)
        except httpx.TransportError:  # refused, reset, no route, name not found, closed mid-answer
            failure = SendFailed("gateway_unreachable", retryable=True)
        else:
            answer = _answer(response)
            if isinstance(answer, str):
                log.info("sms.sent", message_id=message_id)
                return answer or message_id
            failure = answer
        log.warning("sms.failed", message_id=message_id, reason=failure.reason)
        # Raised here, outside the except clauses, so it carries no __context__: httpx's errors and a JSON error's
        # document may quote what was sent or answered, and a logged traceback would show them.
        raise failure

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def _answer(response: httpx.Response) -> str | SendFailed:
    """The gateway's id for the message ("" if it gave none), or why it was not sent; never the gateway's words."""
    status = response.status_code
    if status == 429:
        return SendFailed("gateway_busy", retryable=True)
    if status >= 500:
        return SendFailed(f"gateway_status_{status}", retryable=True)
    if not 200 <= status < 300:  # a 4xx (or a redirect): the same request would get the same answer
        return SendFailed(f"gateway_status_{status}", retryable=False)
    try:
        answer = response.json()
    except ValueError:  # not JSON, or not UTF-8
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("code"), str):
        # Perhaps a proxy's page in the way, or a gateway half-deployed: another try may meet the real one.
        return SendFailed("gateway_bad_answer", retryable=True)
    if answer["code"] != "OK":
        return SendFailed("gateway_refused", retryable=False)
    biz_id = answer.get("biz_id")
    return biz_id if isinstance(biz_id, str) else ""
