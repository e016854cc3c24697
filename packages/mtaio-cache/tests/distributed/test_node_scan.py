"""SCAN over the node's slot table: Redis's guarantee under concurrent changes, O(COUNT) calls."""

from __future__ import annotations

import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from mtaio.cache import CacheNode
from mtaio.cache._node_scan import KeySlots
from mtaio.typing import ManualClock

OPS = st.lists(
    st.tuples(st.sampled_from(["add", "del", "scan"]), st.integers(0, 40), st.integers(1, 6)),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(st.sets(st.integers(0, 40)), OPS)
def test_every_key_present_for_the_whole_scan_is_returned(
    initial: set[int], ops: list[tuple[str, int, int]]
) -> None:
    table = KeySlots()
    live: set[bytes] = set()
    for i in initial:
        table.add(b"%d" % i)
        live.add(b"%d" % i)
    always = set(live)  # present from start to end
    seen: list[bytes] = []
    cursor = 0
    started = False
    for op, i, count in ops:
        key = b"%d" % i
        if op == "add":
            table.add(key)
            live.add(key)
        elif op == "del":
            table.discard(key)
            live.discard(key)
            always.discard(key)
        else:
            if started and cursor == 0:
                continue  # that scan is over; changes go on
            cursor, keys = table.scan(cursor, count)
            assert len(keys) <= count
            seen += keys
            started = True
    # Finish the scan (or run a whole one if none started), with no more changes.
    if not (started and cursor == 0):
        while True:
            cursor, keys = table.scan(cursor, 3)
            seen += keys
            if cursor == 0:
                break
    assert always <= set(seen)
    assert len(table) == len(live) and all(k in table for k in live)
    assert table.size <= 41


def test_the_table_reuses_slots_and_shrinks_from_its_end() -> None:
    table = KeySlots()
    for i in range(10):
        table.add(b"%d" % i)
    table.add(b"3")  # already there
    assert table.size == 10
    table.discard(b"3")
    table.discard(b"missing")
    table.add(b"new")  # takes slot 3
    assert table.size == 10
    for i in range(4, 10):
        table.discard(b"%d" % i)
    assert table.size == 4
    table.add(b"x")
    assert table.size == 5
    for key in (b"0", b"1", b"2", b"new", b"x"):
        table.discard(key)
    assert table.size == 0 and len(table) == 0
    table.add(b"again")
    assert table.scan(0, 10) == (0, [b"again"])
    table.clear()
    assert table.scan(0, 10) == (0, [])


def test_a_scan_call_looks_at_a_bounded_number_of_slots() -> None:
    table = KeySlots()
    for i in range(10_000):
        table.add(b"%d" % i)
    for i in range(10_000 - 1):
        if i % 1000:
            table.discard(b"%d" % i)
    cursor, keys = table.scan(0, 1)
    assert keys == [b"0"] and cursor == 1
    cursor, keys = table.scan(1, 1)
    assert keys == [] and cursor == 11  # ten empty slots, then it returns
    assert table.scan(10_000, 5) == (0, [])  # a cursor past the end ends the scan


async def test_scan_through_the_node_with_changes_between_calls(clock: ManualClock) -> None:
    async with CacheNode("s", clock=clock, max_items=1000) as node:
        host, port = node.address
        client = aioredis.Redis(host=host, port=port, protocol=2)
        try:
            for i in range(300):
                await client.set(f"keep:{i}", b"x")
            for i in range(50):
                await client.set(f"gone:{i}", b"x", px=500)
            seen: set[bytes] = set()
            cursor = 0
            step = 0
            while True:
                cursor, keys = await client.scan(cursor, count=17, match="keep:*")
                seen.update(k for k in keys if isinstance(k, bytes))
                step += 1
                await client.set(f"new:{step}", b"y")  # changes between calls
                await client.delete(f"gone:{step}")
                if step == 3:
                    clock.advance(1.0)  # the rest of gone:* expire mid-scan
                if cursor == 0:
                    break
            assert seen == {b"keep:%d" % i for i in range(300)}
            assert step < 300 // 17 + 10
            assert await client.dbsize() == 300 + step
            # Expired keys leave the SCAN table too.
            assert len(node._keyspace.slots) <= 300 + step + 50
            await client.flushdb()
            assert await client.scan(0) == (0, [])
        finally:
            await client.aclose()
