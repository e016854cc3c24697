"""The invalidation messages of LayeredCache: what parse() accepts, and what it refuses.

Everything read from the channel is untrusted: parse() must turn anything but a valid
message into a ValueError (the cache then flushes its local tier), never another error.
"""

from __future__ import annotations

import json

import pytest

from mtaio.cache._layered_bus import MAX_MESSAGE, notice, own_suffix, parse

ME = "0123456789abcdef"
SUFFIX = own_suffix(ME)


def _payload(body: dict[str, object], sender: str = "other") -> bytes:
    command = notice(b"chan", sender, body)
    assert command[:2] == (b"PUBLISH", b"chan")
    payload = command[2]
    assert isinstance(payload, bytes)
    return payload


def test_messages_round_trip() -> None:
    assert parse(_payload({"k": ["a", "b"]}), ME, SUFFIX) == ("k", ["a", "b"])
    assert parse(_payload({"t": ["org:3"]}), ME, SUFFIX) == ("t", ["org:3"])
    assert parse(_payload({"c": 1}), ME, SUFFIX) == ("c", [])


def test_own_messages_are_skipped_undecoded() -> None:
    mine = _payload({"k": ["a"]}, sender=ME)
    assert mine.endswith(SUFFIX)
    assert parse(mine, ME, SUFFIX) is None
    # A sender field elsewhere than last (not how notice() writes) is still recognised.
    assert parse(json.dumps({"s": ME, "k": ["a"]}).encode(), ME, SUFFIX) is None
    # Another process's message that merely contains our id is not ours.
    assert parse(_payload({"k": [ME]}), ME, SUFFIX) == ("k", [ME])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ("not bytes", "not bytes"),
        (None, "not bytes"),
        (b"x" * (MAX_MESSAGE + 1), "too large"),
        (b"\x00garbage", "Expecting value"),  # json.JSONDecodeError is a ValueError
        (b"[" * 100_000 + b"]" * 100_000, "nested too deep"),
        (b"[1, 2]", "no sender"),
        (b'{"k": ["a"]}', "no sender"),
        (b'{"s": 7, "k": ["a"]}', "no sender"),
        (b'{"s": "x", "k": "a"}', "must be strings"),
        (b'{"s": "x", "k": [1]}', "must be strings"),
        (b'{"s": "x", "t": [null]}', "must be strings"),
        (b'{"s": "x"}', "no keys, tags or clear"),
    ],
)
def test_anything_else_is_a_value_error(data: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse(data, ME, SUFFIX)
