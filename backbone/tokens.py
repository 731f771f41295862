"""Access tokens: the registry signs them with its Ed25519 keys (EdDSA); every service verifies them against the
trusted issuers' public keys (JWKS), fetched and cached. No other algorithm is accepted anywhere."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, Self

import httpx
import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from pydantic import ValidationError

from backbone.auth import Principal, Role
from backbone.clock import Clock, SystemClock
from backbone.settings import DEFAULT_ISSUER, DEFAULT_LEEWAY_SECONDS, Settings, TrustedIssuer

log = structlog.get_logger("tokens")
ALGORITHM = "EdDSA"
DEVELOPMENT_KEY_FILE = "registry-signing-key.pem"
REFETCH_SECONDS = 10.0  # an unknown kid fetches the keys again, at most this often
_REQUIRED = ["iss", "sub", "role", "iat", "exp", "jti"]
VERIFIED_KEPT = 4096  # tokens remembered as verified; past that the memory starts again
# Fixed reasons: a refusal never repeats what the token said (PyJWT's own words can quote its header).
_REASONS: list[tuple[type[Exception], str]] = [
    (jwt.ExpiredSignatureError, "it has expired"),
    (jwt.ImmatureSignatureError, "it is not valid yet"),
    (jwt.InvalidSignatureError, "its signature does not verify"),
    (jwt.MissingRequiredClaimError, "it lacks a claim every token carries"),
]
MALFORMED = "it is malformed or its claims are not ours"


class InvalidToken(Exception):
    """A token refused; the message is one of a few fixed reasons."""


class KeysUnavailable(Exception):
    """An issuer's public keys could not be read, and none are known yet."""


def thumbprint(public_jwk: Mapping[str, str]) -> str:
    """RFC 7638: base64url SHA-256 of the key's required members (OKP: crv, kty, x), sorted, without whitespace."""
    required = {name: public_jwk[name] for name in ("crv", "kty", "x")}
    digest = hashlib.sha256(json.dumps(required, separators=(",", ":"), sort_keys=True).encode()).digest()
    return _b64url(digest)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _public_jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)}
    return jwk | {"kid": thumbprint(jwk), "use": "sig", "alg": ALGORITHM}


def _verification_key(jwk: Mapping[str, Any]) -> jwt.PyJWK:
    return jwt.PyJWK(dict(jwk), algorithm=ALGORITHM)  # bound to EdDSA: the token's header cannot choose another


class SigningKeys:
    """The issuer's Ed25519 keys: the first signs, all are published (a rotation keeps the old one listed)."""

    def __init__(self, keys: Sequence[Ed25519PrivateKey]) -> None:
        if not keys:
            raise ValueError("at least one signing key is needed")
        self._keys = list(keys)
        self._public = [_public_jwk(key) for key in self._keys]

    @classmethod
    def from_settings(cls, settings: Settings) -> SigningKeys:
        """TOKEN_SIGNING_KEYS; in development without it, a key generated once under DATA_DIR. Outside development
        the issuer refuses to start without keys of its own."""
        if paths := settings.signing_key_paths:
            return cls.from_files(paths)
        if settings.environment != "development":
            raise ValueError(
                "TOKEN_SIGNING_KEYS is not set: outside development the registry signs tokens only with keys of its "
                "own (PEM PKCS#8 Ed25519 private keys, comma-separated paths, the first signs)"
            )
        path = settings.data_dir / DEVELOPMENT_KEY_FILE
        if not path.exists():
            generate(path)
        return cls.from_files([path])

    @classmethod
    def from_files(cls, paths: Sequence[Path]) -> SigningKeys:
        keys = []
        for path in paths:
            try:
                key = load_pem_private_key(path.read_bytes(), password=None)
            except (OSError, ValueError, TypeError) as error:
                raise ValueError(f"signing key {path} cannot be read as an unencrypted PEM private key") from error
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError(f"signing key {path} is not an Ed25519 key")
            keys.append(key)
        return cls(keys)

    @property
    def kid(self) -> str:
        """The signing key's id (its RFC 7638 thumbprint)."""
        return self._public[0]["kid"]

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        return self._keys[0]

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWKS document: every key, public parts only."""
        return {"keys": [dict(jwk) for jwk in self._public]}

    def verification_keys(self) -> dict[str, jwt.PyJWK]:
        return {jwk["kid"]: _verification_key(jwk) for jwk in self._public}


def generate(path: Path) -> None:
    """Write a new Ed25519 private key (PEM PKCS#8, mode 0600) at `path`, unless another process just did: replicas
    sharing DATA_DIR may start together, and each must end up with the same, complete key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    draft = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)  # appears whole, or not at all if a key is already there
    finally:
        draft.unlink()


