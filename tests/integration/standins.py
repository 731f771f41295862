"""Real servers standing in for the providers the notifications service talks to, in the test's process: an SMS
gateway (Starlette on uvicorn, on a real port) and an SMTP server (aiosmtpd, in its own thread)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from backbone.natsserver import free_port
from services.notifications.settings import ChannelSettings
from tests.helpers import wait_until

SIGN = "手拉手关爱"
KEY = "sms-key-Zq81"
SEND_PATH = "/v1/sms/send"


@dataclass
class Answer:
    """What the gateway says to one request: a status and a body (after `delay` seconds), or (`hang`) nothing until
    the test ends, or (`drip`) a 200 whose body comes a byte at a time, each byte within httpx's read timeout, the
    whole far beyond."""

    status: int = 200
    body: bytes = b'{"code": "OK", "biz_id": "biz-1"}'
    hang: bool = False
    drip: bool = False
    delay: float = 0.0


@dataclass
class Received:
    headers: dict[str, str]
    body: Any


class Gateway:
    """An SMS gateway on a real port: records every request it receives; answers from `script` in order, then OK."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: list[Answer] = []
        self.released = asyncio.Event()  # set at the end: a hanging answer returns, and uvicorn can stop
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{SEND_PATH}"
        app = Starlette(routes=[Route(SEND_PATH, self._send, methods=["POST"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", log_config=None, access_log=False
        )
        self.server = uvicorn.Server(config)

    async def _send(self, request: Request) -> Response:
        raw = await request.body()
        self.received.append(Received(dict(request.headers), json.loads(raw)))
        answer = self.script.pop(0) if self.script else Answer()
        if answer.hang:
            await self.released.wait()
        await asyncio.sleep(answer.delay)
        if answer.drip:
            return StreamingResponse(self._drip(answer.body), media_type="application/json")
        return Response(answer.body, status_code=answer.status, media_type="application/json")

    async def _drip(self, body: bytes) -> AsyncIterator[bytes]:
        for byte in body:
            if self.released.is_set():
                return
            await asyncio.sleep(0.1)
            yield bytes([byte])

    def settings(self, **overrides: Any) -> ChannelSettings:
        values: dict[str, Any] = {
            "sms_gateway_url": self.url,
            "sms_gateway_key": KEY,
            "sms_sign_name": SIGN,
            "sms_timeout_seconds": 3.0,
        } | overrides
        return ChannelSettings(**values)


@contextlib.asynccontextmanager
async def serve_gateway() -> AsyncIterator[Gateway]:
    served = Gateway()
    task = asyncio.create_task(served.server.serve())

    async def started() -> bool:
        return served.server.started

    await wait_until(started, within=10, what="the gateway to listen")
    try:
        yield served
    finally:
        served.released.set()
        served.server.should_exit = True
        await asyncio.wait_for(task, 10)


@dataclass
class Mailbox:
    """The server's side: what it accepted (with whether the session was TLS and signed in), how many clients
    said EHLO, and replies scripted for the next RCPT or DATA."""

    received: list[tuple[Envelope, bool, bool]] = field(default_factory=list)
    greeted: int = 0
    rcpt_replies: list[str] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        self.greeted += 1
        session.host_name = hostname  # aiosmtpd leaves this to a handler with its own EHLO hook
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        self.received.append((envelope, session.ssl is not None, bool(session.authenticated)))
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        parser = BytesParser(policy=policy.default)
        # As a mail store would keep them: the wire's CRLF line ends made local.
        return [
            parser.parsebytes((envelope.original_content or b"").replace(b"\r\n", b"\n"))
            for envelope, _, _ in self.received
        ]


@contextlib.contextmanager
def smtp_server(mailbox: Mailbox, **options: Any) -> Iterator[int]:
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd tells of every connection at INFO
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()
