"""Pages rendered from Jinja2 templates in the reader's language: one environment per language, autoescaped, with
gettext from that language's catalogue and the labels of the programme's words. A page is rendered as it is sent,
with the menu's unread badge, asked for when the request came in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.types import Receive, Scope, Send

from contracts.counties import county
from services.console import deliveries, errors, inbox, labels
from services.console.i18n import LANGUAGES, Catalogues, Language
from services.console.web import language, session_of

TEMPLATES = Path(__file__).parent / "templates"
CHINA = ZoneInfo("Asia/Shanghai")


def child_ref(child_id: str) -> str:
    """How a list names a child without personal data: the first eight characters of the child's id."""
    return str(child_id)[:8].upper()


def county_namer(lang: Language) -> Any:
    def county_name(code: str) -> str:
        known = county(code)
        if known is None:
            return code
        return known.name_zh if lang == "zh-CN" else known.name_pinyin

    return county_name


def local_time(value: str | None, with_time: bool = True) -> str:
    """An API's ISO 8601 time as the programme's clock reads it (China), or an empty string for none."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value).astimezone(CHINA)
    return moment.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def badge(request: Request) -> asyncio.Future[int | None] | None:
    """The signed-in reader's unread count for the menu, asked for once per request and token: the app asks at the
    request's start, so that it arrives while the page's own calls are out."""
    session = session_of(request)
    if not session.signed_in:
        return None
    asked: list[tuple[str | None, asyncio.Future[int | None]]] = getattr(request.state, "badges", [])
    request.state.badges = asked
    if asked and asked[-1][0] == session.access_token:
        return asked[-1][1]
    upstream = request.app.state.upstream
    future: asyncio.Future[int | None] = asyncio.ensure_future(inbox.unread(upstream, session))
    asked.append((session.access_token, future))  # a token renewed by the page asks again, with the new one
    return future


def drop_badges(request: Request) -> None:
    """Drop the unread counts a request asked for and did not show (it answered with no page)."""
    for _, future in getattr(request.state, "badges", ()):
        future.cancel()


class Page(HTMLResponse):
    """A page whose HTML is made as it is sent, once the menu's unread count has come (or, briefly, has not)."""

    def __init__(self, make: Callable[[int | None], str], badge: asyncio.Future[int | None] | None, status: int):
        super().__init__(b"", status_code=status)
        self.make, self.badge = make, badge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.body = self.make(await inbox.awaited(self.badge)).encode(self.charset)
        self.headers["content-length"] = str(len(self.body))
        await super().__call__(scope, receive, send)


class Pages:
    def __init__(self, catalogues: Catalogues) -> None:
        self.environments = {lang: self._environment(catalogues, lang) for lang in LANGUAGES}

    def _environment(self, catalogues: Catalogues, lang: Language) -> Environment:
        environment = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True),
            undefined=StrictUndefined,
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
        )
        translations = catalogues.translations[lang]
        environment.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
        environment.globals["label"] = labels.labeller(translations.gettext)
        environment.globals["error_message"] = lambda code: errors.message(code, translations.gettext)
        environment.globals["field_hint"] = labels.hinter(translations.gettext)
        environment.globals["county_name"] = county_namer(lang)
        environment.globals["child_ref"] = child_ref
        environment.globals["send_error"] = lambda code: deliveries.error_words(code, translations.gettext)
        environment.filters["local_time"] = local_time
        return environment

    def render(self, request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        lang = language(request)
        session = session_of(request)
        chosen = self.environments[lang].get_template(template)

        def page_query(number: int) -> str:
            return urlencode({**request.query_params, "page": number})

        def make(unread: int | None) -> str:
            return chosen.render(
                lang=lang,
                session=session,
                csrf=session.csrf,
                path=request.url.path,
                query=request.url.query,
                page_query=page_query,
                unread=unread,
                **values,
            )

        return Page(make, badge(request), status)
