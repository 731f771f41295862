"""The email channel: one message to one address over SMTP (aiosmtplib), each failure sorted into "try again later"
or "trying again cannot help"."""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib
import structlog

from services.notifications.channels import ChannelName, Outgoing, SendFailed
from services.notifications.settings import ChannelSettings

log = structlog.get_logger("notifications.email")

# One bare mailbox and nothing else: no display name or list, no whitespace or control characters (a CR/LF would let
# the address write headers of its own), no quoting or brackets whose rules we could get wrong. A domain with a dot.
_LOCAL = r"[^@\s<>()\[\],;:\"\\\x00-\x1f\x7f]+"
_LABEL = r"[^@\s<>()\[\],;:\"\\\x00-\x1f\x7f.]+"
_ADDRESS = re.compile(rf"{_LOCAL}@(?:{_LABEL}\.)+{_LABEL}")


class SmtpMailer:
    name: ChannelName = "email"

    def __init__(self, settings: ChannelSettings, *, tls_context: ssl.SSLContext | None = None) -> None:
        self._settings = settings
        # None: aiosmtplib's default context, which checks the certificate against the system's CAs and the host
        # name. Only a test, trusting its own self-signed certificate, passes one.
        self._tls_context = tls_context

    async def send(self, message: Outgoing) -> str:
        settings = self._settings
        if not settings.smtp_host:
            raise SendFailed("channel_not_configured", retryable=False)
        if len(message.to) > 254 or not _ADDRESS.fullmatch(message.to):
            raise SendFailed("bad_email_address", retryable=False)
        # The same on every try: a receiving side that has the first copy knows the second for the same message.
        message_id = f"<{message.message_id}@handinhand>"
        mail = self._compose(message, message_id)
        # A connection per send: nothing to keep alive, to find dead, or to share between tasks, and a few notices a
        # person a day do not pay for a pool.
        client = aiosmtplib.SMTP(
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            timeout=settings.smtp_timeout_seconds,
            start_tls=False,  # done by hand below, to tell "not offered" from other failures
            tls_context=self._tls_context,
        )
        try:
            # aiosmtplib's timeout is per step; the setting bounds the whole send.
            async with asyncio.timeout(settings.smtp_timeout_seconds):
                await self._deliver(client, mail, message.to)
        except SendFailed as failed:
            failure = failed
        except (aiosmtplib.SMTPException, OSError) as error:
            failure = _failure(error)
        else:
            # Accepted: a QUIT that goes wrong must not make it a failure, and so a duplicate on the retry.
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
            log.info("email.sent", message_id=str(message.message_id))
            return message_id
        finally:
            client.close()
        log.warning("email.failed", message_id=str(message.message_id), reason=failure.reason)
        # Raised here, outside the except clauses, so it carries no __context__: aiosmtplib's errors quote the
        # address and the server's words, and a logged traceback would show them.
        raise failure

    async def close(self) -> None:
        """Nothing is held between sends."""

    def _compose(self, message: Outgoing, message_id: str) -> EmailMessage:
        mail = EmailMessage()  # the default policy: a Chinese subject goes out as RFC 2047 UTF-8 encoded words
        mail["From"] = self._settings.smtp_from
        mail["To"] = message.to
        mail["Subject"] = " ".join(message.subject.split())  # a line break in a header is refused (or an injection)
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = message_id
        mail.set_content(message.text)
        if message.html is not None:
            mail.add_alternative(message.html, subtype="html")
        mail["Content-Language"] = message.language  # after the parts: set_content drops, add_alternative moves it
        return mail

    async def _deliver(self, client: aiosmtplib.SMTP, mail: EmailMessage, to: str) -> None:
        settings = self._settings
        await client.connect()
        if settings.smtp_starttls:
            await client.ehlo()
            if not client.supports_extension("starttls"):
                raise SendFailed("smtp_no_starttls", retryable=False)
            await client.starttls()
        if settings.smtp_username:
            await client.ehlo()  # again after STARTTLS: what the server offered before it no longer counts
            if not client.supports_extension("auth"):
                raise SendFailed("smtp_no_auth", retryable=False)
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            await client.login(settings.smtp_username, password)
        await client.send_message(mail, sender=settings.smtp_from, recipients=[to])


def _failure(error: Exception) -> SendFailed:
    """A short code for what went wrong; never the error's text, which may quote the address or the server."""
    if isinstance(error, TimeoutError):  # ours (asyncio.timeout) and aiosmtplib's
        return SendFailed("smtp_timeout", retryable=True)
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused) and error.recipients:
        error = error.recipients[0]  # the one recipient's refusal is the answer
    if isinstance(error, aiosmtplib.SMTPAuthenticationError) and error.code >= 500:
        return SendFailed("smtp_auth_failed", retryable=False)
    if isinstance(error, aiosmtplib.SMTPResponseException):
        # A 4xx reply means "later"; a 5xx is the answer the next try would get too.
        return SendFailed(f"smtp_status_{error.code}", retryable=not 500 <= error.code < 600)
    if isinstance(error, aiosmtplib.SMTPNotSupported):  # an address in UTF-8, and a server without SMTPUTF8
        return SendFailed("smtp_not_supported", retryable=False)
    if isinstance(error, ssl.SSLCertVerificationError):  # the wrong server, or ours misconfigured: not by waiting
        return SendFailed("smtp_tls_untrusted", retryable=False)
    if isinstance(error, ssl.SSLError):
        return SendFailed("smtp_tls_failed", retryable=True)
    if isinstance(error, aiosmtplib.SMTPServerDisconnected):
        return SendFailed("smtp_disconnected", retryable=True)
    if isinstance(error, OSError):  # aiosmtplib's SMTPConnectError is one: refused, no route, name not found
        return SendFailed("smtp_unreachable", retryable=True)
    return SendFailed("smtp_error", retryable=True)
