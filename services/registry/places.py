"""Where a person lives, as matching may see it: keyed tokens that compare equal for the same township or village.

Township and village names stay sealed in the registry. Events carry `township_key` and `village_key` instead:
HMAC tokens under a key derived from the deployment's secret, so matching can prefer a volunteer from the child's
own village without learning, or letting anyone on the bus learn, which village that is.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata


def _normal(name: str) -> str:
    """The same place however it was typed: full-width forms, spacing and letter case do not matter."""
    return "".join(unicodedata.normalize("NFKC", name).split()).casefold()


def place_key(secret: bytes, county_code: str, *names: str | None) -> str | None:
    """A token for the place `names` (township, then village) in the county; None when a name is missing."""
    if not names or any(not name or not _normal(name) for name in names):
        return None
    key = hashlib.sha256(b"place-key:" + secret).digest()
    text = "\x1f".join([county_code, *(_normal(name) for name in names if name)])
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:16]


def place_keys(secret: bytes, county_code: str, township: str | None, village: str | None) -> dict[str, str | None]:
    return {
        "township_key": place_key(secret, county_code, township),
        "village_key": place_key(secret, county_code, township, village),
    }
