"""Rebuilding projections from a million events: the streams are filled once, straight from nats-py (valid
CloudEvents as the relays send them: the subject is the aggregate id, the sequence its version 1, 2, 3…), with the mix
a county's work leaves, then each projection is rebuilt by its service's CLI (`python -m services.<name> rebuild
<projection>`), as an operator runs it, into a fresh database of each kind."""

from __future__ import annotations

import asyncio
import os
import random
import re
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats

from backbone.streams import ensure_streams
from contracts import Event
from contracts.catalogue import CONTEXT_STREAMS
from contracts.cloudevents import CONTENT_TYPE, CloudEvent, dataschema, encode
from contracts.matching import ChildVisitDue, ContactRecorded, PairingConfirmed, PairingProposed
from contracts.registry import (
    ChildNeedsChanged,
    ChildPairingEligibilityChanged,
    ChildPurposesChanged,
    ChildRegistered,
    ChildRiskChanged,
)
from contracts.volunteers import VolunteerEligibilityChanged, VolunteerRegistered
from tests.bench.common import Finished, run_measured
from tests.helpers import EVERY_PURPOSE, keys

COUNTIES = ("450325", "450721", "450521", "450981")
NEEDS = ["tutoring", "psychological", "companionship", "material", "safety", "family_calls"]
RISKS = ("high", "medium", "low")
INTERVAL = {"high": 7, "medium": 30, "low": 90}  # days to the next visit (the default policy's order of size)
IN_FLIGHT = 4000


@dataclass
class Filled:
    events: int = 0
    children: int = 0
    seconds: float = 0.0
    subjects: Counter[str] = field(default_factory=Counter)

    def following(self, *patterns: str) -> int:
        """How many events a projection following these subjects (NATS wildcards `>` at the end) reads."""
        prefixes = [p.removesuffix(">") for p in patterns]
        return sum(n for subject, n in self.subjects.items() if any(subject.startswith(p) for p in prefixes))


