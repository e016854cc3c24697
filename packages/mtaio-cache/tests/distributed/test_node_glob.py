"""The glob matcher of SCAN MATCH and PSUBSCRIBE: Redis's semantics, without backtracking."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtaio.cache._node_glob import MAX_PATTERN, GlobPattern, pattern_error
from mtaio.cache.testing import RedisServer


def redis_stringmatchlen(pattern: bytes, string: bytes, nesting: int = 0) -> bool:
    """A line-by-line port of Redis 7.0's recursive ``stringmatchlen`` (the reference).

    Exponential on hostile input: only for the small cases the tests generate.
    """
    if nesting > 1000:
        return False
    p, s = 0, 0
    plen, slen = len(pattern), len(string)

    def at(i: int) -> int:  # C reads the NUL terminator past the end
        return pattern[i] if i < plen else 0

    while p < plen and s < slen:
        c = pattern[p]
        if c == 0x2A:  # *
            while p + 1 < plen and pattern[p + 1] == 0x2A:
                p += 1
            if p == plen - 1:
                return True
            while s < slen:
                if redis_stringmatchlen(pattern[p + 1 :], string[s:], nesting + 1):
                    return True
                s += 1
            return False
        if c == 0x3F:  # ?
            s += 1
        elif c == 0x5B:  # [
            p += 1
            negate = at(p) == 0x5E
            if negate:
                p += 1
            match = False
            while True:
                left = plen - p
                if at(p) == 0x5C and left >= 2:
                    p += 1
                    if pattern[p] == string[s]:
                        match = True
                elif at(p) == 0x5D:
                    break
                elif left == 0:
                    p -= 1
                    break
                elif left >= 3 and pattern[p + 1] == 0x2D:
                    lo, hi = sorted((pattern[p], pattern[p + 2]))
                    p += 2
                    if lo <= string[s] <= hi:
                        match = True
                elif pattern[p] == string[s]:
                    match = True
                p += 1
            if negate:
                match = not match
            if not match:
                return False
            s += 1
        else:
            if c == 0x5C and plen - p >= 2:
                p += 1
            if pattern[p] != string[s]:
                return False
            s += 1
        p += 1
        if s == slen:
            while p < plen and pattern[p] == 0x2A:
                p += 1
            break
    return p == plen and s == slen


ALPHABET = b"ab*?[]^-\\z"


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        (b"a*b", b"a--b", True),
        (b"a?", b"ax", True),
        (b"a?", b"axy", False),
        (b"[^a]x", b"bx", True),
        (b"[^a]x", b"ax", False),
        (b"[!a]x", b"!x", True),  # only ^ negates in Redis
        (b"[!a]x", b"bx", False),
        (b"\\*", b"*", True),
        (b"\\*", b"a", False),
        (b"[z-a]", b"m", True),  # a reversed range is the same range
        (b"[a-c]x", b"dx", False),
        (b"x[", b"x[", False),  # an empty unterminated class matches nothing
        (b"x[ab", b"xb", True),  # an unterminated class takes the rest of the pattern
        (b"a[]", b"a]", False),  # [] is an empty class
        (b"a[]", b"a", False),
        (b"[^", b"q", True),
        (b"[\\]]", b"]", True),
        (b"[a-]", b"^", True),  # "a-]" is the range ]..a, and the class is unterminated
        (b"*", b"", False),  # stringmatchlen never matches an empty string...
        (b"", b"", True),  # ...but the empty pattern
        (b"ab\\", b"ab\\", True),  # a final backslash is literal
        (b"**a**", b"xxa", True),
    ],
)
def test_redis_semantics(pattern: bytes, key: bytes, expected: bool) -> None:
    assert GlobPattern(pattern).match(key) is expected
    assert redis_stringmatchlen(pattern, key) is expected


def test_more_than_1000_star_groups_never_match_as_in_redis() -> None:
    pattern = b"a*" * 1001 + b"a"
    key = b"a" * 1002
    assert not GlobPattern(pattern).match(key)
    assert GlobPattern(b"a*" * 1000 + b"a").match(key)
    assert GlobPattern(b"a*" * 1001).match(key)  # a final star does not nest


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=12).map(lambda b: bytes(ALPHABET[x % len(ALPHABET)] for x in b)),
    st.binary(max_size=12).map(lambda b: bytes(b"abz^-[]\\*?"[x % 10] for x in b)),
)
def test_same_answers_as_the_redis_algorithm(pattern: bytes, key: bytes) -> None:
    assert GlobPattern(pattern).match(key) is redis_stringmatchlen(pattern, key)


def test_hostile_patterns_cost_linear_time() -> None:
    # 25 bytes of pattern that pin a regex engine (and Redis < 7.0.9) for hours.
    started = time.perf_counter()
    assert not GlobPattern(b"*a*a*a*a*a*a*a*a*a*a*a*a*b").match(b"a" * 60)
    assert not GlobPattern(b"*a" * 200 + b"*b").match(b"a" * 10_000)
    # Wildcards between stars: a naive search would try every place (10^4 x 10^4 steps).
    assert not GlobPattern(b"*" + b"?a" * 5000 + b"b*").match(b"a" * 100_000)
    assert not GlobPattern(b"*" + b"[a]" * 5000 + b"b*").match(b"a" * 100_000)
    assert GlobPattern(b"*" + b"?a" * 5000 + b"*").match(b"xa" * 60_000)
    assert time.perf_counter() - started < 2.0


def test_patterns_are_capped() -> None:
    assert repr(GlobPattern(b"a*")) == "GlobPattern(b'a*')"
    assert pattern_error(b"*" * MAX_PATTERN) is None
    assert "longer than" in str(pattern_error(b"*" * (MAX_PATTERN + 1)))


@pytest.mark.redis
async def test_same_answers_as_redis_server(
    redis_process: Callable[[], RedisServer],
) -> None:
    """Ask a real redis-server (SCAN MATCH over one key) and compare, case by case."""
    server = redis_process()
    client = aioredis.Redis(host=server.host, port=server.port, protocol=2)
    try:
        cases = [
            (b"[z-a]", b"m"),
            (b"x[ab", b"xb"),
            (b"a[]", b"a]"),
            (b"[a-]", b"^"),
            (b"[^", b"q"),
            (b"x[", b"x["),
            (b"[!a]x", b"!x"),
            (b"ab\\", b"ab\\"),
            (b"[\\]]", b"]"),
            (b"*a*a*b", b"aaaab"),
            (b"h?llo*[0-9]", b"hello world 7"),
        ]
        for pattern, key in cases:
            await client.flushdb()
            await client.set(key, b"1")
            _, keys = await client.scan(0, match=pattern, count=100)
            assert (key in keys) is GlobPattern(pattern).match(key), (pattern, key)
    finally:
        await client.aclose()
