"""Streams agree with plain list computations on arbitrary inputs (hypothesis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from hypothesis import given, settings
from hypothesis import strategies as st

from mtaio.data import Stream

ints = st.lists(st.integers(-1000, 1000), max_size=60)


async def agen(items: list[int]) -> AsyncIterator[int]:
    for x in items:
        yield x


@settings(max_examples=25, deadline=None)
@given(ints, st.integers(1, 5), st.integers(1, 6), st.integers(1, 6), st.integers(0, 70))
def test_operators_match_list_semantics(
    items: list[int], k: int, size: int, step: int, n: int
) -> None:
    async def check() -> None:
        for source in (items, agen(items)):
            got = await (
                Stream.from_iterable(source)
                .map(lambda x: x * k)
                .filter(lambda x: x % 3 != 0)
                .map(lambda x: x - 1)
                .to_list()
            )
            assert got == [x * k - 1 for x in items if (x * k) % 3 != 0]
        windows = await Stream(agen(items)).window(size, step).to_list()
        assert windows == [items[i : i + size] for i in range(0, len(items) - size + 1, step)]
        batches = await Stream(items).batch(size).to_list()
        assert batches == [items[i : i + size] for i in range(0, len(items), size)]
        assert await Stream(agen(items)).skip(step).take(n).to_list() == items[step:][:n]
        assert await Stream(items).distinct().to_list() == list(dict.fromkeys(items))

    asyncio.run(check())
