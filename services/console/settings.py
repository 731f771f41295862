"""The console's configuration from environment variables, validated at start-up (see README, "Configuration")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_SESSION_SECRET = "development-only-console-secret-change-me-0123"  # noqa: S105 (refused outside development)


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    registry_url: str = Field(default="http://127.0.0.1:8001", description="where the registry's API answers")
    matching_url: str = Field(default="http://127.0.0.1:8002", description="where matching's API answers")
    notifications_url: str = Field(default="http://127.0.0.1:8003", description="where notifications' API answers")
    session_secret: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_SESSION_SECRET),
        description="encrypts the session cookie (the person's tokens); every replica needs the same",
    )
    upstream_timeout_seconds: float = Field(default=15.0, gt=0, description="how long an API call may take")
    page_size: int = Field(default=50, ge=10, le=500, description="rows per page of a list")

    @model_validator(mode="after")
    def _check_secret(self) -> ConsoleSettings:
        secret = self.session_secret.get_secret_value()
        if len(secret) < 32:
            raise ValueError("SESSION_SECRET must be at least 32 characters")
        if self.environment != "development" and secret == DEVELOPMENT_SESSION_SECRET:
            raise ValueError("SESSION_SECRET is left at its development default; set a secret of your own")
        return self

    @property
    def secure_cookies(self) -> bool:
        """Cookies only over HTTPS, everywhere but a developer's machine (where the console is plain HTTP)."""
        return self.environment != "development"
