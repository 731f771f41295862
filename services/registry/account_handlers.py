"""Account commands, one handler each: decide with `accounts`, then write the account, its sessions, links, failures
and audit entries in one transaction. A refusal that must leave a trace (a failed sign-in, a reused refresh token) is
committed first and raised after."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Final, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone.auth import Principal, Role
from backbone.runtime import Runtime
from backbone.store import Append
from backbone.tokens import Issuer
from contracts.registry import LinkIssued
from services.registry import accounts, audit, recipients, vault
from services.registry.account_records import (
    AccountLink,
    AccountRecord,
    RefreshTokenRecord,
    SessionRecord,
    SignInFailure,
    login_key,
    new_token,
    sent_link_token,
    source_key,
    token_hash,
)
from services.registry.accounts import Failures, LinkKind, Person, State
from services.registry.domain import DomainError
from services.registry.records import DonorRecord, VolunteerRecord

hasher = PasswordHasher()  # argon2id, the library's defaults (RFC 9106's second recommended set)
ANONYMOUS = "anonymous"  # who asks for a reset, in the audit log and as the maker of the link
WRONG = DomainError("invalid_credentials", "the login or the password is not right")


@dataclass(frozen=True)
class Grant:
    """What a sign-in, a refresh or client credentials answer: a refresh token only for a person's session."""

    access_token: str
    expires_in: int
    refresh_token: str | None = None


@dataclass(frozen=True)
class Handover:
    """A secret shown once to whoever made it, to hand to the account's owner: a link's token, a client secret."""

    kind: str  # invitation, reset, client_secret
    token: str
    expires_at: datetime | None = None
    sent: bool = False  # a link also on its way to its owner, by SMS to a mobile-number login and by email


@dataclass(frozen=True)
class Profile:
    """An account as answers and tokens show it, its login, display name and email address unsealed."""

    id: uuid.UUID
    login: str
    name: str
    email: str | None
    role: Role
    counties: list[str]
    state: State
    person_id: uuid.UUID | None
    reset_requested_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int

    @property
    def sub(self) -> str:
        """The tokens' subject: a volunteer's or donor's registered id (the other services know them by it), else
        the account's id."""
        return str(self.person_id or self.id)


@dataclass(frozen=True)
class NewAccount:
    login: str
    name: str
    role: Role
    counties: Sequence[str] = ()
    person_id: uuid.UUID | None = None
    email: str | None = None
    send_link: bool = True  # the invitation to its owner by SMS and email too (no: handed over by whoever made it)


class Keep(Enum):
    KEEP = "keep"


KEEP: Final = Keep.KEEP  # an optional field left as it is (None would remove it)


@dataclass(frozen=True)
class AccountChange:
    """What changes; None leaves it as it is, except the email address: KEEP leaves it, None removes it."""

    role: Role | None = None
    counties: Sequence[str] | None = None
    name: str | None = None
    person_id: uuid.UUID | None = None
    email: str | Keep | None = KEEP


def _personal(login: str, name: str, email: str | None) -> dict[str, Any]:
    """What an account's own key seals: erasing the key erases them all."""
    return {"login": login, "name": name} | ({"email": email} if email else {})


