"""Test helpers: read a stream, publish synthetic events, wait for a condition, run a service as a process."""

from __future__ import annotations

import asyncio
import atexit
import csv
import functools
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import Table, select

from backbone.auth import Role
from backbone.database import Database
from backbone.natsserver import free_port
from backbone.tokens import Issuer, SigningKeys, generate
from contracts import CloudEvent, Event, encode
from contracts.campaigns import CampaignCreated
from contracts.catalogue import CONTEXT_STREAMS
from contracts.cloudevents import CONTENT_TYPE, dataschema
from contracts.registry import ChildPairingEligibilityChanged, ChildPurposesChanged, ChildRegistered
from contracts.volunteers import VolunteerEligibilityChanged, VolunteerRegistered

EVERY_PURPOSE = ("aid", "home_visits", "pairing", "wishes")  # a child of 14 or over, or a guardian's full consent


@dataclass(frozen=True)
class Keys:
    """The test session's signing key (the registry's, via TOKEN_SIGNING_KEYS) and its JWKS (every other service's,
    via JWKS_FILE), made once per session in a directory removed at exit."""

    key_file: Path
    jwks_file: Path
    issuer: Issuer

    def settings(self) -> dict[str, Any]:
        """Settings for a service under test, in process."""
        return {"token_signing_keys": str(self.key_file), "jwks_file": self.jwks_file}

    def env(self) -> dict[str, str]:
        """The same for a service run as a process."""
        return {"TOKEN_SIGNING_KEYS": str(self.key_file), "JWKS_FILE": str(self.jwks_file)}


@functools.cache
def keys() -> Keys:
    directory = Path(tempfile.mkdtemp(prefix="handinhand-test-keys-"))
    atexit.register(shutil.rmtree, directory, True)
    generate(directory / "signing-key.pem")
    signing = SigningKeys.from_files([directory / "signing-key.pem"])
    (directory / "jwks.json").write_text(json.dumps(signing.jwks()))
    return Keys(directory / "signing-key.pem", directory / "jwks.json", Issuer(signing))


def token(role: Role, counties: Iterable[str] = (), sub: str | None = None) -> str:
    """An access token of the test session's key, an hour long."""
    return keys().issuer.mint(sub=sub or role, role=role, counties=list(counties), ttl=timedelta(hours=1))


def auth(role: Role, counties: Iterable[str] = ()) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, counties)}"}


def child_registration(**overrides: Any) -> dict[str, Any]:
    """A child's registration as a coordinator sends it (`POST /children`): a girl of 2016 in Xing'an, medium risk,
    with her grandparents; `overrides` change or add fields."""
    return {
        "name": "莫小兰",
        "birth_date": "2016-05-20",
        "gender": "female",
        "category": "de_facto_unsupported",
        "county_code": "450325",
        "township": "湘漓镇",
        "village": "双河村",
        "risk_level": "medium",
        "guardianship": "grandparents",
        "guardian_name": "韦大山",
        "guardian_phone": "13907730001",
    } | overrides


async def read_stream(js: JetStreamContext, stream: str, subject: str = ">") -> list[Msg]:
    """Every message of a stream, in order, read by an ephemeral consumer that acks nothing."""
    info = await js.stream_info(stream)
    expected = info.state.messages
    subscription = await js.pull_subscribe(
        subject,
        stream=stream,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=5),
    )
    found: list[Msg] = []
    try:
        while len(found) < expected:
            try:
                found += await subscription.fetch(min(1000, expected - len(found)), timeout=2)
            except TimeoutError:
                break
    finally:
        await subscription.unsubscribe()
    return found


def child_event(
    aggregate_id: str, version: int, *, county: str = "450325", risk: str = "high", time: datetime | None = None
) -> CloudEvent:
    """A well-formed wire message for version `version` of a child aggregate (test projections ignore types)."""
    data = ChildRegistered(
        child_id=uuid.UUID(aggregate_id), county_code=county, category="orphan", risk_level=risk, age_band="9-11"
    ).model_dump(mode="json")
    return CloudEvent(
        id=str(uuid.uuid4()),
        source="/tests",
        type=ChildRegistered.type_name,
        subject=aggregate_id,
        time=time or datetime(2023, 1, 10, 9, 0, tzinfo=UTC),
        dataschema=dataschema(ChildRegistered.type_name),
        data=data,
        sequence=version,
        correlationid=str(uuid.uuid4()),
    )


async def publish(
    js: JetStreamContext,
    envelopes: Iterable[CloudEvent],
    subject: str = "registry.child.registered",
    stream: str = "REGISTRY",
) -> None:
    pending = [
        await js.publish_async(
            subject, encode(e), headers={"Nats-Msg-Id": e.id, "Content-Type": CONTENT_TYPE}, stream=stream
        )
        for e in envelopes
    ]
    await asyncio.gather(*pending)


