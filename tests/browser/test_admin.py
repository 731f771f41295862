"""Administration in Chromium: the admin creates a coordinator's account and sees its invitation link once, finds it
invited in the list and changes its counties; creates a campaign (a wrong one refused beside its field); reads the
counties; and a coordinator is refused every admin page. The invited person opens the link, chooses a password and
signs in."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from services.console.errors import MESSAGES
from services.console.i18n import Catalogues
from services.console.labels import FIELD_HINTS, LABELS
from tests.browser.conftest import Stack, Visit, open_tab, sign_in
from tests.browser.test_console_basics import violations

pytestmark = pytest.mark.browser
CHINESE = Catalogues().translator("zh-CN")  # what the pages say, as the catalogue has it
NEW_LOGIN = "13912340325"  # no demo account has it
CAMPAIGN = "测试 秋季助学"


def test_the_admin_creates_an_account_and_hands_over_its_invitation_once(
    tab: Visit, stack: Stack, browser: Browser
) -> None:
    sign_in(tab, *stack.login_of("admin"))
    tab.page.goto("/today?county=450325")
    admin_link = tab.page.locator("header nav a[href='/admin/accounts']")
    assert admin_link.count() == 1  # the admin's menu: the coordinator's pages and the administration
    assert tab.page.locator("header nav a[href='/aid']").count() == 1
    admin_link.click()
    tab.page.wait_for_url(re.compile(r"/admin/accounts$"))
    assert tab.page.locator("#account-list tr[data-login='admin']").count() == 1
    assert violations(tab) == []

    # A coordinator without counties is refused beside the field; with its county, created and invited.
    tab.page.locator("main a[href='/admin/accounts/new']").click()
    tab.page.wait_for_url(re.compile(r"/admin/accounts/new$"))
    assert violations(tab) == []
    tab.page.fill("#f-login", NEW_LOGIN)
    tab.page.fill("#f-name", "测试协调员")
    tab.page.select_option("#f-role", "coordinator")
    tab.page.click("main form.account-form button[type=submit]")
    tab.page.wait_for_load_state()
    assert tab.page.locator("#f-counties").get_attribute("aria-invalid") == "true"
    assert tab.page.locator("#e-counties").inner_text() == CHINESE(FIELD_HINTS["counties"])
    assert tab.page.input_value("#f-login") == NEW_LOGIN  # what was typed stays
    assert violations(tab) == []
    tab.page.fill("#f-counties", "450325")
    tab.page.click("main form.account-form button[type=submit]")
    tab.page.wait_for_load_state()
    link = tab.page.input_value("#handover-link")
    assert re.fullmatch(rf"{re.escape(stack.console)}/accept-invitation#[\w-]{{20,}}", link), link
    token = link.split("#", 1)[1]
    assert tab.page.locator("main [role=status]").is_visible()
    on_its_way = "It is also on its way to its owner, by SMS or email."
    assert CHINESE(on_its_way) in tab.page.locator(".handover").inner_text()  # a mobile number: sent by SMS too
    assert tab.page.url.endswith("/admin/accounts/new")  # the link is in no address the browser keeps
    assert violations(tab) == []
    tab.screenshot("admin-invitation")

    # Listed as invited; the link is not shown again.
    tab.page.goto("/admin/accounts?role=coordinator&state=invited")
    row = tab.page.locator(f"#account-list tr[data-login='{NEW_LOGIN}']")
    assert row.locator("td.state").inner_text().strip() == CHINESE(LABELS["account_state"]["invited"])
    assert "兴安县" in row.inner_text()
    assert token not in tab.page.content()
    row.locator("details.account-change summary").click()
    assert violations(tab) == []
    tab.screenshot("admin-accounts")

    # Its counties changed; then a new invitation, whose link replaces the first.
    row.locator("input[name=counties]").fill("450325 450721")
    row.locator("form[action$='/change'] button[type=submit]").click()
    tab.page.wait_for_url(re.compile(r"/admin/accounts\?done=changed$"))
    row = tab.page.locator(f"#account-list tr[data-login='{NEW_LOGIN}']")
    assert "灵山县" in row.inner_text()
    assert violations(tab) == []
    row.locator("form[action$='/invitation'] button[type=submit]").click()
    tab.page.wait_for_load_state()
    again = tab.page.input_value("#handover-link")
    assert "/accept-invitation#" in again
    assert again != link
    assert NEW_LOGIN in tab.page.locator("h1").inner_text()
    assert violations(tab) == []

    # Its owner opens the link, chooses a password, and signs in with it.
    owner = open_tab(browser, stack, viewport={"width": 1280, "height": 900}, locale="zh-CN")
    try:
        owner.page.goto(again)
        assert owner.page.url.endswith("/accept-invitation")  # the code went into the form, out of the address
        assert owner.page.input_value("#token") == again.split("#", 1)[1]
        assert violations(owner) == []
        owner.screenshot("accept-invitation")
        owner.page.fill("#password", "password123")
        owner.page.fill("#repeat", "password123")
        owner.page.click("main form button[type=submit]")
        assert owner.page.locator("[role=alert]").inner_text() in {
            CHINESE(MESSAGES[code]) for code in ("password_common", "password_weak")
        }
        owner.page.fill("#token", again.split("#", 1)[1])
        owner.page.fill("#password", "稻田 晚霞 竹篮 山歌")
        owner.page.fill("#repeat", "稻田 晚霞 竹篮 山歌")
        owner.page.click("main form button[type=submit]")
        expect(owner.page.locator("[role=status]")).to_be_visible()
        sign_in(owner, NEW_LOGIN, "稻田 晚霞 竹篮 山歌")
        owner.page.wait_for_url(re.compile(r"/today$"))
        assert owner.foreign(stack.console) == []
    finally:
        owner.page.context.close()


def test_the_admin_creates_a_campaign_and_reads_the_counties(tab: Visit, stack: Stack) -> None:
    sign_in(tab, *stack.login_of("admin"))
    tab.page.goto("/admin/campaigns")
    assert tab.page.locator("#campaign-list tr").count() >= 1  # the demo's campaign
    assert violations(tab) == []

    # Dated before the demo's campaign, so that the latest campaign (a page's default) stays the demo's.
    tab.page.fill("#f-name", CAMPAIGN)
    tab.page.fill("#f-starts_on", "2023-09-30")
    tab.page.fill("#f-ends_on", "2023-09-01")  # ends before it starts: refused beside the end
    tab.page.fill("#f-counties", "450325 450721")
    tab.page.fill("#f-goal_school_supplies", "120")
    tab.page.click("main form.campaign-form button[type=submit]")
    tab.page.wait_for_load_state()
    assert tab.page.locator("#f-ends_on").get_attribute("aria-invalid") == "true"
    assert tab.page.locator("main [role=alert]").is_visible()
    assert tab.page.input_value("#f-name") == CAMPAIGN
    assert violations(tab) == []
    tab.page.fill("#f-starts_on", "2023-09-01")
    tab.page.fill("#f-ends_on", "2023-09-30")
    tab.page.click("main form.campaign-form button[type=submit]")
    tab.page.wait_for_url(re.compile(r"/admin/campaigns\?created=[0-9a-f-]{36}$"))
    created = tab.page.url.rsplit("=", 1)[1]
    row = tab.page.locator(f"#campaign-list tr[data-campaign='{created}']")
    assert CAMPAIGN in row.inner_text()
    assert "灵山县" in row.inner_text()
    assert f"{CHINESE(LABELS['aid_kind']['school_supplies'])}: 120" in row.inner_text()
    assert violations(tab) == []
    tab.screenshot("admin-campaigns")

    tab.page.locator("main nav a[href='/admin/counties']").click()
    tab.page.wait_for_url(re.compile(r"/admin/counties$"))
    assert tab.page.locator("table.counties tbody tr").count() == 111  # Guangxi's county-level divisions
    xingan = tab.page.locator("tr[data-county='450325']")
    assert "兴安县" in xingan.inner_text()
    assert "Xing'an Xian" in xingan.inner_text()
    xingan.locator("a[href='/figures?area=450325']").click()
    tab.page.wait_for_url(re.compile(r"/figures\?area=450325$"))
    assert "兴安县" in tab.page.locator("h1").inner_text()
    tab.page.go_back()
    assert violations(tab) == []
    tab.screenshot("admin-counties")


def test_a_coordinator_is_refused_the_administration(tab: Visit, stack: Stack) -> None:
    sign_in(tab, *stack.login_of("coordinator"))
    assert tab.page.locator("header nav a[href='/admin/accounts']").count() == 0
    for path in ("/admin/accounts", "/admin/accounts/new", "/admin/campaigns", "/admin/counties"):
        answer = tab.page.goto(path)
        assert answer is not None
        assert answer.status == 403, path
        assert tab.page.locator("main [role=alert]").is_visible()
    assert violations(tab) == []
    csrf = str(tab.page.locator("input[name=csrf]").first.get_attribute("value"))
    refused = tab.page.request.post(f"{stack.console}/admin/campaigns", form={"csrf": csrf, "name": "x"})
    assert refused.status == 403
