"""Group commit: the small writes of requests that arrive together go in one transaction.

A service's database takes one writer at a time (SQLite's lock; on PostgreSQL the rows a command locks), and each
transaction costs a commit (an fsync) and a few round trips. Under a steady stream of single registrations that
cost, not the work, caps the rate: the requests queue for the writer. Here, while one transaction commits, the
requests that come meanwhile gather, and the next transaction writes them all. One item's failure fails only it:
a batch that fails is written again one item at a time.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """`await group(item)` writes `item` with whatever else is waiting, through `write(items) -> results` (one
    result per item, in order), at most `most` at a time, and returns its result or raises its error."""

    def __init__(self, write: Callable[[Sequence[T]], Awaitable[Sequence[R]]], *, most: int = 200) -> None:
        self.write, self.most = write, most
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None or self._writer.done():
            # In a context of its own: nothing of the request that happens to start it (its correlation id, what
            # it records) leaks into the others' writes.
            self._writer = asyncio.create_task(self._write_all(), context=contextvars.Context())
        return await future

    async def _write_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self.most], self._waiting[self.most :]
            try:
                results = await self.write([item for item, _ in batch])
            except Exception as error:
                if len(batch) == 1:
                    _settle(batch[0][1], error=error)
                    continue
                for item, future in batch:  # one at a time: only the culprit fails
                    try:
                        (result,) = await self.write([item])
                    except Exception as alone:
                        _settle(future, error=alone)
                    else:
                        _settle(future, result)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                _settle(future, result)


def _settle(future: asyncio.Future[R], result: R | None = None, *, error: Exception | None = None) -> None:
    if future.done():  # the request went away (its client disconnected); its item is written all the same
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]
