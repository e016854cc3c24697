from __future__ import annotations

import pickle
from typing import Any

import pytest

from mtaio.cache import (
    CacheSerializationError,
    JsonSerializer,
    RawSerializer,
    Serializer,
    SignedPickleSerializer,
)
from mtaio.cache._envelope import KIND_VALUE, pack_envelope, unpack_envelope
from mtaio.cache._hashing import HashRing
from mtaio.exceptions import ConfigurationError, ConfigurationTypeError

KEY = b"k" * 32
PLANTED: list[str] = []


class Boom:
    """Unpickling this records that code ran: it must never happen for foreign bytes."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (PLANTED.append, ("executed",))


def test_json_round_trip_and_clear_error() -> None:
    s = JsonSerializer()
    assert s.loads(s.dumps({"a": [1, 2.5, None, "é"]})) == {"a": [1, 2.5, None, "é"]}
    with pytest.raises(CacheSerializationError, match="type set as JSON"):
        s.dumps({1, 2})
    with pytest.raises(CacheSerializationError, match="not valid JSON"):
        s.loads(b"\x80garbage")
    assert isinstance(s, Serializer)


def test_raw_serializer_stores_bytes_only() -> None:
    s = RawSerializer()
    assert s.loads(s.dumps(b"\x00\x01")) == b"\x00\x01"
    with pytest.raises(CacheSerializationError, match="bytes only"):
        s.dumps("text")


def test_signed_pickle_round_trips_and_refuses_foreign_payloads() -> None:
    s = SignedPickleSerializer(KEY)
    assert s.loads(s.dumps({"t": (1, 2)})) == {"t": (1, 2)}
    planted = pickle.dumps(Boom())
    with pytest.raises(CacheSerializationError, match="unsigned"):
        s.loads(planted)
    signed = bytearray(s.dumps("ok"))
    signed[-3] ^= 1
    with pytest.raises(CacheSerializationError, match="does not verify"):
        s.loads(bytes(signed))
    other = SignedPickleSerializer(b"x" * 32).dumps(Boom())
    with pytest.raises(CacheSerializationError, match="does not verify"):
        s.loads(other)
    assert PLANTED == []


def test_signed_pickle_validates_its_key_and_values() -> None:
    with pytest.raises(ConfigurationError, match="at least 16 bytes"):
        SignedPickleSerializer(b"short")
    with pytest.raises(ConfigurationTypeError, match="key must be bytes"):
        SignedPickleSerializer("text" * 8)  # type: ignore[arg-type]
    with pytest.raises(CacheSerializationError, match="cannot pickle"):
        SignedPickleSerializer(KEY).dumps(lambda: 1)


def test_envelope_round_trip_and_rejects_foreign_bytes() -> None:
    raw = pack_envelope(KIND_VALUE, 7, 9, 0, b"payload")
    env = unpack_envelope(raw)
    assert (env.kind, env.version, env.writer, env.payload, env.order) == (
        0,
        7,
        9,
        b"payload",
        (7, 9),
    )
    with pytest.raises(CacheSerializationError, match="too short"):
        unpack_envelope(b"short")
    with pytest.raises(CacheSerializationError, match="bad header"):
        unpack_envelope(b"x" * 40)


def ring(names: list[str]) -> HashRing[str]:
    return HashRing([(n, n) for n in names])


def test_preference_lists_are_distinct_stable_and_capped() -> None:
    r = ring(["a:1", "b:1", "c:1"])
    prefs = r.preference(b"key", 2)
    assert len(set(prefs)) == 2 and prefs == ring(["c:1", "a:1", "b:1"]).preference(b"key", 2)
    assert sorted(r.preference(b"key", 10)) == ["a:1", "b:1", "c:1"]
    assert HashRing[str]([]).preference(b"k", 2) == []
    assert len(r) == 3 and list(r.members) == ["a:1", "b:1", "c:1"]


def test_duplicate_nodes_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="listed twice"):
        ring(["a:1", "a:1"])


@pytest.mark.parametrize("n", [3, 5])
def test_adding_or_removing_a_node_moves_about_one_nth_of_the_keys(n: int) -> None:
    names = [f"10.0.0.{i}:6379" for i in range(n)]
    keys = [f"user:{i}".encode() for i in range(4000)]
    before = ring(names)
    grown = ring([*names, "10.0.0.99:6379"])
    moved = sum(before.preference(k, 1) != grown.preference(k, 1) for k in keys)
    # every moved key moved to the new node, and about 1/(n+1) of them moved
    assert all(
        grown.preference(k, 1) == ["10.0.0.99:6379"]
        for k in keys
        if before.preference(k, 1) != grown.preference(k, 1)
    )
    assert 0.5 / (n + 1) < moved / len(keys) < 1.6 / (n + 1)
    shrunk = ring(names[1:])
    moved = sum(before.preference(k, 1) != shrunk.preference(k, 1) for k in keys)
    assert 0.5 / n < moved / len(keys) < 1.6 / n
    # keys are spread evenly enough
    counts = {name: 0 for name in names}
    for k in keys:
        counts[before.preference(k, 1)[0]] += 1
    assert min(counts.values()) > 0.6 * len(keys) / n