class Issuer:
    """Mints access tokens with the first signing key."""

    def __init__(self, keys: SigningKeys, issuer: str = DEFAULT_ISSUER) -> None:
        self.keys, self.issuer = keys, issuer

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(SigningKeys.from_settings(settings), settings.token_issuer)

    def mint(
        self,
        *,
        sub: str,
        role: Role,
        counties: list[str],
        ttl: timedelta,
        name: str | None = None,
        session_id: str | None = None,
    ) -> str:
        # The wall clock, not a service's settable one: every verifier checks `exp` against its wall clock.
        issued = int(SystemClock().now().timestamp())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "role": role,
            "counties": counties,
            "iat": issued,
            "exp": issued + int(ttl.total_seconds()),
            "jti": uuid.uuid4().hex,
        }
        claims |= {claim: value for claim, value in (("name", name), ("sid", session_id)) if value is not None}
        return jwt.encode(claims, self.keys.signing_key, algorithm=ALGORITHM, headers={"kid": self.keys.kid})


class KeySource(Protocol):
    """Where one issuer's public keys come from."""

    async def key(self, kid: str) -> jwt.PyJWK | None: ...


class LocalKeys:
    """The issuer's own keys, in process (the registry verifies without HTTP to itself)."""

    def __init__(self, keys: SigningKeys) -> None:
        self._keys = keys.verification_keys()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        return self._keys.get(kid)


class Jwks:
    """An issuer's JWKS from a URL or a file, read lazily, kept `cache_seconds`, read again at most every
    REFETCH_SECONDS when a token names a kid it does not hold (a key just added by a rotation)."""

    def __init__(self, trusted: TrustedIssuer, cache_seconds: float, clock: Clock | None = None) -> None:
        self.trusted, self.cache_seconds = trusted, cache_seconds
        self.clock = clock or SystemClock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched: datetime | None = None  # last successful read
        self._tried: datetime | None = None  # last attempt
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        if self._lock.locked():  # a read is under way (the first, just after start): its keys are this request's too
            async with self._lock:
                pass
        await self._refresh_if(self._stale)
        await self._refresh_if(lambda: kid not in self._keys and self._due(REFETCH_SECONDS, self._tried))
        if self._fetched is None:
            raise KeysUnavailable(self.trusted.issuer)
        return self._keys.get(kid)

    def _stale(self) -> bool:
        # After a failed read, try again at most every REFETCH_SECONDS, not on every request.
        retry = self._tried == self._fetched or self._due(REFETCH_SECONDS, self._tried)
        return self._due(self.cache_seconds, self._fetched) and retry

    def _due(self, seconds: float, since: datetime | None) -> bool:
        return since is None or (self.clock.now() - since).total_seconds() >= seconds

    async def _refresh_if(self, needed: Callable[[], bool]) -> None:
        if not needed():
            return
        async with self._lock:
            if not needed():
                return  # another request read the keys while this one waited
            self._tried = self.clock.now()
            try:
                self._keys = _keys_of(await self._read())
                self._fetched = self._tried
            except (OSError, httpx.HTTPError, ValueError) as error:
                # Keys read earlier stay in use: a registry briefly away must not lock everyone out.
                log.warning("tokens.jwks_unreadable", issuer=self.trusted.issuer, error=type(error).__name__)

    async def _read(self) -> Any:
        if self.trusted.jwks_file is not None:
            return json.loads(await asyncio.to_thread(self.trusted.jwks_file.read_bytes))
        assert self.trusted.jwks_url is not None  # TrustedIssuer requires one of the two
        async with httpx.AsyncClient(timeout=5.0) as client:
            answer = await client.get(self.trusted.jwks_url)
            answer.raise_for_status()
            return answer.json()


