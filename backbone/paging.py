"""Every list is paged: `?limit=&offset=` in, `{items, total, limit, offset}` out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class PageRequest:
    limit: Annotated[int, Query(ge=1, le=500, description="rows per page")] = 50
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="rows to skip")] = 0


Paging = Annotated[PageRequest, Depends()]


async def fetch_page(
    conn: AsyncConnection, query: Select[Any], paging: PageRequest, item: Callable[[Row[Any]], Item]
) -> Page[Item]:
    """Run an ordered query for one page, and count all its rows."""
    total = await conn.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = await conn.execute(query.limit(paging.limit).offset(paging.offset))
    return Page[Item](items=[item(row) for row in rows], total=total or 0, limit=paging.limit, offset=paging.offset)
