"""Fuzzing a CacheNode with random and mutated RESP frames.

Each example sends one batch (valid commands, then mutated: bytes flipped, inserted, cut)
on a new connection to a node in a child process; after each batch a fresh client must get
PING, SET and GET answered correctly, and at the end the node's memory (RSS) must not have
grown by more than a few MiB. CI runs a bounded number of examples; set
``MTAIO_FUZZ_EXAMPLES`` (for example to 20000) for a longer run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .test_node_limits import Child, MiB, child_node, pack

EXAMPLES = int(os.environ.get("MTAIO_FUZZ_EXAMPLES", "120"))

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/status"), reason="RSS is read from /proc (Linux)"
)

NAMES = st.sampled_from(
    [
        b"PING", b"ECHO", b"GET", b"SET", b"MGET", b"DEL", b"EXISTS", b"EXPIRE", b"PEXPIRE",
        b"PERSIST", b"TTL", b"PTTL", b"SCAN", b"DBSIZE", b"INFO", b"CLIENT", b"HELLO", b"AUTH",
        b"SELECT", b"COMMAND", b"PUBLISH", b"SUBSCRIBE", b"PSUBSCRIBE", b"UNSUBSCRIBE",
        b"PUNSUBSCRIBE", b"PUBSUB", b"RESET", b"NOSUCH", b"set", b"scan",
    ]
)  # fmt: skip
ARGS = st.one_of(
    st.sampled_from(
        [b"k", b"0", b"-1", b"EX", b"PX", b"NX", b"GT", b"MATCH", b"COUNT", b"*a*[b-", b"[", b"10"]
    ),
    st.binary(max_size=40),
)
COMMAND = st.builds(lambda name, args: [name, *args], NAMES, st.lists(ARGS, max_size=5))
MUTATION = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "cut"]),
    st.integers(min_value=0, max_value=1 << 16),
    st.binary(min_size=1, max_size=8),
)


def mutate(data: bytes, mutations: list[tuple[str, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for kind, where, junk in mutations:
        if not buf:
            buf += junk
            continue
        at = where % len(buf)
        if kind == "flip":
            buf[at] ^= junk[0] or 1
        elif kind == "insert":
            buf[at:at] = junk
        elif kind == "delete":
            del buf[at : at + len(junk)]
        else:
            del buf[at:]
    return bytes(buf)


FRAMES = st.one_of(
    st.binary(max_size=300),  # pure noise
    st.builds(
        lambda commands, mutations: mutate(b"".join(pack(*c) for c in commands), mutations),
        st.lists(COMMAND, min_size=1, max_size=8),
        st.lists(MUTATION, max_size=3),
    ),
    st.builds(  # inline commands
        lambda commands: b"".join(b" ".join(c).replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"
                                  for c in commands),
        st.lists(COMMAND, min_size=1, max_size=4),
    ),
)  # fmt: skip


@pytest.fixture
async def fuzzed_node() -> AsyncIterator[Child]:
    """One node for the whole fuzz run (hypothesis reuses function-scoped fixtures)."""
    async with child_node(node={"max_items": 1000, "idle_timeout": 2.0}) as child:
        yield child


async def exchange(address: tuple[str, int], data: bytes) -> None:
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(data)
        writer.write_eof()
        async with asyncio.timeout(10):  # the node answers and closes; it never hangs
            while await reader.read(1 << 16):
                pass
    except ConnectionError:
        pass  # the node may reset a connection it closed with unread input
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def healthy(address: tuple[str, int], token: bytes) -> None:
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(b"PING\r\n" + pack(b"SET", b"fuzz:probe", token) + pack(b"GET", b"fuzz:probe"))
        async with asyncio.timeout(5):
            assert await reader.readline() == b"+PONG\r\n"
            assert await reader.readline() == b"+OK\r\n"
            assert await reader.readline() == b"$%d\r\n" % len(token)
            assert await reader.readline() == token + b"\r\n"
    finally:
        writer.close()


class Memory:
    baseline = 0


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=FRAMES, token=st.binary(min_size=1, max_size=16).map(lambda b: b.hex().encode()))
async def test_fuzzed_frames_never_break_the_node(
    fuzzed_node: Child, data: bytes, token: bytes
) -> None:
    await exchange(fuzzed_node.address, data)
    await healthy(fuzzed_node.address, token)
    rss = fuzzed_node.rss()
    if not Memory.baseline:
        Memory.baseline = rss
    assert rss - Memory.baseline < 48 * MiB, f"the node grew {(rss - Memory.baseline) / MiB} MiB"
