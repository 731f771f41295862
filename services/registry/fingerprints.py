"""Keyed hashes of a person's identifying fields, so that an import retried adds nobody twice.

Keyed (HMAC) so the stored hash reveals nobody; deleted with the person's key when their data is erased.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.registry.records import ImportFingerprint


def fingerprint(secret: bytes, kind: str, parts: Sequence[str]) -> str:
    key = hashlib.sha256(b"import-fingerprint:" + secret).digest()
    return hmac.new(key, "\x1f".join([kind, *parts]).encode(), hashlib.sha256).hexdigest()


async def already_imported(conn: AsyncConnection, fingerprints: Sequence[str]) -> set[str]:
    known: set[str] = set()
    for start in range(0, len(fingerprints), 500):
        chunk = fingerprints[start : start + 500]
        found = await conn.execute(
            select(ImportFingerprint.fingerprint).where(ImportFingerprint.fingerprint.in_(chunk))
        )
        known |= set(found.scalars())
    return known
