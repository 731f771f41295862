"""Service configuration from environment variables, validated at start-up (see README, "Configuration")."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_SECRET = "development-only-secret-change-me-0123456789"  # noqa: S105 (refused outside development)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    database_url: str | None = Field(default=None, description="SQLAlchemy async URL; default a SQLite file")
    data_dir: Path = Path("var")
    nats_url: str = "nats://127.0.0.1:4222"
    stream_replicas: int = Field(default=1, ge=1, le=5)
    jwt_secret: SecretStr = SecretStr(DEVELOPMENT_SECRET)
    data_secret: SecretStr | None = Field(
        default=None, description="keys derived for import fingerprints and place keys; JWT_SECRET if unset"
    )
    host: str = "127.0.0.1"
    port: int | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    relay_batch_size: int = Field(default=500, ge=1, le=4000)
    relay_stall_seconds: float = Field(default=10.0, gt=0, description="publishing failing this long: not ready")
    consumer_batch_size: int = Field(default=500, ge=1, le=10_000)
    consumer_max_deliveries: int = Field(default=5, ge=1)
    consumer_ack_wait_seconds: float = Field(default=30.0, gt=0, description="redelivery after a crashed replica")
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_upload_bytes: int = Field(default=16_777_216, ge=1024, description="bulk imports (…/import)")
    timer_seconds: float = Field(default=60.0, gt=0, description="how often clock-driven work looks again")
    proposal_lapse_days: float = Field(default=7.0, gt=0, description="a pairing proposal not confirmed lapses")
    export_max_rows: int = Field(default=100_000, ge=1, description="rows in one CSV export; more is a 422")

    @model_validator(mode="after")
    def _refuse_development_secret(self) -> Settings:
        if self.environment != "development" and self.jwt_secret.get_secret_value() == DEVELOPMENT_SECRET:
            raise ValueError("JWT_SECRET is left at its development default; set a secret of your own")
        if len(self.jwt_secret.get_secret_value()) < 32:
            raise ValueError("JWT_SECRET must be at least 32 characters")
        if self.data_secret is not None and len(self.data_secret.get_secret_value()) < 32:
            raise ValueError("DATA_SECRET must be at least 32 characters")
        return self

    @property
    def secret(self) -> bytes:
        """What the registry derives stable keys from (import fingerprints, place keys). Set DATA_SECRET to rotate
        JWT_SECRET without changing them: a new one would make every place key and fingerprint new."""
        return (self.data_secret or self.jwt_secret).get_secret_value().encode()

    @property
    def nats_servers(self) -> list[str]:
        """NATS_URL may list several servers, comma-separated (a cluster's nodes); nats-py takes a list."""
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]

    def database_url_for(self, service: str) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / service}.db"
