"""CacheNode answers as redis-server does: the same random command sequences sent to both,
reply for reply (integers parsed as Redis, out-of-range expiries, repeated SET options,
EXPIRE NX/XX/GT/LT, absolute expiries).

Durations are drawn so that no comparison depends on the milliseconds between the two
servers: each valid duration of a sequence is a distinct whole number of 100-second steps.
TTL and PTTL replies are compared with a tolerance for the time the test itself takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtaio.cache import CacheNode
from mtaio.cache.testing import RedisServer

pytestmark = pytest.mark.redis

KEYS = st.sampled_from([b"a", b"b", b"c"])
DURATION = b"D"  # replaced by a distinct valid duration when the sequence runs
AT = b"T"  # replaced by now plus such a duration, as a Unix time
ODD_INTS = st.sampled_from(
    [
        b" 10",
        b"+10",
        b"1_0",
        b"010",
        b"-0",
        b"1.5",
        b"",
        b"ten",
        b"0",
        b"-1",
        b"-100",
        b"9223372036854775807",
        b"9223372036854775808",
        b"-9223372036854775808",
        b"-9223372036854775809",
        b"9223372036854775",  # EX just past what Redis can hold in milliseconds
        b"9223372036854776",
        b"9223370000000000000",  # PX that still fits after adding the clock
    ]
)
INTS = st.one_of(st.just(DURATION), st.just(DURATION), ODD_INTS)
FUTURE = st.one_of(st.just(AT), st.just(AT), ODD_INTS)
# A past time: EXPIREAT deletes at once. (SET ... EXAT <past> is left out: Redis 7.0 keeps
# such a key until its expiry cycle or a read reaps it, so DBSIZE would depend on timing.)
TIMES = st.one_of(FUTURE, st.just(b"1"))
SET_OPTION = st.one_of(
    st.sampled_from([[b"NX"], [b"XX"], [b"GET"], [b"KEEPTTL"], [b"nx"], [b"BOGUS"]]),
    st.tuples(st.sampled_from([b"EX", b"PX", b"ex"]), INTS).map(list),
    st.tuples(st.sampled_from([b"EXAT", b"PXAT"]), FUTURE).map(list),
)


def _set(key: bytes, value: bytes, options: list[list[bytes]]) -> list[bytes]:
    return [b"SET", key, value] + [word for option in options for word in option]


COMMANDS = st.one_of(
    st.builds(_set, KEYS, st.sampled_from([b"1", b"22"]), st.lists(SET_OPTION, max_size=3)),
    st.builds(lambda k: [b"GET", k], KEYS),
    st.builds(lambda ks: [b"DEL", *ks], st.lists(KEYS, min_size=1, max_size=3)),
    st.builds(lambda ks: [b"EXISTS", *ks], st.lists(KEYS, min_size=1, max_size=3)),
    st.builds(lambda ks: [b"MGET", *ks], st.lists(KEYS, min_size=1, max_size=3)),
    st.builds(
        lambda name, k, n, flags: [name, k, n, *flags],
        st.sampled_from([b"EXPIRE", b"PEXPIRE"]),
        KEYS,
        INTS,
        st.lists(st.sampled_from([b"NX", b"XX", b"GT", b"LT", b"gt", b"ZZ"]), max_size=2),
    ),
    st.builds(
        lambda name, k, t, flags: [name, k, t, *flags],
        st.sampled_from([b"EXPIREAT", b"PEXPIREAT"]),
        KEYS,
        TIMES,
        st.lists(st.sampled_from([b"NX", b"XX", b"GT", b"LT"]), max_size=1),
    ),
    st.builds(lambda name, k: [name, k], st.sampled_from([b"TTL", b"PTTL", b"PERSIST"]), KEYS),
    st.just([b"DBSIZE"]),
    st.sampled_from([[b"GET"], [b"SET", b"a"], [b"EXPIRE", b"a"], [b"TTL"]]),
)


async def read_reply(reader: asyncio.StreamReader) -> Any:
    line = await reader.readline()
    kind, body = line[:1], line[1:-2]
    if kind in (b"+", b"-", b":"):
        return (kind, body)
    length = int(body)
    if length < 0:
        return None
    if kind == b"$":
        return (await reader.readexactly(length + 2))[:-2]
    assert kind == b"*", line
    return [await read_reply(reader) for _ in range(length)]


class Peer:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def call(self, *args: bytes) -> Any:
        self.writer.write(b"*%d\r\n" % len(args))
        for arg in args:
            self.writer.write(b"$%d\r\n%b\r\n" % (len(arg), arg))
        async with asyncio.timeout(5):
            return await read_reply(self.reader)


@contextlib.asynccontextmanager
async def peer(address: tuple[str, int]) -> AsyncIterator[Peer]:
    reader, writer = await asyncio.open_connection(*address)
    try:
        yield Peer(reader, writer)
    finally:
        writer.close()


def close_enough(command: bytes, ours: Any, theirs: Any) -> bool:
    if ours == theirs:
        return True
    if command.upper() not in (b"TTL", b"PTTL") or ours[0] != b":" or theirs[0] != b":":
        return False
    a, b = int(ours[1]), int(theirs[1])
    if min(a, b) < 0:
        return False
    slack = 2 if command.upper() == b"TTL" else 2000  # the test's own time, on a busy machine
    return abs(a - b) <= max(slack, abs(b) * 1e-9)  # float seconds hold ~15 digits


@pytest.fixture
async def pair(
    redis_process: Callable[[], RedisServer],
) -> AsyncIterator[tuple[Peer, Peer]]:
    server = redis_process()
    async with (
        CacheNode("compat") as node,
        peer(node.address) as ours,
        peer(server.address) as theirs,
    ):
        yield ours, theirs


@settings(
    max_examples=int(os.environ.get("MTAIO_COMPAT_EXAMPLES", "80")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(COMMANDS, min_size=1, max_size=25), st.randoms(use_true_random=False))
async def test_same_replies_as_redis_server(
    pair: tuple[Peer, Peer], commands: list[list[bytes]], rng: Any
) -> None:
    ours, theirs = pair
    assert await ours.call(b"FLUSHALL") == await theirs.call(b"FLUSHALL")
    steps = list(range(1, 200))
    rng.shuffle(steps)
    for command in commands:
        args = []
        for i, arg in enumerate(command):
            if arg in (DURATION, AT):  # a distinct number of 100 s steps, in its unit
                seconds = steps.pop() * 100 + (int(time.time()) if arg == AT else 0)
                in_ms = command[i - 1].upper() in (b"PX", b"PXAT") or command[0] in (
                    b"PEXPIRE",
                    b"PEXPIREAT",
                )
                arg = b"%d" % (seconds * 1000 if in_ms else seconds)
            args.append(arg)
        mine = await ours.call(*args)
        real = await theirs.call(*args)
        assert close_enough(args[0], mine, real), (args, mine, real)


async def test_odd_integers_and_expiries_by_example(pair: tuple[Peer, Peer]) -> None:
    ours, theirs = pair
    for args in [
        [b"SET", b"k", b"v", b"EX", b" 10"],
        [b"SET", b"k", b"v", b"EX", b"+10"],
        [b"SET", b"k", b"v", b"EX", b"1_0"],
        [b"SET", b"k", b"v", b"EX", b"10", b"EX", b"20"],
        [b"TTL", b"k"],
        [b"SET", b"k", b"v", b"EX", b"10", b"PX", b"20"],
        [b"SET", b"k", b"v", b"EX", b"9223372036854775"],
        [b"EXPIRE", b"k", b"100", b"NX"],
        [b"EXPIRE", b"k", b"100", b"GT"],
        [b"EXPIRE", b"k", b"5", b"LT"],
        [b"TTL", b"k"],
        [b"PERSIST", b"k"],
        [b"EXPIRE", b"k", b"100", b"XX"],
        [b"EXPIRE", b"k", b"100", b"NX", b"XX"],
        [b"EXPIRE", b"k", b"100", b"GT", b"LT"],
        [b"EXPIRE", b"k", b"9223372036854776"],
        [b"PEXPIRE", b"k", b"9223372036854775807"],
        [b"EXPIRE", b"k", b"-1"],
        [b"EXISTS", b"k"],
    ]:
        mine = await ours.call(*args)
        real = await theirs.call(*args)
        assert close_enough(args[0], mine, real), (args, mine, real)
