"""A coordinator's figures in Chromium: the seed's figures as tiles and the weeks as charts drawn on the server (an
SVG image with its numbers in a table), the county, then the region, the printable page for the bureau's report,
and the CSV of both tables from the console's own address; axe finds nothing on any of them."""

from __future__ import annotations

import csv
import io
import re

import pytest

from tests.browser.conftest import Stack, Visit, sign_in
from tests.browser.test_console_basics import violations

pytestmark = pytest.mark.browser
XINGAN = "450325"
NUMBER = re.compile(r"^\d{1,3}(,\d{3})*(\.\d{2})?$")


def drawn_bars(tab: Visit, chart: str) -> list[float]:
    """The heights of the bars a chart drew."""
    heights = tab.page.locator(f"#chart-{chart} svg rect").evaluate_all(
        "rects => rects.map(r => r.getAttribute('height'))"
    )
    return [float(height) for height in heights]


def test_a_coordinator_reads_the_figures_of_their_county_and_the_region_and_prints_them(
    tab: Visit, stack: Stack
) -> None:
    sign_in(tab, *stack.login_of("coordinator"))
    tab.page.goto(f"/figures?area={XINGAN}")
    assert "兴安县" in tab.page.locator("h1").inner_text()
    assert tab.page.locator("nav a[aria-current=page]").get_attribute("href") == "/figures"

    counts = tab.page.locator(".fig-tiles .count").all_inner_texts()
    assert len(counts) == 8
    assert all(NUMBER.match(count) for count in counts), counts
    visits = tab.page.locator(".fig-tiles li").nth(4)
    assert int(visits.locator(".count").inner_text().replace(",", "")) > 0  # the demo's visits of the past weeks

    images = tab.page.locator("figure.chart svg[role=img]")
    assert images.count() >= 3
    for index in range(images.count()):
        assert images.nth(index).get_attribute("aria-label")
    assert any(height > 0 for height in drawn_bars(tab, "visits"))
    assert len(drawn_bars(tab, "visits")) == 12  # a bar for each of the 12 weeks, 0 high where nobody visited
    assert tab.page.locator("#chart-pairings svg polyline").count() == 1
    assert tab.page.locator("#chart-wishes svg .bars").count() == 2  # posted and fulfilled
    table = tab.page.locator("#chart-visits table tbody tr")
    assert table.count() == 12  # the same numbers for a screen reader
    tab.page.locator("#chart-visits summary").click()
    assert re.match(r"^\d{4}-\d{2}-\d{2}$", table.first.locator("th").inner_text())
    assert violations(tab) == []
    tab.screenshot("figures")

    tab.page.select_option("#f-area", "45")
    tab.page.click("form.filters button[type=submit]")
    tab.page.wait_for_url(re.compile(r"area=45&"))
    assert "广西壮族自治区" in tab.page.locator("h1").inner_text()
    assert int(visits.locator(".count").inner_text().replace(",", "")) > 0
    assert violations(tab) == []

    tab.page.select_option("#f-campaign", label="情暖新春 共护未来")
    tab.page.click("form.filters button[type=submit]")
    tab.page.wait_for_url(re.compile(r"campaign=[0-9a-f-]{36}"))
    assert "情暖新春 共护未来" in tab.page.locator("h1").inner_text()
    assert violations(tab) == []

    tab.page.locator("a[href^='/figures/print']").click()
    tab.page.wait_for_url(re.compile(r"/figures/print\?area=45&campaign="))
    assert tab.page.locator("nav").count() == 0  # no navigation on the report
    assert "广西壮族自治区" in tab.page.title()
    assert re.search(r"\d{4}-\d{2}-\d{2}", tab.page.title())
    assert tab.page.locator("figure.chart svg[role=img]").count() >= 3
    assert tab.page.locator("details.chart-numbers[open]").count() >= 3  # the numbers printed beside each chart
    assert violations(tab) == []
    tab.page.emulate_media(media="print")
    tab.screenshot("figures-print")


def test_the_figures_export_as_csv_from_the_consoles_own_address(tab: Visit, stack: Stack) -> None:
    sign_in(tab, *stack.login_of("coordinator"))
    tab.page.goto(f"/figures?area={XINGAN}")
    for link, first_column in (("table=counties", "county_code"), ("table=weeks", "week")):
        href = tab.page.locator(f"a[href*='{link}']").get_attribute("href")
        assert href is not None
        assert href.startswith("/figures/export.csv?")
        answer = tab.page.request.get(f"{stack.console}{href}")
        assert answer.status == 200, answer.text()
        assert answer.headers["content-type"].startswith("text/csv")
        assert "attachment" in answer.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(answer.body().decode("utf-8-sig"))))
        assert rows[0][0] == first_column
        if first_column == "week":
            assert len(rows) == 1 + 12
            assert sum(int(row[1]) for row in rows[1:]) > 0  # visits in the weeks shown
        else:
            assert [row[0] for row in rows[1:]] == [XINGAN]  # the county asked for, and only it
    refused = tab.page.request.get(f"{stack.console}/figures/export.csv?area=4505&table=weeks")
    assert refused.status == 403  # Beihai is not this coordinator's: the API's refusal, passed on