async def wait_until(check: Callable[[], Awaitable[bool]], within: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {within} s waiting for {what}")


async def rows(db: Database, table: Table, *order: Any) -> list[tuple[Any, ...]]:
    async with db.read() as conn:
        result = await conn.execute(select(table).order_by(*(order or table.primary_key.columns)))
        return [tuple(row) for row in result]


class ServiceProcess:
    """`python -m services.<name> serve` as a real process, on a free port; it verifies tokens with the test session's
    key, from its JWKS file or, given `jwks_url`, from there (the registry's, as in production)."""

    def __init__(
        self,
        name: str,
        *,
        nats_url: str,
        database_url: str,
        data_dir: Path,
        jwks_url: str | None = None,
        port: int | None = None,
        **env: str,
    ) -> None:
        self.name, self.port = name, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / f"{name}-{self.port}.log"
        self.env = {
            **os.environ,
            "NATS_URL": nats_url,
            "DATABASE_URL": database_url,
            "DATA_DIR": str(data_dir),
            "PORT": str(self.port),
            "LOG_FORMAT": "json",
            **keys().env(),
            **env,
        }
        if jwks_url is not None:
            self.env |= {"JWKS_URL": jwks_url}
            del self.env["JWKS_FILE"]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> ServiceProcess:  # a bound only: a loaded machine starts slowly
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.name}", "serve"], env=self.env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 10.0) -> float:
        """SIGTERM and wait; returns the seconds it took to exit."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout)
        return time.monotonic() - started


def to_csv(header: Iterable[str], rows: Iterable[Iterable[str]], encoding: str = "utf-8") -> bytes:
    """A CSV file as Excel writes one."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


class RegistryEvents:
    """Publishes registry events on the real REGISTRY stream, as the registry would (envelopes, per-aggregate
    sequence), so a service's consumers can be driven without the registry running; `emit` takes any context's
    events, each to its own stream."""

    def __init__(self, js: JetStreamContext, county: str = "450325") -> None:
        self.js, self.county = js, county
        self.versions: dict[str, int] = {}

    async def emit(self, *events: Event) -> None:
        envelopes = []
        for event in events:
            aggregate = event.aggregate_id()
            self.versions[aggregate] = self.versions.get(aggregate, 0) + 1
            envelopes.append(
                CloudEvent(
                    id=str(uuid.uuid4()),
                    source="/registry",
                    type=event.type_name,
                    subject=aggregate,
                    time=datetime.now(UTC),
                    dataschema=dataschema(event.type_name),
                    data=event.model_dump(mode="json"),
                    sequence=self.versions[aggregate],
                    correlationid=str(uuid.uuid4()),
                )
            )
        for envelope, event in zip(envelopes, events, strict=True):
            await publish(self.js, [envelope], subject=event.subject(), stream=CONTEXT_STREAMS[event.context()])

    async def child(
        self,
        risk: str = "medium",
        *,
        eligible: bool = True,
        county: str | None = None,
        purposes: Iterable[str] = EVERY_PURPOSE,
        **fields: Any,
    ) -> uuid.UUID:
        """A child as the registry announces it; `purposes` are what its data may be processed for (every one
        unless said otherwise; none at all sends no purposes event, as the registry for a child under 14 without
        consent)."""
        child_id = uuid.uuid4()
        registered = ChildRegistered(
            **{"category": "left_behind", "age_band": "9-11"} | fields,
            child_id=child_id,
            county_code=county or self.county,
            risk_level=risk,
        )
        events: list[Event] = [registered]
        if allowed := sorted(set(purposes)):
            events.append(ChildPurposesChanged(child_id=child_id, allowed=allowed))
        # Eligibility last: a test that waits for an eligible candidate knows its purposes are in the view too.
        await self.emit(*events, ChildPairingEligibilityChanged(child_id=child_id, eligible=eligible))
        return child_id

    async def volunteer(
        self,
        kind: str = "caring_parent",
        *,
        capacity: int = 1,
        eligible: bool = True,
        county: str | None = None,
        **fields: Any,
    ) -> uuid.UUID:
        volunteer_id = uuid.uuid4()
        registered = VolunteerRegistered(
            volunteer_id=volunteer_id, kind=kind, county_code=county or self.county, capacity=capacity, **fields
        )
        await self.emit(registered, volunteer_eligibility(volunteer_id, eligible))
        return volunteer_id


def campaign(campaign_id: str, *counties: str) -> CampaignCreated:
    """A registry campaign covering these counties (the seed's winter campaign)."""
    from datetime import date

    return CampaignCreated(
        campaign_id=uuid.UUID(campaign_id),
        name="情暖新春 共护未来",
        starts_on=date(2023, 1, 10),
        ends_on=date(2023, 2, 15),
        counties=list(counties),
    )