async def profiles(conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[Profile]:
    keys = await vault.keys_of(conn, [row.id for row in rows])
    return [_profile(row, keys.get(row.id)) for row in rows]


def _profile(row: Row[*tuple[Any, ...]], key: bytes | None) -> Profile:
    personal = vault.unseal(key, row.id, row.sealed) or {}
    return Profile(
        id=row.id,
        login=personal.get("login", ""),
        name=personal.get("name", ""),
        email=personal.get("email"),
        role=cast(Role, row.role),
        counties=list(row.counties),
        state=cast(State, row.state),
        person_id=row.person_id,
        reset_requested_at=row.reset_requested_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
    )


async def _one(conn: AsyncConnection, account_id: uuid.UUID) -> Profile:
    row = (await conn.execute(select(AccountRecord).where(AccountRecord.id == account_id).with_for_update())).first()
    if row is None:
        raise DomainError("not_found", "no such account")
    return (await profiles(conn, [row]))[0]


async def _update(conn: AsyncConnection, account_id: uuid.UUID, now: datetime, **values: Any) -> None:
    query = update(AccountRecord).where(AccountRecord.id == account_id)
    await conn.execute(query.values(**values, updated_at=now, version=AccountRecord.version + 1))


# Passwords


@functools.cache
def _decoy() -> str:
    """A hash to check a password against when there is no account: an unknown login takes as long as a known one."""
    return hasher.hash(new_token())


async def _hash(password: str) -> str:
    return await asyncio.to_thread(hasher.hash, password)  # about 0.1 s of work: not on the event loop


async def _verify(stored: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return hasher.verify(stored or _decoy(), password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


# Sign-in, client credentials, refresh, sign-out


def _minted(issuer: Issuer, runtime: Runtime, profile: Profile, sub: str, session_id: uuid.UUID | None) -> Grant:
    seconds = runtime.settings.access_token_seconds
    token = issuer.mint(
        sub=sub,
        role=profile.role,
        counties=profile.counties,
        ttl=timedelta(seconds=seconds),
        name=profile.name or None,
        session_id=str(session_id) if session_id else None,
    )
    return Grant(token, seconds)


async def sign_in(runtime: Runtime, issuer: Issuer, login: str, password: str, address: str) -> Grant:
    """A person's sign-in: a new session, an access token and its first refresh token."""
    async with runtime.db.begin() as conn:
        profile = await _authenticate(runtime, conn, login, password, address, "sign_in")
        if profile is not None:
            session_id, refresh_token = await _start_session(conn, profile.id, runtime.clock.now())
    if profile is None:
        raise WRONG
    grant = _minted(issuer, runtime, profile, profile.sub, session_id)
    return Grant(grant.access_token, grant.expires_in, refresh_token)


async def client_credentials(runtime: Runtime, issuer: Issuer, client_id: str, secret: str, address: str) -> Grant:
    """A service's own short-lived token (no session, no refresh token: it asks again)."""
    async with runtime.db.begin() as conn:
        profile = await _authenticate(runtime, conn, client_id, secret, address, "client_token")
    if profile is None:
        raise DomainError("invalid_client", "the client id or secret is not right")
    return _minted(issuer, runtime, profile, f"service:{profile.login}", None)


async def _authenticate(
    runtime: Runtime, conn: AsyncConnection, typed: str, password: str, address: str, action: str
) -> Profile | None:
    """The active account the login and password (or client id and secret) open, or None once the failure is
    recorded (against the login, known or not, and the address) and audit-logged. A person's password opens no
    service token and a client secret no session."""
    now, secret = runtime.clock.now(), runtime.settings.secret
    try:
        login = accounts.normal_login(typed)
    except DomainError:
        login = typed  # throttled all the same, so that the answers tell nothing about what a login may be
    key, source = login_key(secret, login), source_key(secret, address)
    # Holding the account's row makes concurrent guesses at one login take turns: none skips the count.
    row = (await conn.execute(select(AccountRecord).where(AccountRecord.login_key == key).with_for_update())).first()
    # A client id is no secret and its 256-bit secret cannot be guessed: a per-login lockout would only let anyone
    # who knows the id shut the service out. Its failures count against the address alone.
    per_login = action != "client_token"
    failures = await _admit(conn, key, source, now, per_login)
    profile = (await profiles(conn, [row]))[0] if row is not None else None
    wanted = (profile.role == "service") == (action == "client_token") if profile else False
    usable = profile is not None and profile.state == "active" and wanted
    stored = row.password_hash if row is not None and usable else None
    right = await _verify(stored, password)  # checked against a decoy without a password: as slow either way
    if profile is None or stored is None or not right:
        why = None if wanted else "wrong kind of account"
        await _fail(conn, now, key, source, failures, profile, action, why, counted=per_login)
        return None
    if hasher.check_needs_rehash(stored):
        await conn.execute(
            update(AccountRecord).where(AccountRecord.id == profile.id).values(password_hash=await _hash(password))
        )
    await _clear_failures(conn, key)
    await audit.record_account(conn, now, profile.sub, profile.role, action, profile.id, note=_from(source))
    return profile


async def _admit(conn: AsyncConnection, key: str, source: str, now: datetime, per_login: bool = True) -> Failures:
    """The login's failures so far (none if it is not `per_login`), if it and the address may be tried now (else
    TryLater)."""
    failures = Failures()
    if per_login:
        counted = (
            SignInFailure.login_key == key,
            SignInFailure.counted.is_(True),
            SignInFailure.at > now - accounts.FAILURE_MEMORY,
        )
        count, last = (await conn.execute(select(func.count(), func.max(SignInFailure.at)).where(*counted))).one()
        failures = Failures(count, last)
        accounts.admit(failures, now)
    recent = await conn.execute(
        select(SignInFailure.at)
        .where(SignInFailure.source_key == source, SignInFailure.at > now - accounts.SOURCE_WINDOW)
        .order_by(SignInFailure.at)
    )
    accounts.admit_source(list(recent.scalars()), now)
    return failures


async def _fail(
    conn: AsyncConnection,
    now: datetime,
    key: str,
    source: str,
    failures: Failures,
    profile: Profile | None,
    action: str,
    why: str | None = None,
    counted: bool = True,
) -> None:
    """Record a failure against the address and, if `counted`, the login (forgetting those past FAILURE_MEMORY),
    audit-logged with why, and the lockout it brings, if it does."""
    await conn.execute(delete(SignInFailure).where(SignInFailure.at < now - accounts.FAILURE_MEMORY))
    await conn.execute(insert(SignInFailure).values(at=now, login_key=key, source_key=source, counted=counted))
    actor, role = (profile.sub, profile.role) if profile else ("unknown", "none")
    account_id = profile.id if profile else None
    if profile is None or profile.state != "active":
        why = f"{profile.state} account" if profile else "no such login"
    note = f"{why or 'wrong password'}; {_from(source)}"
    await audit.record_account(conn, now, actor, role, action, account_id, "denied", note)
    if counted and accounts.locks(failures.count + 1):
        minutes = accounts.LOCKOUT_MINUTES
        note = f"{failures.count + 1} failures: locked {minutes} minutes; {_from(source)}"
        await audit.record_account(conn, now, actor, role, "lockout", account_id, "denied", note)


def _from(source: str) -> str:
    return f"from address {source[:16]}"  # keyed: the same address reads alike, and is not told


async def _clear_failures(conn: AsyncConnection, key: str) -> None:
    """A success (or a new password) starts the login's count again; the address keeps its failures."""
    await conn.execute(
        update(SignInFailure)
        .where(SignInFailure.login_key == key, SignInFailure.counted.is_(True))
        .values(counted=False)
    )


async def _start_session(conn: AsyncConnection, account_id: uuid.UUID, now: datetime) -> tuple[uuid.UUID, str]:
    session_id = uuid.uuid4()
    await conn.execute(insert(SessionRecord).values(id=session_id, account_id=account_id, created_at=now))
    return session_id, await _issue_refresh(conn, session_id, now, now)


async def _issue_refresh(conn: AsyncConnection, session_id: uuid.UUID, signed_in_at: datetime, now: datetime) -> str:
    token = new_token()
    expires_at = accounts.refresh_expiry(signed_in_at, now)
    await conn.execute(
        insert(RefreshTokenRecord).values(
            token_hash=token_hash(token), session_id=session_id, issued_at=now, expires_at=expires_at
        )
    )
    return token


async def _end_sessions(
    conn: AsyncConnection, now: datetime, reason: str, account_id: uuid.UUID, keep: uuid.UUID | None = None
) -> None:
    query = update(SessionRecord).where(SessionRecord.account_id == account_id, SessionRecord.ended_at.is_(None))
    if keep is not None:
        query = query.where(SessionRecord.id != keep)
    await conn.execute(query.values(ended_at=now, end_reason=reason))


async def _end_session(conn: AsyncConnection, session_id: uuid.UUID, now: datetime, reason: str) -> None:
    await conn.execute(
        update(SessionRecord).where(SessionRecord.id == session_id).values(ended_at=now, end_reason=reason)
    )


async def _refresh_row(
    conn: AsyncConnection, token: str
) -> Row[RefreshTokenRecord, uuid.UUID, datetime, datetime | None] | None:
    """The refresh token with its session, held until the transaction ends."""
    query = (
        select(RefreshTokenRecord, SessionRecord.account_id, SessionRecord.created_at, SessionRecord.ended_at)
        .join(SessionRecord, SessionRecord.id == RefreshTokenRecord.session_id)
        .where(RefreshTokenRecord.token_hash == token_hash(token))
        .with_for_update()
    )
    return (await conn.execute(query)).first()


async def refresh(runtime: Runtime, issuer: Issuer, token: str) -> Grant:
    """A new access token and a new refresh token for the old one, which then never works again: presented a
    second time, it ends its whole session (someone else holds a copy)."""
    now = runtime.clock.now()
    async with runtime.db.begin() as conn:
        found = await _refresh_row(conn, token)
        profile = await _one(conn, found.account_id) if found is not None else None
        decision = accounts.refresh(
            accounts.Refresh(found.expires_at, found.used_at is not None, found.ended_at is None, profile.state)
            if found is not None and profile is not None
            else None,
            now,
        )
        assert found is not None  # refused above otherwise
        assert profile is not None
        if decision == "rotate":
            used = update(RefreshTokenRecord).where(RefreshTokenRecord.token_hash == found.token_hash)
            await conn.execute(used.values(used_at=now))  # the row is held: no other request uses it meanwhile
            fresh = await _issue_refresh(conn, found.session_id, found.created_at, now)
        else:
            await _end_session(conn, found.session_id, now, "refresh_reuse")
            note = f"a used refresh token came back: session {found.session_id} ended"
            await audit.record_account(
                conn, now, profile.sub, profile.role, "refresh_reuse", profile.id, "denied", note
            )
    if decision == "reuse":
        raise DomainError("invalid_refresh_token", "the refresh token is not valid; sign in again")
    grant = _minted(issuer, runtime, profile, profile.sub, found.session_id)
    return Grant(grant.access_token, grant.expires_in, fresh)


async def sign_out(runtime: Runtime, token: str) -> None:
    """End the session the refresh token belongs to (any of its tokens will do); an unknown one changes nothing."""
    now = runtime.clock.now()
    async with runtime.db.begin() as conn:
        found = await _refresh_row(conn, token)
        if found is None or found.ended_at is not None:
            return
        await _end_session(conn, found.session_id, now, "signed_out")
        profile = await _one(conn, found.account_id)
        note = f"session {found.session_id}"
        await audit.record_account(conn, now, profile.sub, profile.role, "sign_out", profile.id, note=note)


# The owner's own password


async def _session_account(conn: AsyncConnection, principal: Principal) -> tuple[Profile, uuid.UUID]:
    """The account whose session the token belongs to, while that session runs."""
    try:
        session_id = uuid.UUID(principal.session_id or "")
    except ValueError:
        session_id = None
    query = select(SessionRecord.account_id).where(SessionRecord.id == session_id, SessionRecord.ended_at.is_(None))
    account_id = await conn.scalar(query) if session_id else None
    if session_id is None or account_id is None:
        raise DomainError("no_session", "this token belongs to no running sign-in session; sign in again")
    return await _one(conn, account_id), session_id


async def change_password(runtime: Runtime, principal: Principal, current: str, new: str, address: str) -> None:
    """The owner's new password: the current one is checked (failures count as a sign-in's do), and every other
    session of the account ends."""
    now = runtime.clock.now()
    async with runtime.db.begin() as conn:
        profile, session_id = await _session_account(conn, principal)
        accounts.check_password(new, [profile.login, profile.name])
        key, source = login_key(runtime.settings.secret, profile.login), source_key(runtime.settings.secret, address)
        failures = await _admit(conn, key, source, now)
        stored = await conn.scalar(select(AccountRecord.password_hash).where(AccountRecord.id == profile.id))
        right = await _verify(stored, current)
        if right:
            await _update(conn, profile.id, now, password_hash=await _hash(new))
            await _end_sessions(conn, now, "password_changed", profile.id, keep=session_id)
            await _clear_failures(conn, key)
            await audit.record_account(conn, now, profile.sub, profile.role, "password_change", profile.id)
        else:
            await _fail(conn, now, key, source, failures, profile, "password_change")
    if not right:
        raise DomainError("wrong_password", "the current password is not right")


# One-time links


async def _new_link(
    runtime: Runtime,
    conn: AsyncConnection,
    owner: Profile,
    kind: LinkKind,
    now: datetime,
    by: str,
    send: bool = True,
) -> Handover:
    """A new link (never a service's: it has a client secret); any earlier one of the kind still unused stops
    working. Unless told not to `send` it, or its owner has no mobile-number login and no email address, it is
    announced (`LinkIssued`) for the notifications service to send to its owner, who may
    never be handed it otherwise. The event carries no token and no contact: the token is derived from the link's id
    (`sent_link_token`), for `sent_links` to give it again at send time, and kept nowhere."""
    role = accounts.link_role(owner.role)
    await _retire_links(conn, owner.id, now, kind)
    link_id, expires_at = uuid.uuid4(), accounts.link_expiry(kind, now)
    sent = send and reachable(owner)
    token = sent_link_token(runtime.settings.secret, link_id) if sent else new_token()
    await conn.execute(
        insert(AccountLink).values(
            token_hash=token_hash(token),
            account_id=owner.id,
            kind=kind,
            created_at=now,
            expires_at=expires_at,
            created_by=by[:100],
        )
    )
    if sent:
        county_code = owner.counties[0] if owner.counties else None
        issued = LinkIssued(
            link_id=link_id, account_id=owner.id, kind=kind, role=role, county_code=county_code, expires_at=expires_at
        )
        await runtime.append(conn, Append(str(link_id), 0, [issued]))
    return Handover(kind, token, expires_at, sent=sent)


def reachable(owner: Profile) -> bool:
    """Whether a link can be sent to the account's owner: by SMS to a mobile-number login, or by email."""
    return recipients.mobile(owner.login) is not None or owner.email is not None


async def _retire_links(
    conn: AsyncConnection, account_id: uuid.UUID, now: datetime, kind: LinkKind | None = None
) -> None:
    query = update(AccountLink).where(AccountLink.account_id == account_id, AccountLink.used_at.is_(None))
    await conn.execute((query.where(AccountLink.kind == kind) if kind else query).values(used_at=now))


async def sent_links(
    conn: AsyncConnection, secret: bytes, link_ids: Sequence[uuid.UUID], now: datetime
) -> dict[uuid.UUID, recipients.OpenLink]:
    """Those of the announced links that can still be used (`accounts.usable`), by id, each with its token and its
    owner opened, in two queries whatever their number: the tokens are derived again from the ids, and the links
    found by their hashes. A link used, replaced or expired, or whose account was disabled or erased, is not among
    them."""
    by_hash = {token_hash(sent_link_token(secret, link_id)): link_id for link_id in link_ids}
    if not by_hash:
        return {}
    query = (
        select(
            *AccountRecord.__table__.columns,
            AccountLink.token_hash,
            AccountLink.kind,
            AccountLink.expires_at,
            AccountLink.used_at,
        )
        .join_from(AccountLink, AccountRecord, AccountRecord.id == AccountLink.account_id)
        .where(AccountLink.token_hash.in_(by_hash))
    )
    rows = (await conn.execute(query)).all()
    keys = await vault.keys_of(conn, [row.id for row in rows])
    found = {}
    for row in rows:
        kind = cast(LinkKind, row.kind)
        if row.id in keys and accounts.usable(accounts.Link(kind, row.expires_at, row.used_at, row.state), now):
            owner, link_id = _profile(row, keys[row.id]), by_hash[row.token_hash]
            found[link_id] = recipients.OpenLink(
                owner.id, owner.sub, owner.login, owner.email, kind, sent_link_token(secret, link_id)
            )
    return found


async def _use_link(runtime: Runtime, token: str, kind: LinkKind, password: str) -> None:
    """Set the password through an invitation or reset link: once, before it expires."""
    now = runtime.clock.now()
    async with runtime.db.begin() as conn:
        query = select(AccountLink).where(AccountLink.token_hash == token_hash(token)).with_for_update()
        link = (await conn.execute(query)).first()
        profile = await _one(conn, link.account_id) if link is not None else None
        found = accounts.Link(link.kind, link.expires_at, link.used_at, profile.state) if link and profile else None
        state = accounts.use_link(found, kind, now)
        assert link is not None  # refused above otherwise
        assert profile is not None
        accounts.check_password(password, [profile.login, profile.name])
        await conn.execute(update(AccountLink).where(AccountLink.token_hash == link.token_hash).values(used_at=now))
        await _update(conn, profile.id, now, state=state, password_hash=await _hash(password), reset_requested_at=None)
        if kind == "reset":
            await _end_sessions(conn, now, "password_reset", profile.id)
        await _clear_failures(conn, login_key(runtime.settings.secret, profile.login))
        action = "invite_accept" if kind == "invitation" else "password_reset"
        await audit.record_account(conn, now, profile.sub, profile.role, action, profile.id)


async def accept_invitation(runtime: Runtime, token: str, password: str) -> None:
    await _use_link(runtime, token, "invitation", password)


async def complete_reset(runtime: Runtime, token: str, password: str) -> None:
    """A new password by a reset link: every session of the account ends, and the login may be tried again."""
    await _use_link(runtime, token, "reset", password)


async def request_reset(runtime: Runtime, typed: str) -> None:
    """Someone asks for a reset (the API answers first, and does this after). For an active account (not a
    service's) the request shows in the account list until a password is set by a link or an admin or coordinator
    gives one; and its owner is sent a reset link when `accounts.sends_reset` allows: one that can be reached, none
    of whose reset links works now, sent fewer than three today. Each request that writes anything is audit-logged.
    Anything else is quietly ignored."""
    try:
        key = login_key(runtime.settings.secret, accounts.normal_login(typed))
    except DomainError:
        return
    now = runtime.clock.now()
    async with runtime.transaction() as conn:
        # Held: requests for one login at the same moment take turns, and only the first makes a link.
        query = select(AccountRecord).where(
            AccountRecord.login_key == key, AccountRecord.state == "active", AccountRecord.role != "service"
        )
        row = (await conn.execute(query.with_for_update())).first()
        if row is None:
            return
        owner = (await profiles(conn, [row]))[0]
        today = select(AccountLink.created_by, AccountLink.created_at, AccountLink.used_at, AccountLink.expires_at)
        resets = (
            await conn.execute(
                today.where(
                    AccountLink.account_id == row.id,
                    AccountLink.kind == "reset",
                    AccountLink.created_at > now - timedelta(days=1),  # a reset link lasts an hour: all that work
                )
            )
        ).all()
        working = sum(
            1
            for link in resets
            if accounts.usable(accounts.Link("reset", link.expires_at, link.used_at, row.state), now)
        )
        sent_today = [link.created_at for link in resets if link.created_by == ANONYMOUS]
        sends = accounts.sends_reset(reachable(owner), working, sent_today, now)
        marks = row.reset_requested_at is None  # the first request not yet answered is the one the list shows
        if marks:
            await conn.execute(update(AccountRecord).where(AccountRecord.id == row.id).values(reset_requested_at=now))
        if marks or sends:  # anyone may ask for any login: no act of the owner's
            note = "link sent" if sends else "no link sent"
            await audit.record_account(conn, now, ANONYMOUS, "none", "reset_request", owner.id, note=note)
        if sends:  # after the answer (the API's background task): no X-Written tells that the login has an account
            await _new_link(runtime, conn, owner, "reset", now, ANONYMOUS)


# Managing accounts (admins; coordinators for their counties' volunteers and child directors)


def _may_manage(actor: Principal, role: Role, counties: Sequence[str]) -> None:
    if not accounts.may_manage(actor.role, actor.counties, role, counties):
        raise DomainError(
            "forbidden",
            "admins manage accounts; a coordinator, the volunteer and child director accounts of their counties",
        )


async def _person(conn: AsyncConnection, person_id: uuid.UUID | None) -> Person | None:
    if person_id is None:
        return None
    volunteer = (
        await conn.execute(
            select(VolunteerRecord.county_code, VolunteerRecord.erased_at).where(VolunteerRecord.id == person_id)
        )
    ).first()
    if volunteer is not None:
        return Person(person_id, "volunteer", volunteer.county_code, volunteer.erased_at is not None)
    donor = await conn.scalar(select(DonorRecord.id).where(DonorRecord.id == person_id))
    if donor is None:
        raise DomainError("person_not_found", "person_id names no registered volunteer or donor")
    return Person(person_id, "donor")


async def _unlinked(conn: AsyncConnection, person_id: uuid.UUID | None, account_id: uuid.UUID | None = None) -> None:
    """One account per registered person: the other services know it by the person's id."""
    if person_id is None:
        return
    other = await conn.scalar(
        select(AccountRecord.id).where(AccountRecord.person_id == person_id, AccountRecord.id != account_id)
    )
    if other is not None:
        raise DomainError("person_has_account", "this volunteer or donor already has an account")


async def _free(conn: AsyncConnection, key: str, person_id: uuid.UUID | None) -> None:
    """Neither the login nor the person has an account yet."""
    if await conn.scalar(select(AccountRecord.id).where(AccountRecord.login_key == key)) is not None:
        raise DomainError("login_taken", "an account with this login exists")
    await _unlinked(conn, person_id)


async def create_account(runtime: Runtime, actor: Principal, new: NewAccount) -> tuple[Profile, Handover]:
    """An invited account and its invitation link, or an active service account and its client secret."""
    now, login = runtime.clock.now(), accounts.normal_login(new.login)
    if new.email is not None:
        new = replace(new, email=accounts.normal_email(new.email))
    account_id, key = uuid.uuid4(), login_key(runtime.settings.secret, login)
    try:
        return await _insert_account(runtime, actor, new, account_id, login, key, now)
    except IntegrityError:
        # Another request took the login or the person between our check and our insert, and has committed.
        async with runtime.db.begin() as conn:  # the primary, which has it: a replica may not yet
            await _free(conn, key, new.person_id)
        raise


async def _insert_account(
    runtime: Runtime, actor: Principal, new: NewAccount, account_id: uuid.UUID, login: str, key: str, now: datetime
) -> tuple[Profile, Handover]:
    async with runtime.transaction() as conn:
        counties = accounts.settle(new.role, new.counties, await _person(conn, new.person_id), login)
        _may_manage(actor, new.role, counties)
        await _free(conn, key, new.person_id)
        handover = Handover("client_secret", new_token()) if new.role == "service" else None
        sealing = await vault.create_key(conn, account_id, now)
        await conn.execute(
            insert(AccountRecord).values(
                id=account_id,
                login_key=key,
                role=new.role,
                counties=list(counties),
                state="active" if handover else "invited",
                password_hash=await _hash(handover.token) if handover else None,
                person_id=new.person_id,
                sealed=vault.seal(sealing, account_id, _personal(login, new.name, new.email)),
                created_at=now,
                updated_at=now,
                version=1,
            )
        )
        profile = await _one(conn, account_id)
        handover = handover or await _new_link(runtime, conn, profile, "invitation", now, actor.sub, send=new.send_link)
        note = f"role {new.role}; counties {','.join(counties) or '-'}"
        await audit.record_account(conn, now, actor.sub, actor.role, "account_create", account_id, note=note)
        return profile, handover


@dataclass(frozen=True)
class _Managing:
    """An account held for a change by an actor allowed to manage it as it stands."""

    conn: AsyncConnection
    actor: Principal
    before: Profile
    now: datetime

    async def update(self, **values: Any) -> None:
        await _update(self.conn, self.before.id, self.now, **values)

    async def audit(self, action: str, note: str = "") -> None:
        await audit.record_account(
            self.conn, self.now, self.actor.sub, self.actor.role, action, self.before.id, note=note
        )


@asynccontextmanager
async def _managing(runtime: Runtime, actor: Principal, account_id: uuid.UUID) -> AsyncIterator[_Managing]:
    async with runtime.transaction() as conn:  # a link made is announced: the relay publishes it once committed
        before = await _one(conn, account_id)
        _may_manage(actor, before.role, before.counties)
        if await vault.key_of(conn, account_id) is None:  # its person was erased: it stays closed for good
            raise DomainError("account_erased", "this account's person was erased; it cannot be changed or reopened")
        yield _Managing(conn, actor, before, runtime.clock.now())


async def change_account(runtime: Runtime, actor: Principal, account_id: uuid.UUID, change: AccountChange) -> Profile:
    """A new role, counties, display name, email address or person: a new role or counties end the account's
    sessions (its access tokens carry them), so it signs in again to act as it is now."""
    try:
        return await _change_account(runtime, actor, account_id, change)
    except IntegrityError:
        # Another request linked the same person between our check and our update, and has committed.
        if change.person_id is not None:
            async with runtime.db.begin() as conn:
                await _unlinked(conn, change.person_id, account_id)
        raise


async def _change_account(runtime: Runtime, actor: Principal, account_id: uuid.UUID, change: AccountChange) -> Profile:
    if isinstance(change.email, str):
        change = replace(change, email=accounts.normal_email(change.email))
    async with _managing(runtime, actor, account_id) as held:
        conn, before = held.conn, held.before
        role = change.role or before.role
        accounts.change_role(before.role, role)
        person_id = change.person_id or (before.person_id if role in accounts.PERSON_ROLES else None)
        # Counties carry over between the roles that serve counties (a child director made a coordinator, say).
        kept = before.counties if {before.role, role} <= set(accounts.COUNTY_ROLES) else ()
        counties = accounts.settle(
            role, kept if change.counties is None else change.counties, await _person(conn, person_id), before.login
        )
        _may_manage(actor, role, counties)
        await _unlinked(conn, person_id, account_id)
        name = before.name if change.name is None else change.name
        email = before.email if change.email is KEEP else change.email
        values: dict[str, Any] = {"role": role, "counties": list(counties), "person_id": person_id}
        if (name, email) != (before.name, before.email):
            key = await vault.key_of(conn, account_id)
            assert key is not None  # destroyed only with an erasure, refused by `_managing`
            values["sealed"] = vault.seal(key, account_id, _personal(before.login, name, email))
        await held.update(**values)
        if reason := accounts.sessions_end_for(
            (before.role, before.counties, before.person_id), (role, counties, person_id)
        ):
            await _end_sessions(conn, held.now, reason, account_id)
        for action, old, new in [
            ("role_change", before.role, role),
            ("counties_change", ",".join(before.counties) or "-", ",".join(counties) or "-"),
            ("person_change", str(before.person_id or "-"), str(person_id or "-")),
            ("name_change", before.name, name),
            ("email_change", before.email or "", email or ""),
        ]:
            if old != new:
                personal = action in ("name_change", "email_change")
                await held.audit(action, "" if personal else f"{old} -> {new}")  # no name or address in the log
        return await _one(conn, account_id)


async def disable(runtime: Runtime, actor: Principal, account_id: uuid.UUID) -> Profile:
    """No more sign-ins, refreshes or links; its sessions end now, its access tokens within their lifetime."""
    async with _managing(runtime, actor, account_id) as held:
        if held.before.state != "disabled":
            await held.update(state="disabled")
            await _end_sessions(held.conn, held.now, "disabled", account_id)
            await _retire_links(held.conn, account_id, held.now)
            await held.audit("account_disable")
        return await _one(held.conn, account_id)


async def reinvite(runtime: Runtime, actor: Principal, account_id: uuid.UUID, send: bool = True) -> Handover:
    """A new invitation link for an account not yet accepted, or a disabled one coming back (its old password no
    longer works); sent to its owner too unless not to `send`."""
    async with _managing(runtime, actor, account_id) as held:
        await held.update(state=accounts.reinvite(held.before.state, held.before.role), password_hash=None)
        await held.audit("reinvite")
        return await _new_link(runtime, held.conn, held.before, "invitation", held.now, actor.sub, send=send)


async def reset_link(runtime: Runtime, actor: Principal, account_id: uuid.UUID, send: bool = True) -> Handover:
    """A password reset link for an active account (one hour), sent to its owner too unless not to `send`; the
    password works until the link is used."""
    async with _managing(runtime, actor, account_id) as held:
        accounts.may_reset(held.before.state, held.before.role)
        await held.update(reset_requested_at=None)
        await held.audit("reset_link")
        return await _new_link(runtime, held.conn, held.before, "reset", held.now, actor.sub, send=send)


async def new_client_secret(runtime: Runtime, actor: Principal, account_id: uuid.UUID) -> Handover:
    """A service account's new client secret; the old one stops working at once."""
    async with _managing(runtime, actor, account_id) as held:
        if held.before.role != "service":
            raise DomainError("not_a_service", "only a service account has a client secret")
        handover = Handover("client_secret", new_token())
        await held.update(password_hash=await _hash(handover.token))
        await held.audit("client_secret")
        return handover


async def close_accounts_of(conn: AsyncConnection, person_id: uuid.UUID, now: datetime) -> None:
    """The person behind an account was erased: in the erasure's own transaction, the account is disabled, its
    sessions and links end, its login and display name become unreadable (its key is destroyed) and its lookup key is
    replaced, so the mobile number no longer finds it."""
    rows = (await conn.execute(select(AccountRecord.id).where(AccountRecord.person_id == person_id))).all()
    for (account_id,) in rows:
        await _update(
            conn, account_id, now, state="disabled", login_key=login_key(new_token().encode(), str(account_id))
        )
        await _end_sessions(conn, now, "erased", account_id)
        await _retire_links(conn, account_id, now)
        await vault.destroy_key(conn, account_id)
        await audit.record_account(conn, now, "registry", "service", "account_erase", account_id)
