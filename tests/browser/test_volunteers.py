"""A coordinator's volunteers in Chromium: the county's list, registering a volunteer (a refused field said beside it,
then fixed), the four vetting steps and a training recorded until the registry finds the volunteer eligible, service
hours added, and the day's expiring vetting leading to the volunteer's page."""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.console.errors import MESSAGES
from services.console.i18n import Catalogues
from services.console.labels import LABELS
from tests.browser.conftest import Stack, Visit, sign_in
from tests.browser.test_console_basics import violations

pytestmark = pytest.mark.browser
COUNTY = "450325"
ELIGIBILITY_WAIT_SECONDS = 10.0  # the registry decides eligibility; the page reads it back
CHINESE = Catalogues().translator("zh-CN")  # what the pages say, as the catalogue has it
STEPS = ("application", "interview", "record_check", "references")
VOLUNTEER_PAGE = re.compile(r"/volunteers/([0-9a-f-]{36})\?done=(\w+)$")


def china_today() -> date:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


def send(tab: Visit, form: str, done: str) -> None:
    """Submit one form of the volunteer's page and land back on it with its notice."""
    tab.page.click(f"main form.{form} button[type=submit]")
    tab.page.wait_for_url(re.compile(rf"/volunteers/[0-9a-f-]{{36}}\?done={done}$"))
    assert tab.page.locator("main [role=status]").is_visible()


def test_a_coordinator_registers_vets_and_trains_a_volunteer(tab: Visit, stack: Stack) -> None:
    sign_in(tab, *stack.login_of("coordinator"))
    tab.page.goto(f"/volunteers?county={COUNTY}")
    assert tab.page.locator("#volunteer-list tr").count() > 0  # the demo's volunteers
    assert tab.page.locator("nav a[aria-current=page]").inner_text() == CHINESE("Volunteers")
    assert violations(tab) == []
    tab.screenshot("volunteers")

    # Registering: a phone number that is none is refused beside its field, and what was typed stays.
    tab.page.locator("main a[href^='/volunteers/new']").click()
    tab.page.wait_for_url(re.compile(rf"/volunteers/new\?county={COUNTY}$"))
    assert tab.page.input_value("#f-county_code") == COUNTY
    tab.page.fill("#f-name", "韦志愿")
    tab.page.fill("#f-phone", "12345")
    tab.page.select_option("#f-kind", "social_worker")
    tab.page.fill("#f-township", "兴安镇")
    tab.page.fill("#f-village", "城东村")
    tab.page.fill("#f-capacity", "2")
    tab.page.check("input[name=skills][value=tutoring]")
    tab.page.check("input[name=languages][value=zhuang]")
    tab.page.click("main form.volunteer-form button[type=submit]")
    tab.page.wait_for_load_state()
    assert tab.page.locator("main [role=alert]").inner_text().strip() == CHINESE(MESSAGES["invalid"])
    assert tab.page.get_attribute("#f-phone", "aria-invalid") == "true"
    assert tab.page.get_attribute("#f-name", "aria-invalid") is None
    assert tab.page.input_value("#f-name") == "韦志愿"
    assert tab.page.is_checked("input[name=skills][value=tutoring]")
    assert violations(tab) == []
    tab.screenshot("volunteer-form")
    tab.page.fill("#f-phone", "13907731234")
    tab.page.click("main form.volunteer-form button[type=submit]")
    tab.page.wait_for_url(VOLUNTEER_PAGE)
    found = VOLUNTEER_PAGE.search(tab.page.url)
    assert found is not None
    assert found[2] == "registered"
    volunteer_id = found[1]
    assert tab.page.locator("h1").inner_text().startswith("韦志愿")
    assert tab.page.locator("#eligibility ul.reasons li").count() == 5  # four steps not done, no training
    assert violations(tab) == []

    # A pass without its expiry date is refused, in words, beside the field.
    expires = str(china_today() + timedelta(days=365))
    tab.page.select_option("#screening-step", "application")
    tab.page.click("main form.screening-form button[type=submit]")
    tab.page.wait_for_load_state()
    assert CHINESE(MESSAGES["expiry_required"]) in tab.page.locator("main [role=alert]").inner_text()
    assert tab.page.get_attribute("#screening-expires_at", "aria-invalid") == "true"
    assert violations(tab) == []

    for step in STEPS:
        tab.page.select_option("#screening-step", step)
        tab.page.check("main form.screening-form input[name=result][value=passed]")
        tab.page.fill("#screening-expires_at", expires)
        send(tab, "screening-form", "screening")
        row = tab.page.locator(f"#screening-list tr[data-step={step}]")
        assert row.locator("td").nth(1).inner_text() == CHINESE(LABELS["screening_result"]["passed"])
        assert row.locator("td").nth(3).inner_text().startswith(expires)
    tab.page.fill("#training-course", "儿童保护与安全")
    tab.page.fill("#training-expires_at", expires)
    send(tab, "training-form", "training")
    assert tab.page.locator("#training-list tr").count() == 1

    eligible = tab.page.locator("#eligibility .eligible")
    deadline = time.monotonic() + ELIGIBILITY_WAIT_SECONDS
    while eligible.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        tab.page.reload()
    assert eligible.inner_text() == CHINESE("Yes: vetted and trained")
    assert tab.page.locator("#eligibility ul.reasons").count() == 0

    tab.page.fill("#hours-hours", "2.5")
    send(tab, "hours-form", "hours")
    assert tab.page.locator("#service-hours").inner_text() == "2.5"
    tab.page.fill("#capacity-capacity", "3")
    send(tab, "capacity-form", "capacity")
    assert tab.page.input_value("#capacity-capacity") == "3"
    assert violations(tab) == []
    tab.screenshot("volunteer")

    # The list shows the new social worker as eligible, under the filters that choose them.
    tab.page.goto(f"/volunteers?county={COUNTY}&kind=social_worker&eligible=true")
    row = tab.page.locator(f"#volunteer-list tr[data-volunteer='{volunteer_id}']")
    assert row.locator("td.eligibility").inner_text().strip() == CHINESE("Yes")
    assert row.locator("td").nth(4).inner_text() == "3"
    assert violations(tab) == []


def test_the_days_expiring_vetting_leads_to_the_volunteers_page(tab: Visit, stack: Stack) -> None:
    sign_in(tab, *stack.login_of("coordinator"))
    tab.page.goto(f"/today?county={COUNTY}")
    links = tab.page.locator("#expiring a[href^='/volunteers/']")
    assert links.count() > 0  # the demo's record query of one volunteer in seven lapses within the month
    links.first.click()
    tab.page.wait_for_url(re.compile(r"/volunteers/[0-9a-f-]{36}$"))
    assert tab.page.locator("#screening-list .expiry.soon").count() >= 1
    assert violations(tab) == []
