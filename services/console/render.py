"""Pages rendered from Jinja2 templates in the reader's language: one environment per language, autoescaped, with
gettext from that language's catalogue and the labels of the programme's words."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from contracts.counties import county
from services.console import errors, labels
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
        environment.filters["local_time"] = local_time
        return environment

    def render(self, request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        lang = language(request)
        session = session_of(request)

        def page_query(number: int) -> str:
            return urlencode({**request.query_params, "page": number})

        page = (
            self.environments[lang]
            .get_template(template)
            .render(
                lang=lang,
                session=session,
                csrf=session.csrf,
                path=request.url.path,
                query=request.url.query,
                page_query=page_query,
                **values,
            )
        )
        return HTMLResponse(page, status_code=status)
