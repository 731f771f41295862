"""`make messages`: find every string the console shows (gettext calls in its Python and templates) and bring both
languages' catalogues up to date. New strings get an empty Chinese translation to fill in; English, the language
the strings are written in, gets the string itself. `python -m deploy.messages --check` only reports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po, write_po

from services.console.i18n import DOMAIN, LANGUAGES, Language, catalogue_path

CONSOLE = Path(__file__).resolve().parent.parent / "services" / "console"
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}}
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None}


def extracted() -> Catalog:
    """Every message the console's code and templates mark, as a template catalogue."""
    template = Catalog(domain=DOMAIN)
    for _file, _line, message, _comments, context in extract_from_dir(
        CONSOLE, METHODS, OPTIONS, KEYWORDS, strip_comment_tags=True
    ):
        template.add(message, context=context)
    return template


def current(language: Language) -> Catalog:
    with catalogue_path(language).open("rb") as source:
        return read_po(source, locale=LANGUAGES[language], domain=DOMAIN)


def updated(language: Language, template: Catalog) -> Catalog:
    catalog = current(language) if catalogue_path(language).exists() else Catalog(locale=LANGUAGES[language])
    catalog.update(template, no_fuzzy_matching=True)
    catalog.obsolete.clear()
    if language == "en":
        for message in catalog:
            if message.id and not (all(message.string) if isinstance(message.string, tuple) else message.string):
                message.string = message.id
    return catalog


def problems() -> list[str]:
    """What keeps the catalogues from covering the console: a string missing from a language, or untranslated."""
    template, found = extracted(), []
    for language in LANGUAGES:
        catalog = current(language)
        for message in template:
            if not message.id:
                continue
            known = catalog.get(message.id)
            if known is None:
                found.append(f"{language}: missing {message.id!r}")
            elif not known.string or (isinstance(known.string, tuple) and not all(known.string)) or known.fuzzy:
                found.append(f"{language}: not translated {message.id!r}")
        extra = {m.id for m in catalog if m.id} - {m.id for m in template if m.id}
        found += [f"{language}: no longer used {message!r}" for message in sorted(extra, key=str)]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.messages")
    parser.add_argument("--check", action="store_true", help="only report what is missing or untranslated")
    args = parser.parse_args(argv)
    if not args.check:
        template = extracted()
        for language in LANGUAGES:
            catalog = updated(language, template)  # read before the file is opened for writing, which empties it
            path = catalogue_path(language)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as target:
                write_po(target, catalog, omit_header=True, no_location=True, sort_output=True)
    found = problems()
    print("\n".join(found) or "both catalogues cover every message")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
