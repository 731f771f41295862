"""The accounts' tables, and the keyed hashes they are looked up by: no login, password or token is stored as sent.

An account's login, display name and email address are sealed with the account's own key (`vault`); `login_key`,
an HMAC of the normalised login under a key derived from DATA_SECRET, finds it. Refresh tokens and one-time links
are stored as their SHA-256 (256 bits each: nothing to guess, so no key is needed), passwords as argon2id hashes. A
link to be sent to its owner has a token derived from its id under DATA_SECRET (`sent_link_token`), so that the
registry can give it to the notifications service at send time without keeping it: a copy of the database holds no
token of any link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    Uuid,
    and_,
    case,
    cast,
    func,
    literal,
)
from sqlalchemy.orm import Mapped, mapped_column

from backbone.database import UtcDateTime
from services.registry.records import Records


class AccountRecord(Records):
    __tablename__ = "accounts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    login_key: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    counties: Mapped[list[Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))  # invited, active, disabled
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)  # a service's: its client secret's
    person_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, unique=True)  # the volunteer or donor
    sealed: Mapped[bytes] = mapped_column(LargeBinary)  # login, display name, email: with the account's own key
    reset_requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # asked, not yet given
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)


def serves(county_code: str) -> ColumnElement[bool]:
    """Whether an account's counties include `county_code`, in SQL on either database: the JSON list is stored as
    its text on both, where a county code appears in quotes exactly when it is an element."""
    return cast(AccountRecord.counties, Text).contains(f'"{county_code}"', autoescape=True)


def served_within(county_codes: Sequence[str]) -> ColumnElement[bool]:
    """Whether an account has counties and every one of them is among `county_codes` (an account's counties are
    distinct: as many of them listed there as it has)."""
    listed = sum((case((serves(code), 1), else_=0) for code in set(county_codes)), literal(0))
    length = func.json_array_length(AccountRecord.counties)
    return and_(length > 0, length == listed)


class SessionRecord(Records):
    """One sign-in and every token refreshed from it."""

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(AccountRecord.id), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)


class RefreshTokenRecord(Records):
    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(SessionRecord.id), index=True)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AccountLink(Records):
    """An invitation or password reset link, usable once until it expires."""

    __tablename__ = "account_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(AccountRecord.id), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # or replaced by a newer one
    created_by: Mapped[str] = mapped_column(String(100))


class SignInFailure(Records):
    """A failed sign-in (or client credentials) attempt: by keyed login, whether or not an account has it, so that an
    unknown login slows down and locks exactly as a real one does; and by keyed client address."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (
        Index("ix_sign_in_failures_login", "login_key", "at"),
        Index("ix_sign_in_failures_source", "source_key", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    login_key: Mapped[str] = mapped_column(String(64))
    source_key: Mapped[str] = mapped_column(String(64))
    counted: Mapped[bool] = mapped_column(Boolean, default=True)  # against the login: until it signs in


def _keyed(secret: bytes, purpose: bytes, text: str) -> str:
    key = hashlib.sha256(purpose + b":" + secret).digest()
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def login_key(secret: bytes, login: str) -> str:
    """The lookup key of a normalised login."""
    return _keyed(secret, b"account-login", login)


def source_key(secret: bytes, address: str) -> str:
    """A client address as the failures remember it: comparable, not readable."""
    return _keyed(secret, b"sign-in-source", address)


def sent_link_token(secret: bytes, link_id: uuid.UUID) -> str:
    """The token of a link announced to be sent (`LinkIssued`, which names `link_id`): an HMAC of its id under a key
    derived from DATA_SECRET, 256 bits written as `new_token` writes its own, recomputed when it is sent."""
    key = hashlib.sha256(b"account-link:" + secret).digest()
    return base64.urlsafe_b64encode(hmac.new(key, str(link_id).encode(), hashlib.sha256).digest()).rstrip(b"=").decode()


def new_token() -> str:
    """A refresh token, a link's token or a client secret: 256 random bits."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
