"""The notifications service's own configuration (its channels), from environment variables, validated at start-up."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ChannelSettings(BaseSettings):
    """Where SMS and email go. A channel without its URL or host is off: its messages end as `failed`
    (`channel_not_configured`), and the other channels still send."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

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
