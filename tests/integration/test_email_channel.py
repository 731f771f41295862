"""The email channel against a real SMTP server (aiosmtpd, in its own thread): what arrives, and how each failure is
told, without the address or the text in the telling."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from structlog.testing import capture_logs

from backbone.natsserver import free_port
from services.notifications.channels import Outgoing, SendFailed
from services.notifications.channels.email import SmtpMailer
from services.notifications.settings import ChannelSettings
from tests.helpers import assert_nothing_told
from tests.integration.standins import Mailbox, smtp_server

SENDER = "noreply@handinhand.example"
ADDRESS = "li.mei@example.org"
SUBJECT = "李梅：周六上午的探访已安排"
TEXT = "您好，李梅：志愿者王芳周六上午十点到家探访。"
HTML = "<p>您好，李梅：志愿者<b>王芳</b>周六上午十点到家探访。</p>"
USERNAME, PASSWORD = "handinhand", "s3cret-口令"


def outgoing(to: str = ADDRESS) -> Outgoing:
    return Outgoing(message_id=uuid.uuid4(), to=to, text=TEXT, subject=SUBJECT, html=HTML)


def settings(port: int, **overrides: Any) -> ChannelSettings:
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_starttls": False,
        "smtp_from": SENDER,
        "smtp_timeout_seconds": 3.0,
    } | overrides
    return ChannelSettings(**values)


async def failure(mailer: SmtpMailer, message: Outgoing) -> SendFailed:
    with pytest.raises(SendFailed) as raised:
        await asyncio.wait_for(mailer.send(message), 10)  # a bug in the timeouts fails the test, not hangs it
    return raised.value


@dataclass
class Certificate:
    """A self-signed certificate for 127.0.0.1: the server's context, and a client context that trusts it (and
    nothing else)."""

    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def plain_server(mailbox: Mailbox) -> Iterator[int]:
    with smtp_server(mailbox) as port:
        yield port


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp.handinhand.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return Certificate(server=server, client=ssl.create_default_context(cafile=Path(cert_file)))


def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (USERNAME.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def tls_server(mailbox: Mailbox, certificate: Certificate) -> Iterator[int]:
    with smtp_server(
        mailbox,
        tls_context=certificate.server,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
    ) as port:
        yield port


@contextlib.asynccontextmanager
async def raw_server(answer_after: float | None) -> AsyncIterator[int]:
    """A server that accepts the connection and then never says a word (None), or answers every line with a
    250 (354 to DATA) only after `answer_after` seconds: each step within the timeout, the whole send beyond it."""

    talking: set[asyncio.Task[Any]] = set()

    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        talking.add(task)
        try:
            if answer_after is None:
                await reader.read()  # until the client hangs up
                return
            writer.write(b"220 slow.test ESMTP\r\n")
            in_data = False
            while line := await reader.readline():
                if in_data and line != b".\r\n":
                    continue
                await asyncio.sleep(answer_after)
                in_data = line.upper().startswith(b"DATA")
                writer.write(b"354 go on\r\n" if in_data else b"250 ok\r\n")
                await writer.drain()
        except ConnectionError:
            pass  # the client gave up first: what the test is for
        finally:
            writer.close()

    server = await asyncio.start_server(talk, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        # The client has hung up by now, so each talk ends on its own; cancelling them would have asyncio report it.
        if talking:
            await asyncio.wait(talking, timeout=5)
        await server.wait_closed()


async def test_an_email_arrives_once_with_its_headers_and_both_parts(mailbox: Mailbox, plain_server: int) -> None:
    mailer = SmtpMailer(settings(plain_server))
    message = outgoing()

    sent = await mailer.send(message)
    await mailer.close()

    assert sent == f"<{message.message_id}@handinhand>"
    assert len(mailbox.received) == 1
    envelope, _, _ = mailbox.received[0]
    assert (envelope.mail_from, envelope.rcpt_tos) == (SENDER, [ADDRESS])
    [mail] = mailbox.messages()
    assert (mail["From"], mail["To"], mail["Subject"]) == (SENDER, ADDRESS, SUBJECT)
    assert mail["Message-ID"] == sent
    assert mail["Content-Language"] == "zh-CN"
    assert mail["Date"]
    # The subject travels as RFC 2047 encoded words in UTF-8, not raw bytes a server may mangle.
    raw_subject = next(line for line in (envelope.original_content or b"").splitlines() if line.startswith(b"Subject:"))
    assert raw_subject.isascii()
    assert b"=?utf-8?" in raw_subject.lower()
    assert mail.get_content_type() == "multipart/alternative"
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content().rstrip("\n") == TEXT
    assert html.get_content().rstrip("\n") == HTML


async def test_without_html_the_email_is_plain_text_alone(mailbox: Mailbox, plain_server: int) -> None:
    message = Outgoing(message_id=uuid.uuid4(), to=ADDRESS, text=TEXT, subject=SUBJECT, language="en")

    await SmtpMailer(settings(plain_server)).send(message)

    [mail] = mailbox.messages()
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content().rstrip("\n") == TEXT
    assert mail["Content-Language"] == "en"


async def test_starttls_and_sign_in_deliver_and_a_wrong_password_is_not_retried(
    mailbox: Mailbox, tls_server: int, certificate: Certificate
) -> None:
    secure = settings(tls_server, smtp_starttls=True, smtp_username=USERNAME, smtp_password=PASSWORD)

    await SmtpMailer(secure, tls_context=certificate.client).send(outgoing())
    assert [(tls, signed_in) for _, tls, signed_in in mailbox.received] == [(True, True)]

    wrong = settings(tls_server, smtp_starttls=True, smtp_username=USERNAME, smtp_password="guess")
    failed = await failure(SmtpMailer(wrong, tls_context=certificate.client), outgoing())
    assert (failed.reason, failed.retryable) == ("smtp_auth_failed", False)
    assert len(mailbox.received) == 1


async def test_by_default_the_servers_certificate_is_verified(mailbox: Mailbox, tls_server: int) -> None:
    secure = settings(tls_server, smtp_starttls=True, smtp_username=USERNAME, smtp_password=PASSWORD)

    failed = await failure(SmtpMailer(secure), outgoing())  # the system's CAs do not know the test's certificate

    assert (failed.reason, failed.retryable) == ("smtp_tls_untrusted", False)
    assert mailbox.received == []


async def test_starttls_asked_of_a_server_without_it_sends_nothing(mailbox: Mailbox, plain_server: int) -> None:
    failed = await failure(SmtpMailer(settings(plain_server, smtp_starttls=True)), outgoing())

    assert (failed.reason, failed.retryable) == ("smtp_no_starttls", False)
    assert mailbox.received == []


async def test_a_451_is_retried_and_the_retry_arrives_once_as_the_same_message(
    mailbox: Mailbox, plain_server: int
) -> None:
    mailer = SmtpMailer(settings(plain_server))
    message = outgoing()
    mailbox.data_replies.append("451 4.3.0 try later")

    failed = await failure(mailer, message)
    assert (failed.reason, failed.retryable) == ("smtp_status_451", True)
    assert mailbox.received == []

    sent = await mailer.send(message)
    assert len(mailbox.received) == 1
    [mail] = mailbox.messages()
    assert mail["Message-ID"] == sent == f"<{message.message_id}@handinhand>"


@pytest.mark.parametrize(
    ("step", "reply", "reason", "retryable"),
    [
        ("rcpt", f"550 5.1.1 <{ADDRESS}>: no such user", "smtp_status_550", False),
        ("rcpt", "553 5.1.3 mailbox name not allowed", "smtp_status_553", False),
        ("data", "554 5.6.0 message refused", "smtp_status_554", False),
        ("rcpt", "450 4.2.1 mailbox busy", "smtp_status_450", True),
        ("data", "421 4.3.2 shutting down", "smtp_status_421", True),
    ],
)
async def test_a_refusal_is_retried_only_when_it_is_temporary(
    mailbox: Mailbox, plain_server: int, step: str, reply: str, reason: str, retryable: bool
) -> None:
    (mailbox.rcpt_replies if step == "rcpt" else mailbox.data_replies).append(reply)

    failed = await failure(SmtpMailer(settings(plain_server)), outgoing())

    assert (failed.reason, failed.retryable) == (reason, retryable)
    assert mailbox.received == []


async def test_nothing_listening_is_retried_as_unreachable() -> None:
    failed = await failure(SmtpMailer(settings(free_port())), outgoing())

    assert (failed.reason, failed.retryable) == ("smtp_unreachable", True)


@pytest.mark.parametrize("answer_after", [None, 0.15], ids=["silent", "slow-at-every-step"])
async def test_a_server_that_takes_too_long_is_retried_as_a_timeout(answer_after: float | None) -> None:
    async with raw_server(answer_after) as port:
        began = time.monotonic()
        failed = await failure(SmtpMailer(settings(port, smtp_timeout_seconds=0.5)), outgoing())
        took = time.monotonic() - began

    assert (failed.reason, failed.retryable) == ("smtp_timeout", True)
    assert took < 2.0  # the setting bounds the whole send, not each step of it


async def test_without_a_host_the_channel_is_not_configured() -> None:
    failed = await failure(SmtpMailer(settings(25, smtp_host=None)), outgoing())

    assert (failed.reason, failed.retryable) == ("channel_not_configured", False)


@pytest.mark.parametrize(
    "address",
    [
        "",
        "li.mei",
        "li mei@example.org",
        "li.mei@localhost",
        "li.mei@@example.org",
        "李梅 <li.mei@example.org>",
        "li.mei@example.org, wang.fang@example.org",
        "li.mei@example.org\r\nBcc: wang.fang@example.org",
    ],
)
async def test_what_is_not_an_email_address_is_refused_before_connecting(
    mailbox: Mailbox, plain_server: int, address: str
) -> None:
    failed = await failure(SmtpMailer(settings(plain_server)), outgoing(address))

    assert (failed.reason, failed.retryable) == ("bad_email_address", False)
    assert (mailbox.greeted, mailbox.received) == (0, [])


async def test_no_failure_or_log_line_holds_the_address_the_subject_the_text_or_the_servers_words(
    mailbox: Mailbox, plain_server: int, tls_server: int, certificate: Certificate
) -> None:
    plain = SmtpMailer(settings(plain_server))
    wrong = settings(tls_server, smtp_starttls=True, smtp_username=USERNAME, smtp_password="guess")
    message = outgoing()
    failures: list[SendFailed] = []
    with capture_logs() as logs:
        mailbox.rcpt_replies.append(f"550 5.1.1 <{ADDRESS}>: no such user")
        failures.append(await failure(plain, message))
        mailbox.data_replies.append(f"451 4.3.0 {SUBJECT} try later")
        failures.append(await failure(plain, message))
        failures.append(await failure(SmtpMailer(wrong, tls_context=certificate.client), message))
        failures.append(await failure(SmtpMailer(settings(plain_server, smtp_starttls=True)), message))
        failures.append(await failure(plain, outgoing(f"{ADDRESS}\r\nBcc: x@example.org")))
        failures.append(await failure(SmtpMailer(settings(free_port())), message))
        await plain.send(message)

    assert [f.reason for f in failures] == [
        "smtp_status_550",
        "smtp_status_451",
        "smtp_auth_failed",
        "smtp_no_starttls",
        "bad_email_address",
        "smtp_unreachable",
    ]
    secrets = (ADDRESS, SUBJECT, TEXT, "no such user", "try later", PASSWORD, "guess")
    assert_nothing_told(failures, logs, secrets, str(message.message_id))
