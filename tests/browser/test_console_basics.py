"""The console in Chromium: signing in, the coordinator's day, the language switch, accessibility, and no request
to any address but the console's own."""

from __future__ import annotations

import re
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.browser.conftest import Stack, Visit, sign_in

pytestmark = pytest.mark.browser
LABELS = "h1, h2, th, label, legend, button, nav a, .tile span:not(.count), .empty, head > title"


COORDINATOR_PAGES = (
    "/today",
    "/children",
    "/children/new",
    "/volunteers",
    "/children/import",
    "/visits",
    "/matching",
    "/pairings",
    "/figures",
    "/aid",
    "/inbox",
    "/messages",
)


def texts(visit: Visit) -> list[str]:
    """The page's labels: headings, column heads, form labels, buttons, the menu, tiles, empty-list notes (those
    with words in them)."""
    found = [text.strip() for text in visit.page.locator(LABELS).all_inner_texts()]
    return [text for text in found if re.search(r"[A-Za-z\u4e00-\u9fff]", text)]


def violations(visit: Visit) -> list[dict[str, Any]]:
    """What axe-core finds wrong on the page (every rule of WCAG 2.1 A and AA, and axe's best practices)."""
    results = Axe().run(visit.page)
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in results.response["violations"]
    ]


def test_a_coordinator_signs_in_and_sees_the_day_of_their_county(tab: Visit, stack: Stack) -> None:
    tab.page.goto("/today")  # not signed in: sent to sign in, and back here after
    assert "/sign-in" in tab.page.url
    assert violations(tab) == []
    tab.screenshot("sign-in")
    login, password = stack.login_of("coordinator")
    tab.page.fill("#login", login)
    tab.page.fill("#password", password)
    tab.page.click("form[action='/sign-in'] button[type=submit]")
    tab.page.wait_for_url(re.compile(r"/today$"))
    assert tab.page.locator("h1").inner_text() == "兴安县今日工作"
    assert int(tab.page.locator(".tile.risk-high .count").inner_text()) >= 0
    assert tab.page.locator("#overdue-title").is_visible()
    assert violations(tab) == []
    tab.screenshot("today")


def test_a_wrong_password_is_said_without_repeating_what_was_typed(tab: Visit, stack: Stack) -> None:
    login, _ = stack.login_of("coordinator")
    sign_in(tab, login, "not-the-password-at-all")
    assert tab.page.locator("[role=alert]").inner_text() == "登录名或密码不正确。"
    assert "not-the-password-at-all" not in tab.page.content()


def test_switching_to_english_and_back_changes_every_label(tab: Visit, stack: Stack) -> None:
    sign_in(tab, *stack.login_of("coordinator"))
    for path in COORDINATOR_PAGES:
        tab.page.goto(path)
        chinese = texts(tab)
        tab.page.get_by_role("link", name="English").click()
        tab.page.wait_for_load_state()
        english = texts(tab)
        assert tab.page.locator("html").get_attribute("lang") == "en"
        assert len(english) == len(chinese) > 3, path
        unchanged = [(zh, en) for zh, en in zip(chinese, english, strict=True) if zh == en]
        assert unchanged == [], path
        fixed = tab.page.locator("nav a, th, label, button").all_inner_texts()  # no data (names of places, campaigns)
        assert not [text for text in fixed if re.search(r"[\u4e00-\u9fff]", text)], path  # no Chinese left
        tab.screenshot(f"english-{path.strip('/').replace('/', '-')}")
        tab.page.get_by_role("link", name="中文").click()
        tab.page.wait_for_load_state()
        assert texts(tab) == chinese


def test_a_form_without_its_csrf_token_is_refused(tab: Visit, stack: Stack) -> None:
    sign_in(tab, *stack.login_of("coordinator"))
    answer = tab.page.request.post(f"{stack.console}/sign-out", form={"csrf": "forged"})
    assert answer.status == 403
    tab.page.goto("/today")
    assert tab.page.url.endswith("/today")  # still signed in: the forged sign-out did nothing
