"""The HTTP edge every service shares: auth, county scope, the error shape, body limits, health and metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from backbone.clock import SettableClock, local_date
from backbone.natsserver import NatsServer
from backbone.settings import Settings
from backbone.tokens import Issuer, SigningKeys
from services.matching.app import create_app as create_matching_app
from services.registry.app import create_app as create_registry_app
from tests.helpers import auth, child_registration, keys, wait_until

XINGAN, LINGSHAN = "450325", "450721"
CHILD = child_registration(county_code=XINGAN)


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/ready")).status_code == 200


def assert_error(answer: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert error["message"]
    return error


async def count(client: httpx.AsyncClient, county: str = XINGAN) -> int:
    answer = await client.get("/children", params={"county_code": county}, headers=auth("admin"))
    return int(answer.json()["total"])


async def test_a_coordinator_registers_and_reads_a_child_of_their_county(registry: httpx.AsyncClient) -> None:
    with_id = CHILD | {"id_number": "450325201605201234"}
    created = await registry.post("/children", json=with_id, headers=auth("coordinator", [XINGAN]))
    assert created.status_code == 201, created.text
    child = created.json()
    assert child["id_number"] == "450325201605201234"
    assert child["guardian_phone"] == CHILD["guardian_phone"]
    assert child["age_band"] in {"6-8", "9-11"}
    assert child["languages"] == ["zh"]
    read = await registry.get(f"/children/{child['id']}", headers=auth("coordinator", [XINGAN]))
    assert read.status_code == 200
    assert read.json()["name"] == CHILD["name"]
    metrics = (await registry.get("/metrics")).text
    assert 'events_appended_total{service="registry"}' in metrics
    assert 'http_requests_total{method="POST",route="/children",service="registry",status="201"}' in metrics


async def test_no_token_a_forged_token_or_an_expired_one_is_401(registry: httpx.AsyncClient) -> None:
    assert_error(await registry.post("/children", json=CHILD), 401, "unauthorized")
    stranger = Issuer(SigningKeys([Ed25519PrivateKey.generate()]))  # our issuer's name, not its key
    forged = stranger.mint(sub="x", role="admin", counties=[], ttl=timedelta(1))
    assert_error(
        await registry.get("/children", params={"county_code": XINGAN}, headers={"Authorization": f"Bearer {forged}"}),
        401,
        "unauthorized",
    )
    expired = keys().issuer.mint(sub="x", role="admin", counties=[], ttl=timedelta(minutes=-5))
    assert_error(
        await registry.get("/children", params={"county_code": XINGAN}, headers={"Authorization": f"Bearer {expired}"}),
        401,
        "unauthorized",
    )


async def test_other_counties_and_other_roles_are_refused_with_403(registry: httpx.AsyncClient) -> None:
    created = await registry.post("/children", json=CHILD, headers=auth("admin"))
    child_id = created.json()["id"]
    outsider = auth("coordinator", [LINGSHAN])
    assert_error(await registry.post("/children", json=CHILD, headers=outsider), 403, "forbidden")
    assert_error(await registry.get(f"/children/{child_id}", headers=outsider), 403, "forbidden")
    assert_error(await registry.get("/children", params={"county_code": XINGAN}, headers=outsider), 403, "forbidden")
    for role in ("donor", "volunteer"):
        assert_error(await registry.get(f"/children/{child_id}", headers=auth(role)), 403, "forbidden")  # type: ignore[arg-type]
    assert await count(registry) == 1


@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        ({"category": "runaway"}, 422, "invalid", "body.category"),
        ({"county_code": "12345"}, 422, "invalid", "body.county_code"),
        ({"county_code": "450399"}, 422, "invalid", "body.county_code"),  # well-formed, but no such county
        ({"id_number": "450325201605201235"}, 422, "invalid", "body.id_number"),  # wrong check digit
        ({"id_number": "45032520160521123X"}, 422, "invalid", "body"),  # another birth date than given
        ({"guardian_phone": "12345"}, 422, "invalid", "body.guardian_phone"),
        ({"guardian_name": None}, 422, "invalid", "body"),  # a guardian unless the state is one
        ({"birth_date": "2099-01-01"}, 422, "birth_date_in_future", None),
        ({"birth_date": "1990-01-01"}, 422, "not_a_minor", None),
        ({"gender": "x"}, 422, "invalid", "body.gender"),
        ({"nickname": "小兰"}, 422, "invalid", "body"),  # an unknown key is counted, never named
        ({"needs": ["money"]}, 422, "invalid", "body.needs.0"),
        ({"name": "莫\x00小兰"}, 422, "invalid", "body.name"),
        ({"village": " "}, 422, "invalid", "body.village"),
    ],
)
async def test_bad_input_is_a_clear_4xx_and_writes_nothing(
    registry: httpx.AsyncClient, change: dict[str, object], status: int, code: str, field: str | None
) -> None:
    answer = await registry.post("/children", json=CHILD | change, headers=auth("admin"))
    error = assert_error(answer, status, code)
    if field:
        assert field in [p["field"] for p in error["details"]["problems"]]  # type: ignore[index]
    assert CHILD["name"] not in answer.text  # the input is not echoed back: it may be personal data
    assert await count(registry) == 0


async def test_malformed_json_oversized_bodies_unknown_ids_and_routes(registry: httpx.AsyncClient) -> None:
    headers = auth("admin") | {"Content-Type": "application/json"}
    assert_error(await registry.post("/children", content=b"{not json", headers=headers), 422, "invalid")
    big = b'{"name": "' + b"x" * 70_000 + b'"}'
    assert_error(await registry.post("/children", content=big, headers=headers), 413, "payload_too_large")

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b" " * 8192

    assert_error(await registry.post("/children", content=chunks(), headers=headers), 413, "payload_too_large")
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(await registry.get(f"/children/{missing}", headers=auth("admin")), 404, "not_found")
    assert_error(await registry.get("/children/not-a-uuid", headers=auth("admin")), 422, "invalid")
    assert_error(await registry.get("/nowhere", headers=auth("admin")), 404, "not_found")
    assert_error(await registry.delete("/children", headers=auth("admin")), 405, "method_not_allowed")
    huge = {"county_code": XINGAN, "offset": 10**20}
    assert_error(await registry.get("/children", params=huge, headers=auth("admin")), 422, "invalid")
    assert await count(registry) == 0


async def test_ready_reports_nats_down_and_recovers(registry: httpx.AsyncClient, nats_server: NatsServer) -> None:
    assert (await registry.get("/health")).json() == {"status": "ok", "service": "registry"}
    nats_server.stop()
    await wait_until(lambda: _not_ready(registry), within=10, what="/ready to report NATS down")
    error = assert_error(await registry.get("/ready"), 503, "not_ready")
    assert "nats" in error["details"]["problems"]  # type: ignore[index]
    assert (await registry.get("/health")).status_code == 200  # alive, only not ready
    nats_server.start()
    await wait_until(lambda: _ready(registry), within=15, what="/ready after NATS is back")


async def _not_ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/ready")).status_code == 503


def test_the_registry_refuses_the_development_data_secret_outside_development(tmp_path: Path) -> None:
    production = Settings(environment="production", token_signing_keys=str(keys().key_file), data_dir=tmp_path)
    with pytest.raises(ValueError, match="DATA_SECRET is left at its development default"):
        create_registry_app(production)
    with pytest.raises(ValueError, match="at least 32"):
        Settings(environment="production", data_secret="short")
    assert create_registry_app(production.model_copy(update={"data_secret": SecretStr("s" * 40)})).state.issuer
    create_matching_app(Settings(environment="production", data_dir=tmp_path))  # holds no secret: none to refuse


async def test_a_child_who_turns_eighteen_still_reads(registry: httpx.AsyncClient, clock: SettableClock) -> None:
    created = await registry.post("/children", json=CHILD | {"birth_date": "2009-01-01"}, headers=auth("admin"))
    assert created.status_code == 201, created.text
    clock.advance(timedelta(days=366 * 4))
    read = await registry.get(f"/children/{created.json()['id']}", headers=auth("admin"))
    assert read.status_code == 200, read.text
    assert read.json()["age_band"] == "18+"
    assert (await registry.get("/children", params={"county_code": XINGAN}, headers=auth("admin"))).status_code == 200


async def test_erasing_personal_data_keeps_the_record_and_cannot_be_undone(registry: httpx.AsyncClient) -> None:
    created = (await registry.post("/children", json=CHILD, headers=auth("admin"))).json()
    path = f"/children/{created['id']}"
    outsider = auth("coordinator", [LINGSHAN])
    assert_error(await registry.delete(f"{path}/personal-data", headers=outsider), 403, "forbidden")
    assert (await registry.get(path, headers=auth("admin"))).json()["name"] == CHILD["name"]
    assert (await registry.delete(f"{path}/personal-data", headers=auth("coordinator", [XINGAN]))).status_code == 204
    read = (await registry.get(path, headers=auth("admin"))).json()
    assert read["personal_data_erased"] is True
    assert read["name"] is None
    assert read["county_code"] == XINGAN
    assert await count(registry) == 1
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(await registry.delete(f"/children/{missing}/personal-data", headers=auth("admin")), 404, "not_found")


async def test_a_childs_risk_needs_and_guardianship_change_with_history_and_optimistic_concurrency(
    registry: httpx.AsyncClient,
) -> None:
    child = (await registry.post("/children", json=CHILD, headers=auth("admin"))).json()
    path, coordinator = f"/children/{child['id']}", auth("coordinator", [XINGAN])
    assert child["version"] == 2  # registered, and whether it may be paired (not yet: under 14, no consent)
    assert_error(await registry.patch(path, json={"risk_level": "high"}, headers=coordinator), 422, "invalid")
    assert_error(await registry.patch(path, json={}, headers=coordinator), 422, "invalid")
    changed = await registry.patch(
        path,
        json={"risk_level": "high", "risk_reason": "grandmother hospitalised", "needs": ["safety", "companionship"]},
        headers=coordinator | {"If-Match": "2"},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["risk_level"], changed.json()["needs"], changed.json()["version"]) == (
        "high",
        ["companionship", "safety"],
        4,
    )
    stale = await registry.patch(path, json={"needs": ["tutoring"]}, headers=coordinator | {"If-Match": '"2"'})
    assert_error(stale, 409, "conflict")
    assert (await registry.get(path, headers=coordinator)).headers["ETag"] == '"4"'
    garbled = await registry.patch(path, json={"needs": ["tutoring"]}, headers=coordinator | {"If-Match": "*x"})
    assert_error(garbled, 422, "invalid")
    state_care = await registry.patch(path, json={"guardianship": "temporary_state"}, headers=coordinator)
    assert state_care.json()["guardianship"] == "temporary_state"
    new_guardian = await registry.patch(path, json={"guardian_phone": "13977730002"}, headers=coordinator)
    assert new_guardian.json()["guardian_phone"] == "13977730002"
    assert new_guardian.json()["name"] == CHILD["name"]  # the other personal fields are kept
    assert new_guardian.json()["version"] == 6


async def test_leaving_the_programme_ends_changes_and_pairing(registry: httpx.AsyncClient) -> None:
    older = CHILD | {"birth_date": "2010-03-01"}  # over 14: no guardian consent needed for pairing
    child = (await registry.post("/children", json=older, headers=auth("admin"))).json()
    assert child["eligible_for_pairing"] is True
    path = f"/children/{child['id']}"
    left = await registry.post(f"{path}/leave", json={"reason": "family_reunited"}, headers=auth("admin"))
    assert (left.json()["status"], left.json()["left_reason"], left.json()["eligible_for_pairing"]) == (
        "left",
        "family_reunited",
        False,
    )
    assert_error(
        await registry.post(f"{path}/leave", json={"reason": "moved"}, headers=auth("admin")), 409, "left_programme"
    )
    assert_error(await registry.patch(path, json={"needs": []}, headers=auth("admin")), 409, "left_programme")
    assert_error(await registry.post(f"{path}/leave", json={"reason": "bored"}, headers=auth("admin")), 422, "invalid")


async def test_a_child_under_fourteen_is_paired_only_with_a_guardians_consent(registry: httpx.AsyncClient) -> None:
    child = (await registry.post("/children", json=CHILD, headers=auth("admin"))).json()  # born 2016
    path, coordinator = f"/children/{child['id']}", auth("coordinator", [XINGAN])
    assert (child["eligible_for_pairing"], child["consent_scope"]) == (False, None)
    consent = {
        "given_by": "韦大山",
        "relation": "grandfather",
        "given_at": "2023-01-12",
        "scope": ["pairing", "wishes"],
    }
    given = await registry.post(f"{path}/consent", json=consent, headers=coordinator)
    assert given.status_code == 200, given.text
    assert (given.json()["eligible_for_pairing"], given.json()["consent_scope"]) == (True, ["pairing", "wishes"])
    narrow = await registry.post(f"{path}/consent", json=consent | {"scope": ["wishes"]}, headers=coordinator)
    assert narrow.json()["eligible_for_pairing"] is False
    withdrawn = await registry.delete(f"{path}/consent", headers=coordinator)
    assert (withdrawn.json()["consent_scope"], withdrawn.json()["eligible_for_pairing"]) == (None, False)
    assert_error(await registry.delete(f"{path}/consent", headers=coordinator), 409, "no_consent")
    assert_error(
        await registry.post(f"{path}/consent", json=consent | {"scope": []}, headers=coordinator), 422, "invalid"
    )
    outsider = auth("coordinator", [LINGSHAN])
    assert_error(await registry.post(f"{path}/consent", json=consent, headers=outsider), 403, "forbidden")


async def test_a_consent_dated_after_today_is_refused(registry: httpx.AsyncClient, clock: SettableClock) -> None:
    child = (await registry.post("/children", json=CHILD, headers=auth("admin"))).json()
    path, coordinator = f"/children/{child['id']}", auth("coordinator", [XINGAN])
    consent = {"given_by": "韦大山", "relation": "grandfather", "scope": ["pairing"]}
    today = local_date(clock.now())
    tomorrow = await registry.post(
        f"{path}/consent", json=consent | {"given_at": str(today + timedelta(days=1))}, headers=coordinator
    )
    error = assert_error(tomorrow, 422, "in_future")
    assert error["details"] == {"field": "given_at"}
    assert (await registry.get(path, headers=coordinator)).json()["version"] == child["version"]  # nothing written
    given_today = await registry.post(f"{path}/consent", json=consent | {"given_at": str(today)}, headers=coordinator)
    assert given_today.status_code == 200, given_today.text


async def test_a_list_or_export_of_a_county_that_does_not_exist_is_422_as_a_registration_is(
    registry: httpx.AsyncClient,
) -> None:
    for path in ("/children", "/children/export"):
        answer = await registry.get(path, params={"county_code": "450399"}, headers=auth("admin"))
        error = assert_error(answer, 422, "invalid")
        assert error["details"]["problems"][0]["field"] == "query.county_code"  # type: ignore[index]
        assert "not a county code of Guangxi" in error["details"]["problems"][0]["problem"]  # type: ignore[index]


async def audit_entries(registry: httpx.AsyncClient, **filters: str) -> list[dict[str, object]]:
    answer = await registry.get("/audit", params={"limit": 500, **filters}, headers=auth("admin"))
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


async def test_every_refusal_is_audited_role_and_county_alike_without_personal_data(
    registry: httpx.AsyncClient,
) -> None:
    child = (await registry.post("/children", json=CHILD, headers=auth("admin"))).json()
    path = f"/children/{child['id']}"
    for role in ("donor", "volunteer"):
        headers = auth(role)  # type: ignore[arg-type]
        assert_error(await registry.get(path, headers=headers), 403, "forbidden")
        assert_error(await registry.get(f"{path}/history", headers=headers), 403, "forbidden")
        assert_error(await registry.post("/children", json=CHILD, headers=headers), 403, "forbidden")
        assert_error(await registry.get("/children", params={"county_code": XINGAN}, headers=headers), 403, "forbidden")
    outsider = auth("coordinator", [LINGSHAN])
    assert_error(await registry.get("/children", params={"county_code": XINGAN}, headers=outsider), 403, "forbidden")
    export = await registry.get("/children/export", params={"county_code": XINGAN}, headers=outsider)
    assert_error(export, 403, "forbidden")
    assert_error(await registry.post("/children", json=CHILD, headers=outsider), 403, "forbidden")
    assert_error(await registry.get("/audit", headers=outsider), 403, "forbidden")

    denied = await audit_entries(registry, outcome="denied")
    seen = {(e["role"], e["action"], e["child_id"], e["county_code"]) for e in denied}
    for role in ("donor", "volunteer"):
        assert {
            (role, "read", child["id"], XINGAN),
            (role, "history", child["id"], XINGAN),
            (role, "register", None, None),
            (role, "list", None, None),
        } <= seen
    assert {
        ("coordinator", "list", None, XINGAN),
        ("coordinator", "export", None, XINGAN),
        ("coordinator", "register", None, XINGAN),
        ("coordinator", "read_audit", None, None),
    } <= seen
    assert all(e["at"] and e["actor"] and e["outcome"] == "denied" for e in denied)
    assert len(denied) == 12
    logged = str(denied)
    for field in ("name", "guardian_name", "guardian_phone", "township", "village", "birth_date"):
        assert str(CHILD[field]) not in logged
    assert not [e for e in await audit_entries(registry, outcome="allowed") if e["role"] in ("donor", "volunteer")]


async def test_a_childs_history_shows_every_change_with_its_personal_part_until_erased(
    registry: httpx.AsyncClient,
) -> None:
    with_id = CHILD | {"id_number": "450325201605201234"}
    child = (await registry.post("/children", json=with_id, headers=auth("admin"))).json()
    path, coordinator = f"/children/{child['id']}", auth("coordinator", [XINGAN])
    risk = {"risk_level": "high", "risk_reason": "祖母住院，无人照看"}
    assert (await registry.patch(path, json=risk, headers=coordinator)).status_code == 200
    guardian = {"guardianship": "relative", "guardian_name": "莫舅舅", "guardian_phone": "13977730002"}
    assert (await registry.patch(path, json=guardian, headers=coordinator)).status_code == 200
    consent = {"given_by": "莫舅舅", "relation": "uncle", "given_at": "2023-01-12", "scope": ["pairing", "wishes"]}
    assert (await registry.post(f"{path}/consent", json=consent, headers=coordinator)).status_code == 200
    assert (await registry.delete(f"{path}/consent", headers=coordinator)).status_code == 200
    assert (await registry.post(f"{path}/leave", json={"reason": "moved"}, headers=coordinator)).status_code == 200

    answer = await registry.get(f"{path}/history", params={"purpose": "个案复查"}, headers=coordinator)
    assert answer.status_code == 200, answer.text
    history = answer.json()
    assert history["personal_data_erased"] is False
    events = history["events"]
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    by_type = {e["type"].split(".")[2]: e for e in events}
    registered = by_type["registered"]
    assert registered["personal"] == {
        field: str(with_id[field])
        for field in ("name", "id_number", "birth_date", "township", "village", "guardian_name", "guardian_phone")
    }
    assert registered["fields"]["county_code"] == XINGAN
    assert registered["at"]
    risk_changed = by_type["risk_changed"]
    assert (risk_changed["fields"]["previous_risk_level"], risk_changed["fields"]["risk_level"]) == ("medium", "high")
    assert risk_changed["personal"] == {"risk_reason": risk["risk_reason"]}
    changed = by_type["guardianship_changed"]
    assert changed["fields"]["guardianship"] == "relative"
    assert changed["personal"] == {"guardian_name": "莫舅舅", "guardian_phone": "13977730002"}
    recorded = by_type["consent_recorded"]
    assert recorded["fields"]["scope"] == ["pairing", "wishes"]
    assert recorded["personal"] == {"given_by": "莫舅舅", "relation": "uncle", "given_at": "2023-01-12"}
    assert "consent_withdrawn" in by_type
    assert by_type["left_programme"]["fields"]["reason"] == "moved"
    assert not any(e["personal_erased"] for e in events)

    outsider = await registry.get(f"{path}/history", headers=auth("coordinator", [LINGSHAN]))
    assert_error(outsider, 403, "forbidden")
    log = await audit_entries(registry, child_id=child["id"])
    assert {(e["action"], e["outcome"], e["purpose"]) for e in log if e["action"] == "history"} == {
        ("history", "allowed", "个案复查"),
        ("history", "denied", "unstated"),
    }

    assert (await registry.delete(f"{path}/personal-data", headers=coordinator)).status_code == 204
    after = (await registry.get(f"{path}/history", headers=coordinator)).json()
    assert after["personal_data_erased"] is True
    assert [e["type"] for e in after["events"][: len(events)]] == [e["type"] for e in events]  # every event loads
    assert [e["fields"] for e in after["events"][: len(events)]] == [e["fields"] for e in events]
    assert "registry.child.personal_data_erased.v1" in [e["type"] for e in after["events"]]
    assert all(e["personal"] is None for e in after["events"])
    sealed_before = [e["version"] for e in events if e["personal"] is not None]
    assert [e["version"] for e in after["events"] if e["personal_erased"]] == sealed_before
    assert len(sealed_before) == 4  # registered, risk reason, new guardian, consent
    for field in ("name", "guardian_phone"):
        assert str(with_id[field]) not in str(after)


async def test_lists_filter_by_category_risk_and_status_and_export_as_csv(registry: httpx.AsyncClient) -> None:
    for change in ({}, {"risk_level": "high"}, {"category": "orphan", "guardianship": "institution"}):
        assert (await registry.post("/children", json=CHILD | change, headers=auth("admin"))).status_code == 201
    coordinator = auth("coordinator", [XINGAN])

    async def ids(**filters: str) -> int:
        page = await registry.get("/children", params={"county_code": XINGAN, **filters}, headers=coordinator)
        return int(page.json()["total"])

    assert (await ids(), await ids(risk_level="high"), await ids(category="orphan"), await ids(status="left")) == (
        3,
        1,
        1,
        0,
    )
    exported = await registry.get(
        "/children/export", params={"county_code": XINGAN, "risk_level": "medium"}, headers=coordinator
    )
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    lines = exported.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("id,name,id_number,birth_date")
    assert len(lines) == 3
    assert all(CHILD["name"] in line for line in lines[1:])
    log = (await registry.get("/audit", params={"actor": "coordinator"}, headers=auth("admin"))).json()["items"]
    assert sum(1 for entry in log if entry["action"] == "export") == 2
    assert (
        await registry.get("/children/export", params={"county_code": XINGAN}, headers=auth("donor"))
    ).status_code == 403


async def test_a_child_turning_fourteen_becomes_eligible_by_the_clock_alone(
    registry: httpx.AsyncClient, clock: SettableClock
) -> None:
    clock.set(datetime(2023, 1, 10, tzinfo=UTC))
    thirteen = CHILD | {"birth_date": "2009-03-01"}
    child = (await registry.post("/children", json=thirteen, headers=auth("admin"))).json()
    assert (child["eligible_for_pairing"], child["ineligible_reasons"]) == (
        False,
        ["under 14: no guardian consent to pairing"],
    )
    waiting = await registry.get(
        "/children", params={"county_code": XINGAN, "eligible_for_pairing": False}, headers=auth("admin")
    )
    assert waiting.json()["total"] == 1
    clock.set(datetime(2023, 3, 2, tzinfo=UTC))  # the day after the 14th birthday; only the timer runs

    async def eligible() -> bool:
        read = await registry.get(f"/children/{child['id']}", headers=auth("admin"))
        return bool(read.json()["eligible_for_pairing"])

    await wait_until(eligible, within=10, what="the timer to notice the 14th birthday")
    clock.set(datetime(2027, 3, 2, tzinfo=UTC))  # 18: the programme ends for the child

    async def adult() -> bool:
        read = (await registry.get(f"/children/{child['id']}", headers=auth("admin"))).json()
        return read["eligible_for_pairing"] is False and read["ineligible_reasons"] == ["aged 18 or over"]

    await wait_until(adult, within=10, what="the timer to notice the 18th birthday")


async def test_a_guardian_is_needed_unless_the_state_is_one(registry: httpx.AsyncClient) -> None:
    in_care = CHILD | {"guardianship": "temporary_state", "guardian_name": None, "guardian_phone": None}
    child = (await registry.post("/children", json=in_care, headers=auth("admin"))).json()
    path = f"/children/{child['id']}"
    back_home = await registry.patch(path, json={"guardianship": "parents"}, headers=auth("admin"))
    assert_error(back_home, 422, "guardian_needed")
    with_guardian = {"guardianship": "parents", "guardian_name": "莫父", "guardian_phone": "13907730009"}
    assert (await registry.patch(path, json=with_guardian, headers=auth("admin"))).status_code == 200


@pytest.mark.settings(export_max_rows=2)
async def test_an_export_larger_than_the_limit_is_refused_not_cut_short(registry: httpx.AsyncClient) -> None:
    for _ in range(2):
        assert (await registry.post("/children", json=CHILD, headers=auth("admin"))).status_code == 201
    exported = await registry.get("/children/export", params={"county_code": XINGAN}, headers=auth("admin"))
    assert len(exported.content.decode("utf-8-sig").splitlines()) == 3  # the header and both: at the limit, all
    assert (await registry.post("/children", json=CHILD, headers=auth("admin"))).status_code == 201

    refused = await registry.get("/children/export", params={"county_code": XINGAN}, headers=auth("admin"))

    assert assert_error(refused, 422, "export_too_large")["details"] == {"limit": 2}