def _keys_of(document: Any) -> dict[str, jwt.PyJWK]:
    """The Ed25519 signing keys of a JWKS document, by kid; any other key is ignored."""
    listed = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(listed, list):
        raise ValueError("not a JWKS document")
    found: dict[str, jwt.PyJWK] = {}
    for jwk in filter(lambda entry: isinstance(entry, dict), listed):
        usable = jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and jwk.get("use", "sig") == "sig"
        if usable and isinstance(jwk.get("kid"), str) and jwk.get("alg", ALGORITHM) == ALGORITHM:
            try:
                found[jwk["kid"]] = _verification_key(jwk)
            except jwt.PyJWTError:  # a key that cannot be read (PyJWT's InvalidKeyError is no PyJWKError)
                continue
    return found


class TokenVerifier:
    """Turns a bearer token into a Principal if a trusted issuer signed it with EdDSA and it has not expired (give or
    take `leeway`, for clocks that differ)."""

    def __init__(
        self, issuers: Mapping[str, KeySource], leeway: timedelta = timedelta(seconds=DEFAULT_LEEWAY_SECONDS)
    ) -> None:
        self.issuers, self.leeway = dict(issuers), leeway
        # Tokens verified already, with the key that verified them and when they expire: a client sends the same
        # token with every request, and checking its signature again costs more than the rest of a registration.
        self._verified: dict[str, tuple[Principal, KeySource, Any, object, float]] = {}

    @classmethod
    def from_settings(cls, settings: Settings, own: SigningKeys | None = None, clock: Clock | None = None) -> Self:
        """Every issuer of the settings, each with its JWKS; with `own`, the issuer's own keys stand for ours."""
        sources: dict[str, KeySource] = {
            trusted.issuer: Jwks(trusted, settings.jwks_cache_seconds, clock) for trusted in settings.issuers
        }
        if own is not None:
            sources[settings.token_issuer] = LocalKeys(own)
        return cls(sources, timedelta(seconds=settings.token_leeway_seconds))

    async def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            verified, issued_by, key_id, verifying_key, expires = known
            # still unexpired, and its key still published by its issuer (a rotated key's tokens stop at once)
            if time.time() < expires and await issued_by.key(key_id) is verifying_key:
                return verified
            del self._verified[token]
        try:
            header = jwt.get_unverified_header(token)
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError as error:
            raise InvalidToken(MALFORMED) from error
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("it is not signed with EdDSA, the only algorithm accepted")
        source = self.issuers.get(issuer) if isinstance(issuer, str) else None
        if source is None:
            raise InvalidToken("its issuer is not trusted")
        kid = header.get("kid")
        key = await source.key(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("it is signed with a key its issuer does not publish")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=issuer,
                leeway=self.leeway,
                options={"require": _REQUIRED, "verify_aud": False},
            )
            principal = Principal(
                sub=claims["sub"],
                role=claims["role"],
                counties=claims.get("counties", []),
                name=claims.get("name"),
                session_id=claims.get("sid"),
            )
        except (jwt.PyJWTError, ValidationError, TypeError) as error:
            reason = next((reason for kind, reason in _REASONS if isinstance(error, kind)), MALFORMED)
            raise InvalidToken(reason) from error
        if len(self._verified) >= VERIFIED_KEPT:
            self._verified.clear()
        self._verified[token] = (principal, source, kid, key, claims["exp"] + self.leeway.total_seconds())
        return principal
