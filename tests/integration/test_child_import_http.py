"""`POST /children/import`: 10,000 rows, 37 bad ones reported by line, the rest registered once, retries too."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import httpx
from nats.aio.client import Client as NATS

from backbone.clock import SettableClock
from tests.helpers import auth, read_stream, to_csv, wait_until
from tests.unit.test_child_import import BAD_KINDS, COUNTIES, FIELDS, LABELS, chinese, generated

CAMPAIGN_DAY = datetime(2023, 1, 10, 9, tzinfo=UTC)  # the generated children are all minors on this day


def ten_thousand_with_37_bad() -> tuple[bytes, set[int], list[dict[str, str]]]:
    rows = [generated(i) for i in range(10_000)]
    bad = sorted(random.Random(37).sample(range(1, 10_000), 37))
    kinds = list(BAD_KINDS)
    for n, i in enumerate(bad):
        BAD_KINDS[kinds[n % len(kinds)]][0](rows[i])
    cells = ([*(row[f] for f in FIELDS), *([row["extra"]] if "extra" in row else [])] for row in rows)
    return to_csv(list(LABELS.values()), cells, "gb18030"), {i + 2 for i in bad}, rows


async def test_ten_thousand_rows_import_once_with_the_bad_ones_reported_and_nothing_personal_on_the_bus(
    registry: httpx.AsyncClient, clock: SettableClock, nc: NATS
) -> None:
    clock.set(CAMPAIGN_DAY)
    raw, bad_lines, rows = ten_thousand_with_37_bad()
    coordinator = auth("coordinator", COUNTIES) | {"Content-Type": "text/csv"}
    started = time.perf_counter()
    answer = await registry.post("/children/import", content=raw, headers=coordinator, timeout=120)
    elapsed = time.perf_counter() - started
    assert answer.status_code == 200, answer.text[:500]
    result = answer.json()
    assert (result["imported"], result["already_imported"]) == (9_963, 0), elapsed
    assert {r["line"] for r in result["rejected"]} == bad_lines
    assert all(r["errors"] for r in result["rejected"])

    again = (await registry.post("/children/import", content=raw, headers=coordinator, timeout=120)).json()
    assert (again["imported"], again["already_imported"], len(again["rejected"])) == (0, 9_963, 37)

    admin = auth("admin")
    counts = [
        (await registry.get("/children", params={"county_code": c, "limit": 1}, headers=admin)).json()["total"]
        for c in COUNTIES
    ]
    assert sum(counts) == 9_963

    async def all_published() -> bool:
        return bool((await nc.jetstream().stream_info("REGISTRY")).state.messages >= 9_963)

    await wait_until(all_published, within=60, what="the imported children on the bus")
    wire = b"".join(m.data for m in await read_stream(nc.jetstream(), "REGISTRY"))
    secrets = {row[f] for row in rows[:2000] for f in ("name", "id_number", "guardian_phone", "guardian_name")}
    assert not [secret for secret in secrets if secret and secret.encode() in wire]


async def test_all_or_nothing_imports_nothing_when_a_row_is_bad(
    registry: httpx.AsyncClient, clock: SettableClock
) -> None:
    clock.set(CAMPAIGN_DAY)
    good, bad = generated(1), generated(2) | {"county_code": "450399"}
    raw = chinese(good, bad)
    coordinator = auth("coordinator", COUNTIES) | {"Content-Type": "text/csv"}
    refused = await registry.post("/children/import", params={"all_or_nothing": True}, content=raw, headers=coordinator)
    assert refused.json() == {"imported": 0, "already_imported": 0, "rejected": [refused.json()["rejected"][0]]}
    assert refused.json()["rejected"][0]["line"] == 3
    partial = await registry.post("/children/import", content=raw, headers=coordinator)
    assert partial.json()["imported"] == 1


async def test_rows_outside_the_coordinators_counties_and_broken_files_are_refused(
    registry: httpx.AsyncClient, clock: SettableClock
) -> None:
    clock.set(CAMPAIGN_DAY)
    raw = chinese(generated(0), generated(1))  # counties 450325 and 450721
    only_xingan = auth("coordinator", ["450325"]) | {"Content-Type": "text/csv"}
    answer = (await registry.post("/children/import", content=raw, headers=only_xingan)).json()
    assert answer["imported"] == 1
    assert answer["rejected"] == [{"line": 3, "errors": ["county_code: not scoped to county 450721"]}]
    broken = await registry.post("/children/import", content=b"\xff\xfe\x00garbage", headers=only_xingan)
    assert (broken.status_code, broken.json()["error"]["code"]) == (422, "import_refused")
    donor = await registry.post("/children/import", content=raw, headers=auth("donor"))
    assert donor.status_code == 403


async def test_the_same_child_twice_in_one_file_without_an_id_number_is_one_child(
    registry: httpx.AsyncClient, clock: SettableClock
) -> None:
    clock.set(CAMPAIGN_DAY)
    row = generated(5) | {"id_number": ""}
    answer = await registry.post(
        "/children/import", content=chinese(row, row), headers=auth("admin") | {"Content-Type": "text/csv"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["imported"] == 1
    assert answer.json()["rejected"] == [{"line": 3, "errors": ["the same child as on line 2"]}]