def volunteer_eligibility(volunteer_id: uuid.UUID, eligible: bool) -> VolunteerEligibilityChanged:
    reasons = [] if eligible else ["training: none current"]
    return VolunteerEligibilityChanged(
        volunteer_id=volunteer_id, eligible=eligible, reasons=reasons, as_of=datetime.now(UTC)
    )


def county_of(
    children: int, volunteers: int, *, county: str = "450325", seed: int = 7
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Candidate rows of a generated county, as the candidates projection would leave them: 20 townships of 6
    villages, mixed risk, a few special-case families, a sixth of volunteers social workers or child directors."""
    import random

    rng = random.Random(seed)
    needs = ["tutoring", "psychological", "companionship", "material", "safety", "family_calls"]
    townships = [f"{t:016x}" for t in range(20)]

    def place() -> dict[str, str]:
        township = rng.randrange(20)
        return {"township_key": townships[township], "village_key": f"{township * 10 + rng.randrange(6) + 100:016x}"}

    child_rows = [
        {
            "child_id": uuid.UUID(int=rng.getrandbits(128)),
            "county_code": county,
            "risk_level": rng.choice(["high", "medium", "medium", "low", "low", "low"]),
            "category": "left_behind",
            "age_band": "9-11",
            "needs": rng.sample(needs, rng.randrange(4)),
            "languages": rng.choice([["zh"], ["zh", "zhuang"], ["zhuang"], ["yao", "zh"]]),
            "flags": ["drug_involved_family"] if rng.random() < 0.05 else [],
            "eligible": True,
            "active": True,
            "registered_at": datetime(2023, 1, 10, 9, 0, tzinfo=UTC),
            **place(),
        }
        for _ in range(children)
    ]
    volunteer_rows = [
        {
            "volunteer_id": uuid.UUID(int=rng.getrandbits(128)),
            "county_code": county,
            "kind": rng.choice(["caring_parent"] * 4 + ["cadre", "social_worker", "child_director"]),
            "skills": rng.sample(needs, rng.randrange(4)),
            "languages": rng.choice([["zh"], ["zh", "zhuang"], ["yao", "zh"]]),
            "capacity": rng.choice([1, 1, 2, 3]),
            "eligible": True,
            **place(),
        }
        for _ in range(volunteers)
    ]
    return child_rows, volunteer_rows


async def candidates(
    matching: httpx.AsyncClient, kind: str, count: int, *, eligible: bool = True, county: str = "450325"
) -> None:
    """Wait until matching's candidates view holds `count` children or volunteers of the county with this
    eligibility (it hears of them through the bus)."""
    headers = auth("coordinator", [county])

    async def arrived() -> bool:
        page = await matching.get(
            f"/views/candidates/{kind}",
            params={"county_code": county, "eligible": eligible, "limit": 1},
            headers=headers,
        )
        return page.status_code == 200 and page.json()["total"] >= count

    await wait_until(arrived, what=f"{count} candidate {kind} (eligible={eligible}) in {county}")


async def matching_run(matching: httpx.AsyncClient, county: str = "450325", **body: object) -> dict[str, Any]:
    """A matching run over the county, which must succeed (201)."""
    answer = await matching.post(
        "/matching-runs", json={"county_code": county, **body}, headers=auth("coordinator", [county])
    )
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def rebuild_cli(
    projection: str, *, database_url: str, nats_url: str, data_dir: Path
) -> subprocess.CompletedProcess[str]:
    """`python -m services.matching rebuild <projection>` as an operator runs it, beside a running service."""
    env = {**os.environ, "DATABASE_URL": database_url, "NATS_URL": nats_url, "DATA_DIR": str(data_dir)}
    command = [sys.executable, "-m", "services.matching", "rebuild", projection]
    return await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def assert_nothing_told(
    failures: Iterable[BaseException], logs: list[dict[str, Any]], secrets: Iterable[str], message_id: str
) -> None:
    """No failure (its text, its whole traceback as a log line with exc_info would show it, anything chained to it)
    and no log line carries any of `secrets`; the log lines name at most the message."""
    secrets = tuple(secrets)
    for failed in failures:
        told = str(failed) + repr(failed) + "".join(traceback.format_exception(failed))
        assert not [secret for secret in secrets if secret in told], told
        assert failed.__cause__ is None
        assert failed.__context__ is None
    assert logs, "the channel says what happened"
    assert not [secret for secret in secrets if secret in str(logs)], logs
    assert {entry.get("message_id") for entry in logs} <= {message_id, None}
