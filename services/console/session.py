"""The signed-in person's session, kept in the browser as one encrypted cookie: their access and refresh tokens, who
they are, and the token forms carry against cross-site requests. The console keeps nothing of it: any replica with
the same SESSION_SECRET reads it, and a copied cookie can be neither read nor changed without that secret."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import asdict, dataclass, field, replace

from cryptography.fernet import Fernet, InvalidToken

COOKIE = "console_session"
LIFETIME_SECONDS = 14 * 24 * 3600  # the registry's refresh token ends after 14 days unused; so does the cookie


@dataclass(frozen=True)
class Session:
    """`csrf` is in every form the session is shown; the rest is empty until someone signs in. `written` is the token
    of the person's last write (an API's `X-Written`, given at `written_at`), which the views read next wait for."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: float = 0.0  # when the access token expires (epoch seconds)
    sub: str | None = None
    role: str | None = None
    name: str | None = None
    counties: tuple[str, ...] = ()
    written: str | None = None
    written_at: float = 0.0

    @property
    def signed_in(self) -> bool:
        return self.access_token is not None

    def with_tokens(self, access_token: str, refresh_token: str | None, expires_at: float) -> Session:
        return replace(self, access_token=access_token, refresh_token=refresh_token, expires_at=expires_at)


class Sealer:
    """Encrypts and authenticates sessions (Fernet: AES-128-CBC and HMAC-SHA256) with a key derived from the secret."""

    def __init__(self, secret: str) -> None:
        key = hashlib.sha256(b"handinhand-console-session:" + secret.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, session: Session) -> str:
        return self._fernet.encrypt(json.dumps(asdict(session), separators=(",", ":")).encode()).decode()

    def open(self, cookie: str | None) -> Session | None:
        """The session in `cookie`, or None for none, one sealed with another secret, tampered with, or too old."""
        if not cookie:
            return None
        try:
            values = json.loads(self._fernet.decrypt(cookie.encode(), ttl=LIFETIME_SECONDS))
            values["counties"] = tuple(values.get("counties") or ())
            return Session(**values)
        except (InvalidToken, ValueError, TypeError):
            return None
