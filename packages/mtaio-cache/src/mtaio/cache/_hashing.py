"""Consistent hashing with virtual nodes: which nodes hold a key.

Each node owns ``vnodes`` points on a 64-bit ring (BLAKE2b of ``"<name>#<i>"``); a key's
preference list is the first ``n`` distinct nodes met walking clockwise from the key's hash.
Adding or removing one of N nodes moves only the keys next to its points: about 1/N of them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from hashlib import blake2b
from typing import Generic, TypeVar, final

from mtaio.exceptions import ConfigurationError, require_positive_int

__all__ = ("HashRing", "hash64")

N = TypeVar("N")


def hash64(data: bytes) -> int:
    """A stable 64-bit hash (BLAKE2b): the same in every process and Python version."""
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big")


@final
class HashRing(Generic[N]):
    """A consistent-hash ring over named members.

    Args:
        members: ``(name, member)`` pairs; names must be unique and identify a node stably
            (e.g. ``"host:port"``), since they place its points on the ring.
        vnodes: Points per member; more points spread keys more evenly.
    """

    __slots__ = ("_members", "_owners", "_points", "_vnodes")

    def __init__(self, members: Iterable[tuple[str, N]], *, vnodes: int = 160) -> None:
        self._vnodes = require_positive_int("vnodes", vnodes)
        self._members: dict[str, N] = {}
        for name, member in members:
            if name in self._members:
                raise ConfigurationError(f"nodes must be distinct, {name!r} is listed twice")
            self._members[name] = member
        ring = sorted(
            (hash64(f"{name}#{i}".encode()), name)
            for name in self._members
            for i in range(self._vnodes)
        )
        self._points = [p for p, _ in ring]
        self._owners = [self._members[name] for _, name in ring]

    def __len__(self) -> int:
        return len(self._members)

    @property
    def members(self) -> Sequence[N]:
        """Every member, in the order given."""
        return list(self._members.values())

    def preference(self, key: bytes, n: int) -> list[N]:
        """The first ``n`` distinct members clockwise from ``key`` (fewer on a smaller ring)."""
        owners = self._owners
        if not owners:
            return []
        size = len(owners)
        i = bisect_right(self._points, hash64(key))
        out: list[N] = []
        n = min(n, len(self._members))
        for step in range(size):
            member = owners[(i + step) % size]
            if member not in out:
                out.append(member)
                if len(out) == n:
                    break
        return out
