"""The console's own guards, in process: every form needs its CSRF token, the session cookie's flags, the headers
that keep a page's assets on the console's own address and out of caches."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from services.console.app import create_app
from services.console.pages import ROUTERS
from services.console.session import COOKIE, Sealer, Session
from services.console.settings import ConsoleSettings

SECRET = "a-test-secret-of-at-least-thirty-two-characters"


def client(environment: str = "development") -> TestClient:
    settings = ConsoleSettings(environment=environment, session_secret=SECRET)  # type: ignore[arg-type]
    return TestClient(create_app(settings), base_url="https://console.test")


@pytest.fixture
def signed_in() -> Iterator[TestClient]:
    with client() as console:
        session = Session(
            access_token="t", expires_at=time.time() + 600, sub="s", role="coordinator", counties=("450325",)
        )
        console.cookies.set(COOKIE, Sealer(SECRET).seal(session))
        yield console


def posts() -> list[str]:
    routes = [route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)]
    return sorted({route.path for route in routes if "POST" in route.methods})


def test_every_form_of_the_console_is_known() -> None:
    assert len(posts()) >= 15  # the list below is not empty by mistake


@pytest.mark.parametrize("path", posts())
def test_a_form_without_the_sessions_csrf_token_is_refused_before_anything_is_done(
    signed_in: TestClient, path: str
) -> None:
    concrete = re.sub(r"\{[^}]+\}", "0b0e5c3a-1d2e-4f5a-8b6c-7d8e9f0a1b2c", path)
    for token in (None, "forged"):
        form = {"csrf": token} if token else {}
        answer = signed_in.post(concrete, data=form, follow_redirects=False)
        assert answer.status_code == 403, (path, answer.status_code)
        assert "表单已过期" in answer.text  # said in words: reload and send again


def test_the_session_cookie_is_http_only_same_site_and_secure_outside_development() -> None:
    for environment, secure in (("production", True), ("development", False)):
        with client(environment) as console:
            cookie = console.get("/sign-in").headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert ("Secure" in cookie) is secure


def test_a_page_loads_nothing_from_elsewhere_and_is_never_cached() -> None:
    with client() as console:
        page = console.get("/sign-in")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["cache-control"] == "no-store"
    assert not re.search(r"""(src|href)=["']https?://""", page.text)


def test_the_development_session_secret_is_refused_outside_development() -> None:
    with pytest.raises(ValueError, match="SESSION_SECRET"):
        ConsoleSettings(environment="production")
