"""CSV export of any list: UTF-8 with a BOM, so that Excel on a Chinese Windows opens it as it should, and no cell a
spreadsheet would take for a formula."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from fastapi import Response
from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone.errors import ApiError

# OWASP's CSV-injection rule (with ASVS's NUL): a spreadsheet evaluates a cell starting with one of these. Their
# full-width forms, which a Chinese input method types, are prefixed too: no name or place starts with one, and
# whether Excel or WPS reads them as a formula is not something to rely on.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\0", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")  # a negative amount: the spreadsheet reads a number, runs nothing


async def export_rows(conn: AsyncConnection, query: Select[Any], limit: int) -> list[Row[Any]]:
    """The rows of `query` for an export: all of them, or a 422 asking for a narrower filter (never a cut file)."""
    rows: list[Row[Any]] = list((await conn.execute(query.limit(limit + 1))).all())
    if len(rows) > limit:
        raise ApiError(422, "export_too_large", f"over {limit:,} rows: narrow the filter", {"limit": limit})
    return rows


def csv_response(rows: Iterable[BaseModel], fields: Sequence[str], filename: str) -> Response:
    """One row per item; lists are joined with ';' (as the imports read them back)."""
    dumped = (row.model_dump(mode="json", include=set(fields)) for row in rows)
    return csv_table(fields, ([values.get(field) for field in fields] for values in dumped), filename)


def csv_table(header: Sequence[str], rows: Iterable[Sequence[Any]], filename: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(value) for value in row])
    return Response(
        ("\ufeff" + out.getvalue()).encode(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int | float | Decimal):
        return str(value)  # a number is data whatever its sign (bool, an int, reads True or False)
    if isinstance(value, list):
        return neutralised(";".join(str(item) for item in value))
    return neutralised(str(value))


def neutralised(text: str) -> str:
    """The text with a leading apostrophe if a spreadsheet would take it for a formula, so that it shows as text;
    a plain number (-12.50) stays as it is."""
    if text.startswith(FORMULA_STARTS) and _PLAIN_NUMBER.fullmatch(text) is None:
        return "'" + text
    return text


def read_back(text: str) -> str:
    """A cell of an exported file as it was before `neutralised`, so that an export imported again keeps its values."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text
