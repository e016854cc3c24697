from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtaio.cache import RespProtocolError
from mtaio.cache._resp import RespError, RespParser, encode_reply


def pack(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


def test_parses_arrays_and_inline_commands() -> None:
    p = RespParser()
    data = pack(b"SET", b"k", b"v\r\nx") + b"PING  hello\r\n" + pack(b"GET", b"k")
    assert p.feed(data) == [[b"SET", b"k", b"v\r\nx"], [b"PING", b"hello"], [b"GET", b"k"]]
    assert p.buffered == 0


def test_keeps_progress_across_chunks() -> None:
    p = RespParser()
    data = pack(b"SET", b"key", b"x" * 1000) * 3
    out: list[list[bytes]] = []
    for i in range(0, len(data), 7):
        out += p.feed(data[i : i + 7])
    assert out == [[b"SET", b"key", b"x" * 1000]] * 3


def test_empty_and_null_arrays_and_blank_lines_are_skipped() -> None:
    assert RespParser().feed(b"*0\r\n*-1\r\n\r\n" + pack(b"PING")) == [[b"PING"]]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"*2\r\n:1\r\n", "expected a bulk string"),
        (b"*x\r\n", "invalid array length"),
        (b"*-2\r\n", "invalid array length"),
        (b"*1\r\n$-1\r\n", "null bulk string"),
        (b"*1\r\n$3\r\nabcXY", "not terminated"),
        (b"*1\r\n$999999999\r\n", "exceeds the limit"),
        (b"*99999999\r\n", "exceeds the limit"),
        (b"*" + b"1" * 40, "header too long"),
        (b"P" * 70000, "inline command too long"),
        (b"P" * 70000 + b"\n", "inline command too long"),
    ],
)
def test_malformed_or_oversized_input_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(RespProtocolError, match=message):
        RespParser(max_bulk=1000, max_array=1000).feed(data)


def test_total_request_size_is_capped() -> None:
    p = RespParser(max_bulk=100, max_request=250)
    with pytest.raises(RespProtocolError, match="request of more than 250"):
        p.feed(pack(b"MGET", *[b"k" * 100] * 3))


def test_encode_reply() -> None:
    assert encode_reply(b"ab") == b"$2\r\nab\r\n"
    assert encode_reply(None) == b"$-1\r\n"
    assert encode_reply(True) == b":1\r\n"
    assert encode_reply(False) == b":0\r\n"
    assert encode_reply(-5) == b":-5\r\n"
    assert encode_reply("OK") == b"+OK\r\n"
    assert encode_reply(RespError("ERR bad\r\n+FORGED")) == b"-ERR bad  +FORGED\r\n"
    assert encode_reply([b"a", 1, [None]]) == b"*3\r\n$1\r\na\r\n:1\r\n*1\r\n$-1\r\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_hostile_bytes_never_crash_the_parser(data: bytes, chunk: int) -> None:
    p = RespParser(max_bulk=64, max_array=8, max_inline=64, max_request=256)
    try:
        for i in range(0, len(data), chunk):
            for command in p.feed(data[i : i + chunk]):
                assert command and all(isinstance(a, bytes) for a in command)
    except RespProtocolError:
        pass
    assert p.buffered <= len(data)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.binary(max_size=40), min_size=1, max_size=5), max_size=5),
    st.integers(min_value=1, max_value=30),
)
def test_any_split_of_valid_requests_parses_the_same(
    commands: list[list[bytes]], chunk: int
) -> None:
    data = b"".join(pack(*c) for c in commands)
    p = RespParser()
    out: list[list[bytes]] = []
    for i in range(0, len(data), chunk):
        out += p.feed(data[i : i + chunk])
    assert out == commands


def test_commands_before_bad_bytes_are_returned_then_the_error() -> None:
    p = RespParser()
    assert p.feed(b"PING\r\n*x\r\n") == [[b"PING"]]
    assert p.error is not None and "invalid array length" in str(p.error)
    with pytest.raises(RespProtocolError):
        p.feed(b"PING\r\n")
