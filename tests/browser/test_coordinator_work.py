"""A coordinator's work in Chromium: a visit logged for an overdue high-risk child through the contact form (and the
child off the day's overdue list at once), a matching run with a proposal confirmed, and the county's visit policy."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from services.console.errors import MESSAGES
from services.console.i18n import Catalogues
from services.console.labels import LABELS
from tests.browser.conftest import Stack, Visit, sign_in
from tests.browser.test_console_basics import violations

pytestmark = pytest.mark.browser
COUNTY = "450721"  # Lingshan, the demo coordinator's second county
PROJECTION_WAIT_SECONDS = 10.0  # matching's views follow its events through the bus
CHINESE = Catalogues().translator("zh-CN")  # what the pages say, as the catalogue has it


def set_high_risk_days(tab: Visit, days: str) -> str:
    """Set the county's days between visits to a high-risk child on the policy page; returns what they were."""
    tab.page.goto(f"/visits/policy?county={COUNTY}")
    before = tab.page.input_value("#f-high_days")
    tab.page.fill("#f-high_days", days)
    tab.page.click("form.policy-form button[type=submit]")
    tab.page.wait_for_url(re.compile(rf"/visits/policy\?county={COUNTY}&replanned=\d+$"))
    assert tab.page.locator("[role=status]").is_visible()
    assert violations(tab) == []
    return before


def today_until(tab: Visit, done: Callable[[], bool]) -> bool:
    """Read the day's page again (the views are asynchronous) until `done`, for a bounded time."""
    deadline = time.monotonic() + PROJECTION_WAIT_SECONDS
    while True:
        tab.page.goto(f"/today?county={COUNTY}")
        if done() or time.monotonic() > deadline:
            return done()
        time.sleep(0.5)


def test_a_visit_logged_for_an_overdue_child_takes_the_child_off_the_overdue_list(tab: Visit, stack: Stack) -> None:
    sign_in(tab, *stack.login_of("coordinator"))
    # How many high-risk children the demo leaves overdue depends on its random visits (1 to 40 days ago); in a
    # county that visits them daily, every one visited before today is overdue: that policy, set here for the test.
    usual = set_high_risk_days(tab, "1")
    try:
        overdue = tab.page.locator("#overdue-list tr.risk-high")
        assert today_until(tab, lambda: overdue.count() > 0), "no high-risk child is overdue"
        assert violations(tab) == []
        child_id = str(overdue.first.get_attribute("data-child"))
        log_a_visit(tab, child_id)
        # At the first read: the day's page waits for the visit the coordinator logged to show (X-Wait-For).
        tab.page.goto(f"/today?county={COUNTY}")
        assert tab.page.locator(f"#overdue-list [data-child='{child_id}']").count() == 0, "still overdue"
        assert violations(tab) == []
    finally:
        set_high_risk_days(tab, usual)


def log_a_visit(tab: Visit, child_id: str) -> None:
    """From the day's page: the overdue high-risk tile, the child's row, its contact form; an in-person visit now."""
    tab.page.locator(".tile.risk-high a").click()
    tab.page.wait_for_load_state()
    assert re.search(rf"/visits\?county={COUNTY}&overdue=1&risk_level=high$", tab.page.url)
    row = tab.page.locator(f"#visit-list tr[data-child='{child_id}']")
    assert row.locator("strong.flag").count() == 1  # marked overdue
    assert violations(tab) == []
    tab.screenshot("visits")
    row.locator(f"a[href='/children/{child_id}/contacts']").click()
    tab.page.wait_for_load_state()
    assert tab.page.url.endswith(f"/children/{child_id}/contacts")
    assert violations(tab) == []

    # A duration that is no number of minutes is said beside the field, and nothing is logged.
    tab.page.select_option("#f-kind", "visit")
    tab.page.check("input[name=in_person][value=yes]")
    tab.page.fill("#f-duration_minutes", "-5")
    tab.page.click("form.contact-form button[type=submit]")
    tab.page.wait_for_load_state()
    assert tab.page.locator("[role=alert]").is_visible()
    assert tab.page.locator("#f-duration_minutes").get_attribute("aria-invalid") == "true"
    assert violations(tab) == []

    logged_before = tab.page.locator("#contact-list tr").count()
    tab.page.fill("#f-duration_minutes", "45")
    tab.page.fill("#f-note", "入户走访，孩子状态良好")
    assert tab.page.input_value("#f-occurred_at")  # now, in China time, unless changed
    tab.screenshot("contact-form")
    tab.page.click("form.contact-form button[type=submit]")
    tab.page.wait_for_url(re.compile(rf"/children/{child_id}/contacts\?logged=1$"))
    assert tab.page.locator("[role=status]").is_visible()
    assert tab.page.locator("#contact-list tr").count() == logged_before + 1
    assert violations(tab) == []


