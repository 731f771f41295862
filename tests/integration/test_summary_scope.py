"""Who may see an area's figures: the summary and its CSV export refuse a coordinator outside the area the same way,
and answer one inside it."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from tests.helpers import RegistryEvents, auth, wait_until

XINGAN, LINGSHAN = "450325", "450721"  # Xing'an (Guilin, 4503) and Lingshan (Qinzhou, 4507)
COORDINATOR = auth("coordinator", [LINGSHAN])


async def _both_counties_counted(matching: httpx.AsyncClient, registry_events: RegistryEvents) -> None:
    for county in (XINGAN, LINGSHAN):
        await registry_events.child(county=county)

    async def counted() -> bool:
        answer = await matching.get("/views/summary", params={"code": "45"}, headers=auth("admin"))
        return answer.status_code == 200 and answer.json()["children"] == 2

    await wait_until(counted, what="both children in the figures")


@pytest.mark.parametrize("code", ["4505", "4503", XINGAN, "44"])
async def test_a_coordinator_outside_the_area_is_refused_its_figures_and_their_export_alike(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, code: str
) -> None:
    await _both_counties_counted(matching, registry_events)

    for path in ("/views/summary", "/views/summary/export"):
        answer = await matching.get(path, params={"code": code}, headers=COORDINATOR)

        assert answer.status_code == 403, (path, answer.text)
        assert answer.headers["content-type"].startswith("application/json"), path
        assert answer.json()["error"]["code"] == "forbidden", path
        assert set(answer.json()["error"]) == {"code", "message", "details"}


async def test_a_coordinator_inside_the_area_gets_its_figures_and_the_export_of_their_own_counties(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    await _both_counties_counted(matching, registry_events)

    for code, children in ((LINGSHAN, 1), ("4507", 1), ("45", 2)):
        figures = await matching.get("/views/summary", params={"code": code}, headers=COORDINATOR)
        export = await matching.get("/views/summary/export", params={"code": code}, headers=COORDINATOR)

        assert figures.status_code == 200, figures.text
        assert figures.json()["children"] == children, code
        assert export.status_code == 200, export.text
        assert export.headers["content-type"].startswith("text/csv")
        lines = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"))))
        # a coordinator's export has a row for each of their own counties only, the region's figures notwithstanding
        assert [(line["county_code"], line["children"]) for line in lines] == [(LINGSHAN, "1")], code
