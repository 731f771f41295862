"""Reading one's own writes: a command's answer says what it wrote, and a view asked to waits, briefly, to show it.

Each HTTP request records what it appends: per aggregate, the last version, once its transaction commits; also what
is appended for it elsewhere, under its causes (a group commit writes several requests' items together). A
successful answer carries that in `X-Written` as a token, `<context>.<aggregate>:<id>:<version>` comma-separated
(`matching.child:8c0e…:5,matching.contact:1f2a…:1`): only our own ids and versions, never what was sent. A request
that wrote more than MAX_ENTRIES aggregates (a bulk import) gets none.

A view that reads projections takes the token back (`X-Wait-For`, or `?wait_for=`; `backbone.deps.fresh`): it
waits, up to `WAIT_FOR_MS` (or the request's `wait_ms` if less), until each of its projections has applied every write
of the token it follows, as their tracking rows (`projection_cursors`, written in the same transaction as the view's
rows) say, so whichever replica applied them. It answers `X-Fresh: true`, or after the bound, as it is, `X-Fresh:
false`. What other services or projections write in reaction to those events (the schedule matching starts for a
child the registry registers) is not in the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator, Sequence
from contextvars import ContextVar

from sqlalchemy import select
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backbone import context
from backbone.database import Database
from backbone.projection import Projection, ProjectionCursor
from backbone.store import Append

WRITTEN = "X-Written"  # the answer of a request that wrote: its token
WAIT_FOR = "X-Wait-For"  # a view's request: the token to wait for
FRESH = "X-Fresh"  # the view's answer to it: whether it shows every write of the token it follows
MAX_ENTRIES = 50  # aggregates in a token: a request that wrote more gets none
MAX_CHARS = 4096  # a token longer than this is given to nobody and taken from nobody
MAX_VERSION = 2**31 - 1  # the largest version the event log can hold
POLL_SECONDS = 0.015  # how often a waiting view looks at its projections' tracking rows again

_KIND = r"[a-z][a-z0-9_]{0,31}\.[a-z][a-z0-9_]{0,31}"  # <context>.<aggregate>, as in every event's type
_ID = r"[0-9a-z][0-9a-z-]{0,63}"  # our aggregate ids: UUIDs, or such as `county-450325`
_ENTRY = re.compile(rf"({_KIND}):({_ID}):([1-9][0-9]{{0,9}})")


class Writes:
    """The last version written of each aggregate, by its kind (`<context>.<aggregate>`) and id: what a request
    appended, or what a token says. `withheld`: more than MAX_ENTRIES, or one no token can carry; then no token."""

    def __init__(self) -> None:
        self.versions: dict[tuple[str, str], int] = {}
        self.withheld = False

    def add(self, kind: str, aggregate_id: str, version: int) -> None:
        if self.withheld:
            return
        key = (kind, aggregate_id)
        self.versions[key] = max(version, self.versions.get(key, 0))
        fits = _ENTRY.fullmatch(f"{kind}:{aggregate_id}:{version}") is not None and version <= MAX_VERSION
        if len(self.versions) > MAX_ENTRIES or not fits:
            self.withheld = True
            self.versions.clear()  # a bulk import appends to thousands: nothing of it is kept

    def merge(self, other: Writes) -> None:
        if other.withheld:
            self.withheld = True
            self.versions.clear()
        for (kind, aggregate_id), version in other.versions.items():
            self.add(kind, aggregate_id, version)

    def token(self) -> str | None:
        """The token of these writes; None if nothing was written, or if they are too many to tell."""
        if self.withheld or not self.versions:
            return None
        entries = sorted(self.versions.items())
        token = ",".join(f"{kind}:{aggregate_id}:{version}" for (kind, aggregate_id), version in entries)
        return token if len(token) <= MAX_CHARS else None


def parse(token: str) -> Writes:
    """The writes a token names; ValueError, whose message repeats nothing of the token, if it is not one of ours."""
    if len(token) > MAX_CHARS:
        raise ValueError(f"a token has at most {MAX_CHARS} characters")
    entries = token.split(",")
    if len(entries) > MAX_ENTRIES:
        raise ValueError(f"a token names at most {MAX_ENTRIES} aggregates")
    writes = Writes()
    for entry in entries:
        found = _ENTRY.fullmatch(entry)
        if found is None or int(found[3]) > MAX_VERSION:
            raise ValueError(f"not a token of {WRITTEN}: <context>.<aggregate>:<id>:<version>, comma-separated")
        writes.add(found[1], found[2], int(found[3]))
    return writes


def follows(subjects: Sequence[str], kind: str) -> bool:
    """Whether a projection of these NATS subjects (wildcards `*` and `>`) follows the aggregates of `kind`, whose
    events' subjects are `<kind>.<event>`: every one of them, as projections do (they follow whole aggregates)."""
    return any(_covers(subject.split("."), kind.split(".")) for subject in subjects)


