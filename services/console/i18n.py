"""The console's languages: zh-CN by default, English one switch away. Every string a page shows comes from the
message catalogues in `locale/` (gettext .po files, read at start-up), never from code."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

Language = Literal["zh-CN", "en"]
LANGUAGES: dict[Language, str] = {"zh-CN": "zh_CN", "en": "en"}  # a page's language → its catalogue
DEFAULT: Language = "zh-CN"
COOKIE = "console_lang"
DOMAIN = "console"
LOCALE_DIR = Path(__file__).parent / "locale"


def N_(message: str) -> str:
    """Mark `message` for the catalogue; it is translated where it is shown, in the reader's language."""
    return message


def language_of(cookie: str | None) -> Language:
    return cookie if cookie in LANGUAGES else DEFAULT


def catalogue_path(language: Language) -> Path:
    return LOCALE_DIR / LANGUAGES[language] / "LC_MESSAGES" / f"{DOMAIN}.po"


def load(language: Language) -> Translations:
    """The language's catalogue, compiled in memory from its .po file (no compiled file is kept in the tree)."""
    with catalogue_path(language).open("rb") as source:
        catalog = read_po(source, locale=LANGUAGES[language], domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


class Catalogues:
    """Both languages' translations, loaded once."""

    def __init__(self) -> None:
        self.translations = {language: load(language) for language in LANGUAGES}

    def translator(self, language: Language) -> Callable[[str], str]:
        return self.translations[language].gettext
