"""Every message on every stream, after a full registration, changes, an import, a matching run and a contact with a
note, carries none of the personal data."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import nats
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from backbone.clock import local_date
from tests.e2e.conftest import System
from tests.e2e.test_walking_skeleton import CHILD, XINGAN
from tests.helpers import auth, candidates, read_stream, wait_until
from tests.unit.test_child_import import COUNTIES, generated, id_number
from tests.unit.test_child_import import chinese as children_csv
from tests.unit.test_volunteer_import import chinese as volunteers_csv
from tests.unit.test_volunteer_import import volunteer as volunteer_row

pytestmark = pytest.mark.e2e
LINGSHAN = "450721"
STREAMS = ("REGISTRY", "MATCHING", "NOTIFICATIONS")
IMPORTED = 300  # the size of an import is covered by the 10,000-row test; this one is about what goes out
STEPS = ("application", "interview", "record_check", "references")


def child(n: int, today: date) -> dict[str, Any]:
    """A child registered by hand, with everything personal the form takes: an ID number, a guardian and a phone."""
    county = (XINGAN, LINGSHAN)[n % 2]
    born = today - timedelta(days=365 * 8 + 37 * n)
    return CHILD | {
        "name": f"蓝手录{'甲乙丙丁戊己'[n]}",
        "id_number": id_number(county, born, 300 + 2 * n),
        "birth_date": str(born),
        "county_code": county,
        "township": f"秘密{n}镇",
        "village": f"秘密{n}村",
        "guardian_name": f"蓝监护{'甲乙丙丁戊己'[n]}",
        "guardian_phone": f"1390773{4100 + n}",
        "risk_level": "medium",  # until a coordinator raises it, with a reason
    }


def volunteer(n: int) -> dict[str, Any]:
    return {
        "name": f"梁志愿{'甲乙丙丁'[n]}",
        "phone": f"1397773{5200 + n}",
        "kind": ("social_worker", "child_director", "caring_parent", "cadre")[n],
        "county_code": XINGAN,
        "township": f"秘密{n}镇",
        "village": f"秘密{n}村",
        "capacity": 2,
        "skills": ["tutoring", "safety"],
        "availability": "周末",
    }


def imported_children(today: date) -> list[dict[str, str]]:
    """Generated rows, born so that every child is between 3 and 9 today (none may be paired without consent)."""
    rows = []
    for i in range(IMPORTED):
        row, born = generated(i), today - timedelta(days=365 * 3 + 7 * i)
        serial = 500 + 2 * (i % 100) + i % 2  # odd for a boy, as generated() has it
        rows.append(row | {"birth_date": str(born), "id_number": id_number(row["county_code"], born, serial)})
    return rows


CHILD_FIELDS = ("name", "id_number", "birth_date", "township", "village", "guardian_name", "guardian_phone")
VOLUNTEER_FIELDS = ("name", "phone", "township", "village")


def secrets(children: list[dict[str, Any]], volunteers: list[dict[str, Any]], notes: list[str]) -> set[str]:
    """Every personal value registered: names, ID numbers, birth dates, places, guardians, phones (and what a change,
    a consent or a contact's note said of someone)."""
    found = {str(c[f]) for c in children for f in CHILD_FIELDS if c.get(f)}
    return found | {str(v[f]) for v in volunteers for f in VOLUNTEER_FIELDS if v.get(f)} | set(notes)


def forms(secret: str) -> list[bytes]:
    """As it would sit in a message: UTF-8, or escaped as JSON does unless told otherwise."""
    return [secret.encode(), json.dumps(secret).strip('"').encode()]


async def captured(js: JetStreamContext) -> dict[str, list[Msg]]:
    return {stream: await read_stream(js, stream) for stream in STREAMS}


async def settled(js: JetStreamContext, seen: list[tuple[float, tuple[int, ...]]], notices: int) -> bool:
    """True once every notice is out and no stream has grown for a second (reactions to reactions are done too)."""
    counts = tuple([(await js.stream_info(stream)).state.messages for stream in STREAMS])
    if not seen or seen[-1][1] != counts:
        seen.append((time.monotonic(), counts))
    return counts[-1] >= notices and time.monotonic() - seen[-1][0] >= 1.0


async def test_no_name_id_number_or_phone_crosses_any_stream_during_registration_vetting_matching_and_import(
    system: System,
) -> None:
    today = local_date(datetime.now(UTC))
    coordinator = auth("coordinator", COUNTIES)  # Xing'an, Lingshan and two more
    by_hand = [child(n, today) for n in range(6)]
    volunteers = [volunteer(n) for n in range(4)]
    rows = imported_children(today)
    volunteer_rows = [volunteer_row(name=f"韦导入{n:02d}", phone=f"1387773{6300 + n}") for n in range(20)]
    notes = ["祖母住院无人照看", "蓝同意人甲", "覃新监护人", "13907739999", "孩子说想念在广东打工的妈妈"]
    async with httpx.AsyncClient(base_url=system.url("registry"), timeout=60) as registry:
        for person in by_hand:
            created = await registry.post("/children", json=person, headers=coordinator)
            assert created.status_code == 201, created.text
            path = f"/children/{created.json()['id']}"
            consent = {"given_by": notes[1], "relation": "grandfather", "given_at": str(today), "scope": ["pairing"]}
            assert (await registry.post(f"{path}/consent", json=consent, headers=coordinator)).status_code == 200
            risk = {"risk_level": "high", "risk_reason": notes[0]}
            assert (await registry.patch(path, json=risk, headers=coordinator)).status_code == 200
        guardian = {"guardianship": "relative", "guardian_name": notes[2], "guardian_phone": notes[3]}
        assert (await registry.patch(path, json=guardian, headers=coordinator)).status_code == 200
        for person in volunteers:
            created = await registry.post("/volunteers", json=person, headers=coordinator)
            assert created.status_code == 201, created.text
            await vet(registry, created.json()["id"], today, coordinator)
        csv = coordinator | {"Content-Type": "text/csv"}
        imported = (await registry.post("/children/import", content=children_csv(*rows), headers=csv)).json()
        assert (imported["imported"], imported["rejected"]) == (IMPORTED, [])
        raw = volunteers_csv(*volunteer_rows)
        imported = (await registry.post("/volunteers/import", content=raw, headers=csv)).json()
        assert (imported["imported"], imported["rejected"]) == (20, [])

    async with httpx.AsyncClient(base_url=system.url("matching"), timeout=60) as matching:
        await candidates(matching, "children", 3)  # those by hand, with consent; the imported are all under 14
        await candidates(matching, "volunteers", 4)
        run = await matching.post("/matching-runs", json={"county_code": XINGAN}, headers=coordinator)
        assert run.status_code == 201, run.text
        proposal = run.json()["proposals"][0]
        confirmed = await matching.post(f"/pairings/{proposal['pairing_id']}/confirm", headers=coordinator)
        assert confirmed.status_code == 200, confirmed.text
        call = {
            "kind": "call",
            "in_person": False,
            "occurred_at": datetime.now(UTC).isoformat(),
            "duration_minutes": 20,
        }
        called = await matching.post(
            f"/pairings/{proposal['pairing_id']}/contacts", json=call | {"note": notes[4]}, headers=coordinator
        )
        assert called.status_code == 201, called.text

    client = await nats.connect(system.nats.url)
    try:
        js = client.jetstream()
        seen: list[tuple[float, tuple[int, ...]]] = []
        notices = IMPORTED + len(by_hand)  # one for each child registered
        await wait_until(lambda: settled(js, seen, notices), within=60, what="every stream to stop growing")
        messages = await captured(js)
    finally:
        await client.close()

    types = {json.loads(m.data)["type"].rsplit(".", 1)[0] for found in messages.values() for m in found}
    for expected in (
        "registry.child.registered",
        "registry.child.consent_recorded",
        "registry.child.risk_changed",
        "registry.volunteer.registered",
        "registry.volunteer.screening_recorded",
        "matching.pairing.proposed",
        "matching.pairing.confirmed",
        "matching.contact.recorded",
        "registry.child.guardianship_changed",
        "notifications.notice.recorded",
    ):
        assert expected in types, f"no {expected} captured: the capture is not the whole traffic"
    assert len(messages["NOTIFICATIONS"]) >= notices
    wire = b"".join(m.data + repr(m.headers).encode() for found in messages.values() for m in found)
    everything = secrets(by_hand + rows, volunteers + volunteer_rows, notes)
    assert len(everything) > 2 * IMPORTED
    leaked = sorted(secret for secret in everything if any(form in wire for form in forms(secret)))
    assert not leaked, f"{len(leaked)} personal values on the bus: {leaked[:5]}"


async def vet(registry: httpx.AsyncClient, volunteer_id: str, today: date, headers: dict[str, str]) -> None:
    """Every step passed and a training done, each with its expiry."""
    expires = str(today + timedelta(days=365))
    for step in STEPS:
        screening = {"step": step, "result": "passed", "checked_at": str(today), "expires_at": expires}
        answer = await registry.post(f"/volunteers/{volunteer_id}/screenings", json=screening, headers=headers)
        assert answer.status_code == 200, answer.text
    training = {"course": "儿童保护", "completed_at": str(today), "expires_at": expires}
    answer = await registry.post(f"/volunteers/{volunteer_id}/trainings", json=training, headers=headers)
    assert answer.status_code == 200, answer.text