def _covers(pattern: list[str], prefix: list[str]) -> bool:
    for position, part in enumerate(pattern):
        if part == ">":
            return True  # the rest, one token or more: the event's name at least
        if position == len(prefix):
            return part == "*" and position == len(pattern) - 1  # the event's name, whichever it is
        if part not in ("*", prefix[position]):
            return False
    return False  # the pattern ends before the event's name


_recording: ContextVar[Writes | None] = ContextVar("recording", default=None)  # the request's
# What the transaction running now appended, for whom: it counts once the transaction commits.
_pending: ContextVar[list[tuple[Writes, str, str, int]] | None] = ContextVar("pending", default=None)
# The requests in flight by their causes (the very object: `context.current()` in the request), for writes made on
# their behalf elsewhere: a group commit writes several requests' items together, in a context of its own.
_in_flight: dict[int, tuple[context.Causes, Writes]] = {}


def _writes_of(append: Append) -> Writes | None:
    """Whose write an append is: the request whose causes it names, else the request running now (if any)."""
    if append.causes is None:
        return _recording.get()
    found = _in_flight.get(id(append.causes))
    return found[1] if found is not None and found[0] is append.causes else None


def appended(appends: Sequence[Append]) -> None:
    """Note what was appended, for the request it is written for, if any (`Runtime.append`)."""
    pending = _pending.get()
    for append in appends:
        writes = _writes_of(append)
        if writes is None or not append.events:
            continue
        last = append.events[-1]
        kind, version = f"{last.context()}.{last.aggregate()}", append.expected_version + len(append.events)
        if pending is None:
            writes.add(kind, append.stream_id, version)
        else:
            pending.append((writes, kind, append.stream_id, version))


@contextlib.contextmanager
def transaction() -> Iterator[None]:
    """Around a write transaction (`Runtime.transaction`): what it appends counts once it commits, that is once the
    block ends without an error; a transaction rolled back and tried again leaves nothing of its first try."""
    outer = _pending.get()
    pending: list[tuple[Writes, str, str, int]] = []
    reset = _pending.set(pending)
    try:
        yield
    finally:
        _pending.reset(reset)
    if outer is not None:
        outer.extend(pending)  # a transaction inside another commits with it
        return
    for writes, kind, aggregate_id, version in pending:
        writes.add(kind, aggregate_id, version)


class Recorder:
    """ASGI middleware: records what each HTTP request appends, and gives a successful answer its token. Installed
    inside the middleware that binds each request's causes (backbone.http), whose object it records them by."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        writes, causes = Writes(), context.current()
        reset = _recording.set(writes)
        known = _in_flight.setdefault(id(causes), (causes, writes))[1] is writes  # never another request's causes

        async def answer(message: Message) -> None:
            successful = message["type"] == "http.response.start" and 200 <= message["status"] < 300
            if successful and (token := writes.token()) is not None:
                MutableHeaders(scope=message).append(WRITTEN, token)
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            _recording.reset(reset)
            if known:
                del _in_flight[id(causes)]


def needed(projections: Sequence[type[Projection]], writes: Writes) -> dict[tuple[str, str], int]:
    """The version each (projection, aggregate) must have applied for a view of `projections` to show `writes`: those
    of the writes each projection follows."""
    return {
        (projection.name, aggregate_id): version
        for projection in projections
        for (kind, aggregate_id), version in writes.versions.items()
        if follows(projection.subjects, kind)
    }


async def applied(db: Database, versions: dict[tuple[str, str], int], within: float) -> bool:
    """Whether, within `within` seconds, each (projection, aggregate) has applied at least its version in `versions`:
    looked up every POLL_SECONDS in the projections' tracking rows, whichever replica writes them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while versions:
        async with db.read() as conn:
            rows = await conn.execute(
                select(ProjectionCursor.projection, ProjectionCursor.aggregate_id, ProjectionCursor.version).where(
                    ProjectionCursor.projection.in_({name for name, _ in versions}),
                    ProjectionCursor.aggregate_id.in_({aggregate_id for _, aggregate_id in versions}),
                )
            )
            reached = {(row.projection, row.aggregate_id): row.version for row in rows}
        versions = {key: version for key, version in versions.items() if reached.get(key, 0) < version}
        left = deadline - loop.time()
        if versions and left <= 0:
            return False
        if versions:
            await asyncio.sleep(min(POLL_SECONDS, left))
    return True