class County:
    """A county's history, child by child: what the registry recorded and what matching decided after it."""

    def __init__(self, seed: int = 11) -> None:
        self.rng = random.Random(seed)
        self.clock = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
        self.volunteers: dict[str, list[uuid.UUID]] = {county: [] for county in COUNTIES}

    def new_id(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def key(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def child(self, i: int) -> list[list[Event]]:
        """The aggregates' histories this child brings: each list is one aggregate's events, in version order."""
        rng, county = self.rng, COUNTIES[i % len(COUNTIES)]
        child_id, risk = self.new_id(), rng.choice(RISKS)
        registry: list[Event] = [
            ChildRegistered(
                child_id=child_id,
                county_code=county,
                category=rng.choice(["orphan", "de_facto_unsupported", "left_behind", "in_difficulty"]),
                risk_level=risk,
                age_band=rng.choice(["3-5", "6-8", "9-11", "12-14", "15-17"]),
                needs=rng.sample(NEEDS, rng.randrange(3)),
                languages=rng.choice([["zh"], ["zh", "zhuang"], ["yao", "zh"]]),
                guardianship="grandparents",
                township_key=self.key(),
                village_key=self.key(),
                gender=rng.choice(["female", "male"]),
            ),
            ChildPurposesChanged(child_id=child_id, allowed=list(EVERY_PURPOSE)),
            ChildPairingEligibilityChanged(child_id=child_id, eligible=True),
        ]
        matching: list[Event] = [self._due(child_id, county, risk, "registered")]
        if i % 3 == 0:  # re-assessed
            new = rng.choice([r for r in RISKS if r != risk])
            registry.append(
                ChildRiskChanged(child_id=child_id, county_code=county, previous_risk_level=risk, risk_level=new)
            )
            matching.append(self._due(child_id, county, new, "risk_changed"))
        if i % 5 == 0:
            registry.append(ChildNeedsChanged(child_id=child_id, needs=rng.sample(NEEDS, 2)))
        histories = [registry, matching]
        if i % 5 == 0:  # a volunteer for every five children (5 and the 4 counties: in each county)
            new_volunteer = self.new_id()
            self.volunteers[county].append(new_volunteer)
            histories.append(
                [
                    VolunteerRegistered(
                        volunteer_id=new_volunteer,
                        kind=rng.choice(["caring_parent", "caring_parent", "cadre", "social_worker"]),
                        county_code=county,
                        skills=rng.sample(NEEDS, 2),
                        languages=["zh"],
                        capacity=rng.choice([1, 2, 3]),
                        township_key=self.key(),
                        village_key=self.key(),
                    ),
                    VolunteerEligibilityChanged(
                        volunteer_id=new_volunteer, eligible=True, reasons=[], as_of=self.clock
                    ),
                ]
            )
        volunteer_id: uuid.UUID | None = None
        pairing_id: uuid.UUID | None = None
        if i % 4 == 1 and self.volunteers[county]:  # a quarter of the children paired, once there are volunteers
            paired_with, pairing = rng.choice(self.volunteers[county]), self.new_id()
            volunteer_id, pairing_id = paired_with, pairing
            histories.append(
                [
                    PairingProposed(
                        pairing_id=pairing,
                        run_id=self.new_id(),
                        child_id=child_id,
                        volunteer_id=paired_with,
                        county_code=county,
                        risk_level=risk,
                        score=7,
                        score_parts={"same_township": 3, "needs_met": 4},
                        expires_at=self.clock + timedelta(days=7),
                    ),
                    PairingConfirmed(
                        pairing_id=pairing, child_id=child_id, volunteer_id=paired_with, county_code=county
                    ),
                ]
            )
        histories.append(  # one contact a child
            [
                ContactRecorded(
                    contact_id=self.new_id(),
                    child_id=child_id,
                    county_code=county,
                    pairing_id=pairing_id,
                    volunteer_id=volunteer_id,
                    visitor="volunteer" if volunteer_id else "child_director",
                    kind=rng.choice(["visit", "call", "tutoring"]),
                    in_person=rng.random() < 0.5,
                    occurred_at=self.clock,
                    duration_minutes=45,
                )
            ]
        )
        self.clock += timedelta(seconds=37)
        return histories

    def _due(self, child_id: uuid.UUID, county: str, risk: str, because: str) -> ChildVisitDue:
        return ChildVisitDue(
            child_id=child_id,
            county_code=county,
            risk_level=risk,
            due_at=self.clock + timedelta(days=INTERVAL[risk]),
            because=because,
        )

    def messages(self, total: int) -> Iterator[tuple[str, str, str, bytes]]:
        """(subject, stream, message id, payload) until at least `total` events, whole children only."""
        sent, i = 0, 0
        while sent < total:
            for history in self.child(i):
                for version, event in enumerate(history, start=1):
                    envelope = CloudEvent(
                        id=str(self.new_id()),
                        source=f"/{event.context()}",
                        type=event.type_name,
                        subject=event.aggregate_id(),
                        time=self.clock,
                        dataschema=dataschema(event.type_name),
                        data=event.model_dump(mode="json"),
                        sequence=version,
                        correlationid=str(self.new_id()),
                    )
                    yield event.subject(), CONTEXT_STREAMS[event.context()], envelope.id, encode(envelope)
                    sent += 1
            i += 1


async def fill(nats_url: str, total: int, progress: bool = True) -> Filled:
    """Publish `total` events (a few more: whole children) into REGISTRY and MATCHING, many in flight."""
    import time

    from tests.bench.report import say

    client = await nats.connect(nats_url)
    filled = Filled()
    failures: list[BaseException] = []

    def check(future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            failures.append(asyncio.CancelledError())
        elif (error := future.exception()) is not None:
            failures.append(error)

    try:
        js = client.jetstream(publish_async_max_pending=IN_FLIGHT)
        await ensure_streams(js)
        started = time.monotonic()
        shown = started
        county = County()
        for subject, stream, message_id, payload in county.messages(total):
            headers = {"Nats-Msg-Id": message_id, "Content-Type": CONTENT_TYPE}
            future = await js.publish_async(subject, payload, headers=headers, stream=stream)
            future.add_done_callback(check)
            filled.subjects[subject] += 1
            filled.events += 1
            if progress and time.monotonic() - shown > 10:
                shown = time.monotonic()
                say(f"  published {filled.events:,} of {total:,} events")
        await js.publish_async_completed()
        filled.seconds = time.monotonic() - started
        filled.children = sum(n for s, n in filled.subjects.items() if s == ChildRegistered.subject())
    finally:
        await client.close()
    if failures:
        raise RuntimeError(f"{len(failures)} publishes failed, e.g. {failures[0]!r}")
    return filled


async def drop_consumers(nats_url: str) -> None:
    """The durable consumers a rebuild leaves for the live service: the next rebuild starts from a clean stream."""
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        for stream in ("REGISTRY", "MATCHING"):
            for consumer in await js.consumers_info(stream):
                await js.delete_consumer(stream, consumer.name)
    finally:
        await client.close()


def environment(database_url: str, nats_url: str, folder: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "NATS_URL": nats_url,
        "DATA_DIR": str(folder),
        "LOG_FORMAT": "json",
        **keys().env(),
    }


def projections(service: str, env: dict[str, str], folder: Path) -> list[str]:
    """The projections the service's CLI can rebuild (`rebuild --list`)."""
    log = folder / f"{service}-rebuild-list.log"
    done = run_measured([sys.executable, "-m", f"services.{service}", "rebuild", "--list"], env, log, 120)
    found = re.findall(r"projections: (.*)", log.read_text())
    if done.returncode != 0 or not found or found[-1].strip() == "none":
        return []
    return [name.strip() for name in found[-1].split(",") if name.strip()]


async def rows(url: str, tables: dict[str, int]) -> dict[str, int]:
    """How many rows each of these tables of a rebuilt database holds (those it has)."""
    from sqlalchemy import inspect, text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            present = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
            return {
                name: int((await conn.execute(text(f"SELECT count(*) FROM {name}"))).scalar_one())  # noqa: S608
                for name in tables
                if name in present
            }
    finally:
        await engine.dispose()


@dataclass
class Rebuilt:
    events: int | None  # as the CLI reports it
    run: Finished


def rebuild(service: str, projection: str, env: dict[str, str], log: Path, timeout: float) -> Rebuilt:
    done = run_measured([sys.executable, "-m", f"services.{service}", "rebuild", projection], env, log, timeout)
    said = re.findall(r"rebuilt [\w-]+: (\d+) events", log.read_text(errors="replace"))
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-1500:]
        raise RuntimeError(f"rebuild {projection} exited with {done.returncode}: {tail}")
    return Rebuilt(int(said[-1]) if said else None, done)
