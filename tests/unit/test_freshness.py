"""Reading one's own writes, without I/O: the token a command's answer carries (what it holds, what it refuses), which
projections follow which of its writes, and what a request records (committed transactions only)."""

from __future__ import annotations

import asyncio
import contextvars
import uuid

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from backbone import context, freshness
from backbone.freshness import MAX_ENTRIES, WRITTEN, Writes, follows, parse
from backbone.store import Append
from contracts.matching import VisitPolicyChanged
from contracts.registry import ChildPurposesChanged

CHILD = "8c0e2a4e-55b1-4c1f-9a53-1f0d6c2b7e10"
CONTACT = "1f2a9d7c-0b3e-4e8a-a6f5-9c8d7e6f5a4b"


def test_a_token_keeps_the_last_version_of_each_aggregate_in_one_order_and_reads_back() -> None:
    writes = Writes()
    writes.add("matching.child", CHILD, 4)
    writes.add("matching.contact", CONTACT, 1)
    writes.add("matching.child", CHILD, 5)
    writes.add("matching.child", CHILD, 3)  # an older version of the same aggregate adds nothing
    token = writes.token()
    assert token == f"matching.child:{CHILD}:5,matching.contact:{CONTACT}:1"
    assert parse(token).versions == writes.versions
    assert parse("matching.county:county-450325:2").versions == {("matching.county", "county-450325"): 2}


def test_a_request_that_writes_too_many_aggregates_or_an_id_no_token_carries_gets_no_token() -> None:
    bulk = Writes()
    for _ in range(MAX_ENTRIES):
        bulk.add("registry.child", str(uuid.uuid4()), 3)
    assert bulk.token() is not None
    bulk.add("registry.child", str(uuid.uuid4()), 3)  # one more than a token names
    assert (bulk.token(), bulk.versions) == (None, {})
    bulk.add("registry.child", CHILD, 1)
    assert bulk.token() is None  # and stays without one
    for kind, aggregate_id in (("matching.child", "Not An Id"), ("Matching.Child", CHILD)):
        odd = Writes()
        odd.add(kind, aggregate_id, 1)
        assert odd.token() is None
    merged = Writes()
    merged.add("matching.child", CHILD, 1)
    merged.merge(bulk)
    assert merged.token() is None
    assert Writes().token() is None  # nothing written: nothing to wait for


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("", id="empty"),
        pytest.param(",", id="no-entry"),
        pytest.param(f"matching.child:{CHILD}:5,", id="an-empty-entry"),
        pytest.param(f"matching.child:{CHILD}", id="no-version"),
        pytest.param(f"matching.child:{CHILD}:0", id="version-0"),
        pytest.param(f"matching.child:{CHILD}:05", id="leading-zero"),
        pytest.param(f"matching.child:{CHILD}:-1", id="negative"),
        pytest.param(f"matching.child:{CHILD}:2147483648", id="beyond-any-version-the-log-holds"),
        pytest.param(f"matching.child:{CHILD}:５", id="full-width-digit"),
        pytest.param(f"matching:{CHILD}:5", id="no-aggregate"),
        pytest.param(f"matching.child.visit_due:{CHILD}:5", id="an-event-not-an-aggregate"),
        pytest.param(f"Matching.child:{CHILD}:5", id="capital-kind"),
        pytest.param(f"matching.child:{CHILD.upper()}:5", id="capital-id"),
        pytest.param("registry.child:韦小芳:1", id="a-name"),
        pytest.param("registry.child:13907730001 :1", id="a-space"),
        pytest.param(f"matching.child:{CHILD}:5;matching.contact:{CONTACT}:1", id="another-separator"),
        pytest.param(
            ",".join(f"matching.child:{uuid.UUID(int=i)}:1" for i in range(MAX_ENTRIES + 1)), id="too-many-entries"
        ),
        pytest.param(f"matching.child:{'a' * 5000}:1", id="too-long"),
    ],
)
def test_anything_but_a_token_of_ours_is_refused_in_words_that_repeat_none_of_it(bad: str) -> None:
    with pytest.raises(ValueError, match="token") as refused:
        parse(bad)
    said = str(refused.value)
    assert not any(part and part in said for part in bad.replace(",", ":").split(":") if len(part) > 2)


@pytest.mark.parametrize(
    ("subjects", "kind", "followed"),
    [
        (["matching.child.>", "matching.contact.>"], "matching.child", True),
        (["matching.child.>", "matching.contact.>"], "matching.contact", True),
        (["matching.child.>", "matching.contact.>"], "matching.pairing", False),
        (["matching.child.>"], "registry.child", False),
        (["registry.*.>"], "registry.volunteer", True),
        (["*.child.>"], "registry.child", True),
        ([">"], "matching.wish", True),
        (["registry.child.*"], "registry.child", True),  # one token after it: every event's name
        (["registry.child"], "registry.child", False),  # no event's subject is just the aggregate's
        (["registry.child.registered"], "registry.child", False),  # one event: not the whole aggregate
        (["registry.child.*.x"], "registry.child", False),
        (["registry.>"], "registry.child", True),
        ([], "registry.child", False),
    ],
)
def test_a_projection_follows_the_aggregates_its_nats_subjects_cover(
    subjects: list[str], kind: str, followed: bool
) -> None:
    assert follows(subjects, kind) is followed


class RolledBack(Exception):
    """What the test app raises in a transaction it means to roll back."""


def purposes(child: str, version: int, causes: context.Causes | None = None) -> Append:
    return Append(child, version, [ChildPurposesChanged(child_id=uuid.UUID(child), allowed=[])], causes=causes)


def recording_app(*, fail: bool) -> freshness.Recorder:
    """An app that appends as a service does: a transaction rolled back (a first try), then one that commits; one
    written for it by a group commit, in a context of its own, beside another request's item; then, if `fail`, it
    refuses the request."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            with freshness.transaction():
                freshness.appended([purposes(CHILD, 4)])
                raise RolledBack
        except RolledBack:
            pass
        with freshness.transaction():
            policy = VisitPolicyChanged(county_code="450325", high_days=7, medium_days=14, low_days=30)
            freshness.appended([Append(policy.aggregate_id(), 1, [policy, policy])])
        mine, someone_elses = context.current(), context.of(None, None, None)

        async def grouped() -> None:
            with freshness.transaction():
                freshness.appended([purposes(CONTACT, 0, mine), purposes(str(uuid.uuid4()), 0, someone_elses)])
                freshness.appended([purposes(str(uuid.uuid4()), 0)])  # the group's own: nobody's request

        await asyncio.create_task(grouped(), context=contextvars.Context())
        status = 409 if fail else 201
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"done"})

    return freshness.Recorder(app)


async def test_an_answer_carries_what_its_committed_transactions_appended_and_a_refusal_carries_nothing() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=recording_app(fail=False)), base_url="http://t"
    ) as c:
        answer = await c.post("/")
    # Not the child of the transaction rolled back, nor the other request's write or the group's own.
    assert answer.headers[WRITTEN] == f"matching.county:county-450325:3,registry.child:{CONTACT}:1"

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=recording_app(fail=True)), base_url="http://t") as c:
        refused = await c.post("/")
    assert WRITTEN not in refused.headers
