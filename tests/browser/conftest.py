"""Browser tests: the stack `make run` starts (NATS, the three services, the console, demo data and accounts), driven
in Debian's headless Chromium through Playwright. No browser is downloaded: without /usr/bin/chromium the tests say
so and skip, except under CI, where they fail."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Playwright, Request, sync_playwright

from backbone.natsserver import free_port
from tests.conftest import IN_CI
from tests.makerun import interrupt, printed_accounts, start

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
# As the machine's own probe starts it: no sandbox (root), and nothing reaching for Google's services.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every browser test in one worker of a parallel run (make test's --dist loadgroup): they share one stack."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("browser"))


@dataclass
class Stack:
    urls: dict[str, str]
    accounts: dict[str, tuple[str, str]]  # login -> (role, password)

    @property
    def console(self) -> str:
        return self.urls["console"]

    def login_of(self, role: str, who: str = "") -> tuple[str, str]:
        """The first printed account of `role` (whose line mentions `who`)."""
        for login, (other, password) in self.accounts.items():
            if other == role and who in self.accounts_lines.get(login, ""):
                return login, password
        raise LookupError(role)

    accounts_lines: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")  # processes of its own: a worker that runs other tests in between keeps it
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("make-run")
    ports = {name: free_port() for name in ("registry", "matching", "notifications", "console")}
    runner, lines = start(data, ports)
    output = "".join(lines)
    try:
        accounts = printed_accounts(output)
        described = {line.split()[0]: line for line in lines if line.startswith("  ") and line.split()}
        yield Stack({name: f"http://127.0.0.1:{port}" for name, port in ports.items()}, accounts, described)
    finally:
        interrupt(runner)


# Package-scoped, not session-scoped: Playwright's sync API runs an event loop in the thread for as long as it is
# open, and the asyncio tests that follow in the same process could not run their own.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    if not shutil.which(CHROMIUM):
        message = f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
    yield chromium
    chromium.close()


@dataclass
class Visit:
    """A browser tab on the console, and every request its pages made."""

    page: Page
    requests: list[str] = field(default_factory=list)

    def foreign(self, origin: str) -> list[str]:
        """Requests that went anywhere but the console itself (data: URLs stay in the page)."""
        own = urlsplit(origin).netloc
        return [url for url in self.requests if not url.startswith("data:") and urlsplit(url).netloc != own]

    def screenshot(self, name: str) -> Path:
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTEFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def open_tab(browser: Browser, stack: Stack, **options: object) -> Visit:
    context = browser.new_context(base_url=stack.console, **options)  # type: ignore[arg-type]
    visit = Visit(context.new_page())

    def seen(request: Request) -> None:
        visit.requests.append(request.url)

    context.on("request", seen)
    return visit


@pytest.fixture
def tab(browser: Browser, stack: Stack) -> Iterator[Visit]:
    visit = open_tab(browser, stack, viewport={"width": 1280, "height": 900}, locale="zh-CN")
    yield visit
    assert visit.foreign(stack.console) == []  # no page asked anything of another address
    visit.page.context.close()


def sign_in(visit: Visit, login: str, password: str) -> None:
    visit.page.goto("/sign-in")
    visit.page.fill("#login", login)
    visit.page.fill("#password", password)
    visit.page.click("form[action='/sign-in'] button[type=submit]")
    visit.page.wait_for_load_state()