def test_a_coordinator_runs_matching_and_confirms_a_proposal(tab: Visit, stack: Stack) -> None:
    sign_in(tab, *stack.login_of("coordinator"))
    tab.page.goto("/matching?county=450325")
    assert violations(tab) == []
    tab.page.click("form.run-form button[type=submit]")
    tab.page.wait_for_load_state()
    assert tab.page.locator("#run-title").is_visible()  # the run's own answer, with why children were left unpaired
    assert tab.page.locator("#unpaired-title").is_visible()
    assert violations(tab) == []
    tab.screenshot("matching-run")

    tab.page.goto("/matching?county=450325")
    proposal = tab.page.locator("table.proposals tbody tr").first
    pairing_id = str(proposal.get_attribute("data-pairing"))
    assert proposal.locator("td").nth(4).inner_text().strip()  # the score's parts, in words
    proposal.locator("details.decline summary").click()  # the decline form opens in place
    assert violations(tab) == []
    tab.screenshot("matching")
    proposal.locator("form.confirm button").click()
    tab.page.wait_for_url(re.compile(r"/matching\?county=450325&done=confirmed&pairing="))
    assert tab.page.locator("[role=status]").is_visible()
    assert tab.page.locator(f"table.proposals tr[data-pairing='{pairing_id}']").count() == 0  # no longer waiting
    assert violations(tab) == []

    tab.page.goto("/pairings?county=450325&status=confirmed")
    row = tab.page.locator(f"#pairing-list tr[data-pairing='{pairing_id}']")
    assert row.locator("td.status-confirmed").inner_text() == CHINESE(LABELS["pairing_status"]["confirmed"])
    assert violations(tab) == []
    tab.screenshot("pairings")
    row.locator("td").first.get_by_role("link").click()
    tab.page.wait_for_url(re.compile(rf"/pairings/{pairing_id}$"))
    assert tab.page.locator("ol.history li").count() == 2  # proposed, then confirmed
    assert tab.page.locator("#close-title").is_visible()  # a confirmed pairing can be closed, with a reason
    assert violations(tab) == []
    tab.screenshot("pairing")

    # Confirming it again is refused by matching (409), and the page says so in words.
    csrf = tab.page.locator("input[name=csrf]").first.get_attribute("value")
    again = tab.page.request.post(f"{stack.console}/pairings/{pairing_id}/confirm", form={"csrf": str(csrf)})
    assert again.status == 409
    assert CHINESE(MESSAGES["pairing_confirmed"]) in again.text()


def test_the_visit_policy_refuses_longer_intervals_for_higher_risk(tab: Visit, stack: Stack) -> None:
    sign_in(tab, *stack.login_of("coordinator"))
    tab.page.goto(f"/visits/policy?county={COUNTY}")
    assert violations(tab) == []
    days = {name: tab.page.input_value(f"#f-{name}") for name in ("high_days", "medium_days", "low_days")}
    tab.page.fill("#f-high_days", str(int(days["medium_days"]) + 1))
    tab.page.click("form.policy-form button[type=submit]")
    tab.page.wait_for_load_state()
    assert tab.page.locator("[role=alert]").is_visible()
    assert violations(tab) == []
    tab.page.fill("#f-high_days", days["high_days"])  # the same policy again: saved, nobody's visit moves
    tab.page.click("form.policy-form button[type=submit]")
    tab.page.wait_for_url(re.compile(rf"/visits/policy\?county={COUNTY}&replanned=0$"))
    assert tab.page.locator("[role=status]").is_visible()
    assert {name: tab.page.input_value(f"#f-{name}") for name in days} == days
    assert violations(tab) == []
