"""CSV export of any list: UTF-8 with a BOM, so that Excel on a Chinese Windows opens it as it should."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import Response
from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone.errors import ApiError


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
    if isinstance(value, list):
        return ";".join(str(item) for item in value)
    return str(value)
