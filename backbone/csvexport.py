"""CSV export of any list: UTF-8 with a BOM, so that Excel on a Chinese Windows opens it as it should."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import Response
from pydantic import BaseModel


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
