"""Personal data at rest: sealed with one key per person (AES-256-GCM); erasing a person destroys the key.

Keys live in their own table, apart from the records and events that hold the sealed data. Once a key is gone,
every copy of that person's personal fields, in the current record and in every old event, is unreadable.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import LargeBinary, Uuid, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from backbone import scrub
from backbone.database import UtcDateTime
from services.registry.records import Records

NONCE_BYTES = 12


class PersonKey(Records):
    __tablename__ = "person_keys"

    person_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


async def create_key(conn: AsyncConnection, person_id: uuid.UUID, now: datetime) -> bytes:
    key = new_key()
    await conn.execute(insert(PersonKey).values(person_id=person_id, key=key, created_at=now))
    return key


async def key_of(conn: AsyncConnection, person_id: uuid.UUID) -> bytes | None:
    found = await conn.scalar(select(PersonKey.key).where(PersonKey.person_id == person_id))
    return bytes(found) if found is not None else None


async def keys_of(conn: AsyncConnection, person_ids: list[uuid.UUID]) -> dict[uuid.UUID, bytes]:
    found: dict[uuid.UUID, bytes] = {}
    for start in range(0, len(person_ids), 500):
        chunk = person_ids[start : start + 500]
        rows = await conn.execute(select(PersonKey.person_id, PersonKey.key).where(PersonKey.person_id.in_(chunk)))
        found |= {person_id: bytes(key) for person_id, key in rows}
    return found


def seal(key: bytes, person_id: uuid.UUID, fields: dict[str, Any]) -> bytes:
    """Encrypt `fields`, bound to the person (a sealed blob moved to another person does not open)."""
    nonce = os.urandom(NONCE_BYTES)
    plaintext = json.dumps(fields, ensure_ascii=False, sort_keys=True).encode()
    return nonce + AESGCM(key).encrypt(nonce, plaintext, person_id.bytes)


def unseal(key: bytes | None, person_id: uuid.UUID, sealed: bytes | None) -> dict[str, Any] | None:
    """The personal fields, or None once the person's key is destroyed."""
    if key is None or sealed is None:
        return None
    plaintext = AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], person_id.bytes)
    opened: dict[str, Any] = json.loads(plaintext)
    return opened


async def destroy_key(conn: AsyncConnection, person_id: uuid.UUID) -> bool:
    """Delete the person's key; True if there was one. The key's bytes are scrubbed from the files once the
    transaction commits: call `backbone.scrub.after_erasure` then (a timer does it otherwise)."""
    result = await conn.execute(delete(PersonKey).where(PersonKey.person_id == person_id))
    if result.rowcount:
        await scrub.owe(conn, PersonKey)
    return bool(result.rowcount)
