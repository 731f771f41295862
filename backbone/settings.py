"""Service configuration from environment variables, validated at start-up (see README, "Configuration")."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_SECRET = "development-only-secret-change-me-0123456789"  # noqa: S105 (refused outside development)
DEFAULT_ISSUER = "handinhand-registry"
DEFAULT_LEEWAY_SECONDS = 30


class TrustedIssuer(BaseModel):
    """An issuer whose tokens a service accepts, and where its public keys are: a static JWKS document (tests,
    air-gapped installs), which wins, or a JWKS URL."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str = Field(min_length=1)
    jwks_url: str | None = None
    jwks_file: Path | None = None

    @model_validator(mode="after")
    def _keys_somewhere(self) -> TrustedIssuer:
        if self.jwks_url is None and self.jwks_file is None:
            raise ValueError(f"trusted issuer {self.issuer!r} needs a jwks_url or a jwks_file")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    database_url: str | None = Field(default=None, description="SQLAlchemy async URL; default a SQLite file")
    data_dir: Path = Path("var")
    nats_url: str = "nats://127.0.0.1:4222"
    stream_replicas: int = Field(default=1, ge=1, le=5)
    data_secret: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_SECRET), description="keys derived for import fingerprints and place keys"
    )
    token_signing_keys: str | None = Field(
        default=None, description="the registry's PEM Ed25519 private keys, comma-separated paths: the first signs"
    )
    token_issuer: str = Field(default=DEFAULT_ISSUER, min_length=1, description="the `iss` of our tokens")
    jwks_url: str = "http://127.0.0.1:8001/.well-known/jwks.json"
    jwks_file: Path | None = Field(default=None, description="a static JWKS document; wins over JWKS_URL")
    jwks_cache_seconds: float = Field(default=300.0, gt=0, description="how long fetched public keys are trusted")
    trusted_issuers: list[TrustedIssuer] = Field(default=[], description="more issuers than ours (JSON)")
    access_token_seconds: int = Field(default=900, ge=1, description="lifetime of an access token")
    token_leeway_seconds: int = Field(
        default=DEFAULT_LEEWAY_SECONDS,
        ge=0,
        le=300,
        description="how long past its expiry a token is still accepted: the services' clocks may differ by this much",
    )
    token_url: str = Field(
        default="http://127.0.0.1:8001/auth/token", description="where a service asks for its own token"
    )
    service_client_id: str | None = Field(default=None, description="this service's account at the registry")
    service_client_secret: SecretStr | None = Field(default=None, description="that account's client secret")
    link_readers: list[str] = Field(
        default=["notifications"],
        description="the registry's: the service accounts (logins) given links' tokens to send (JSON list)",
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
    consumer_notice_seconds: float = Field(
        default=30.0, gt=0, description="how often a consumer held by a rebuild (or a changed stream) says so"
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_upload_bytes: int = Field(default=16_777_216, ge=1024, description="bulk imports (…/import)")
    timer_seconds: float = Field(default=60.0, gt=0, description="how often clock-driven work looks again")
    proposal_lapse_days: float = Field(default=7.0, gt=0, description="a pairing proposal not confirmed lapses")
    export_max_rows: int = Field(default=100_000, ge=1, description="rows in one CSV export; more is a 422")
    wait_for_ms: int = Field(
        default=2000, ge=0, le=30_000, description="how long a view waits at most to show a token's writes (X-Wait-For)"
    )

    @model_validator(mode="after")
    def _check_secrets(self) -> Settings:
        if len(self.data_secret.get_secret_value()) < 32:
            raise ValueError("DATA_SECRET must be at least 32 characters")
        if any(extra.issuer == self.token_issuer for extra in self.trusted_issuers):
            raise ValueError("TRUSTED_ISSUERS repeats TOKEN_ISSUER; list only the other issuers there")
        return self

    def refuse_development_data_secret(self) -> None:
        """For the service that derives keys from DATA_SECRET (the registry), at start-up; the others hold no secret."""
        if self.environment != "development" and self.data_secret.get_secret_value() == DEVELOPMENT_SECRET:
            raise ValueError("DATA_SECRET is left at its development default; set a secret of your own")

    @property
    def secret(self) -> bytes:
        """What the registry derives stable keys from (import fingerprints, place keys): a new DATA_SECRET makes
        every place key and fingerprint new."""
        return self.data_secret.get_secret_value().encode()

    @property
    def signing_key_paths(self) -> list[Path]:
        return [Path(path.strip()) for path in (self.token_signing_keys or "").split(",") if path.strip()]

    @property
    def issuers(self) -> list[TrustedIssuer]:
        """Every issuer whose tokens this service accepts: ours first, then TRUSTED_ISSUERS."""
        ours = TrustedIssuer(issuer=self.token_issuer, jwks_url=self.jwks_url, jwks_file=self.jwks_file)
        return [ours, *self.trusted_issuers]

    @property
    def nats_servers(self) -> list[str]:
        """NATS_URL may list several servers, comma-separated (a cluster's nodes); nats-py takes a list."""
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]

    def database_url_for(self, service: str) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / service}.db"
