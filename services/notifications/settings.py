"""The notifications service's own configuration (its channels), from environment variables, validated at start-up."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ChannelSettings(BaseSettings):
    """Where SMS and email go, where contacts come from, and how the sender tries. A channel without its URL or
    host is off: its messages end as `failed` (`channel_not_configured`), and the other channels still send."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    registry_url: str = Field(default="http://127.0.0.1:8001", description="where contacts are looked up")
    console_url: str = Field(
        default="http://127.0.0.1:8000",
        description="the console's address as people open it (links go to its pages): HTTPS, at most 40 characters",
    )
    send_every_seconds: float = Field(default=1.0, gt=0, description="how often the sender looks for due messages")
    retry_first_seconds: float = Field(default=30.0, gt=0, description="wait after a first failure; doubles each try")
    send_max_attempts: int = Field(default=6, ge=1, le=50, description="tries of one message before it is failed")

    sms_gateway_url: str | None = Field(default=None, description="the SMS gateway's send endpoint (HTTPS, JSON)")
    sms_gateway_key: SecretStr | None = Field(default=None, description="the gateway's API key (a bearer token)")
    sms_sign_name: str = Field(default="手拉手关爱", description="the signature the gateway puts before every SMS")
    sms_timeout_seconds: float = Field(default=10.0, gt=0, description="how long one send may take")
    smtp_host: str | None = Field(default=None, description="the SMTP server for email")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_starttls: bool = Field(default=True, description="upgrade the connection with STARTTLS before sending")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = Field(default="noreply@handinhand.invalid", description="the From address")
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, description="how long one send may take")

    @field_validator("sms_gateway_url")
    @classmethod
    def _encrypted(cls, url: str | None) -> str | None:
        """The gateway gets the API key and every phone number: over HTTPS, but on this machine (a test's gateway)."""
        if url is None or _encrypted(url):
            return url
        raise ValueError("SMS_GATEWAY_URL must be an https:// URL (http:// only on this machine)")

    @field_validator("console_url")
    @classmethod
    def _console(cls, url: str) -> str:
        """Links carry a password's token to it: over HTTPS, but on this machine; and short enough for a link's SMS."""
        if not _encrypted(url):
            raise ValueError("CONSOLE_URL must be an https:// URL (http:// only on this machine)")
        if len(url.rstrip("/")) > CONSOLE_URL_LONGEST:
            raise ValueError(f"CONSOLE_URL must be at most {CONSOLE_URL_LONGEST} characters: links go by SMS")
        return url


CONSOLE_URL_LONGEST = 40  # the links' SMS fit their three parts with a console address this long, and no longer


def _encrypted(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
