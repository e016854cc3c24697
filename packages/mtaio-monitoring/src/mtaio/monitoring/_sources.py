"""Objects with a ``stats()`` snapshot, exported field by field (a protocol, no imports).

Every mtaio package gives its long-lived objects a ``stats()`` method returning a frozen
dataclass (cache hits, limiter waits, breaker trips, executor queue depth, channel drops).
The monitoring package exports such snapshots without importing those packages: anything
whose ``stats()`` returns a dataclass instance fits.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator
from typing import Any, Literal, Protocol, final, runtime_checkable

from mtaio.exceptions import ConfigurationTypeError

from ._validate import require_name

FieldKind = Literal["counter", "gauge"]


@runtime_checkable
class StatsSource(Protocol):
    """Anything with a ``stats()`` method returning a dataclass snapshot."""

    def stats(self) -> Any:
        """Return a dataclass instance of numeric fields (nested dataclasses allowed)."""
        ...


def flatten_stats(snapshot: object, prefix: str = "") -> Iterator[tuple[str, float]]:
    """Yield ``(dotted field name, value)`` for every numeric field of a dataclass snapshot.

    Bools become 0/1, nested dataclasses are walked (``"breaker.trips"``), mappings of names
    to numbers give one field per key; strings, None, NaN and other values are skipped.
    """
    if not dataclasses.is_dataclass(snapshot) or isinstance(snapshot, type):
        return
    for f in dataclasses.fields(snapshot):
        yield from _flatten_value(getattr(snapshot, f.name), prefix + f.name)


def _flatten_value(value: object, name: str) -> Iterator[tuple[str, float]]:
    if isinstance(value, bool):
        yield name, float(value)
    elif isinstance(value, int | float):
        if not math.isnan(value):
            yield name, float(value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        yield from flatten_stats(value, name + ".")
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield from _flatten_value(item, f"{name}.{key}")


@final
class RegisteredSource:
    """A :class:`StatsSource` registered under a name, with the fields that are counters."""

    __slots__ = ("counters", "name", "source")

    def __init__(self, name: str, source: object, counters: Iterable[str]) -> None:
        self.name = require_name("name", name)
        stats = getattr(source, "stats", None)
        if not callable(stats):
            raise ConfigurationTypeError(
                f"source must have a stats() method returning a dataclass, got {source!r}"
            )
        snapshot = stats()
        if not dataclasses.is_dataclass(snapshot) or isinstance(snapshot, type):
            raise ConfigurationTypeError(
                f"source.stats() must return a dataclass instance, got {snapshot!r}"
            )
        if isinstance(counters, str) or not isinstance(counters, Iterable):
            raise ConfigurationTypeError(
                f"counters must be an iterable of field names, got {counters!r}"
            )
        self.counters = frozenset(require_name("counters", c) for c in counters)
        known = {n for n, _ in flatten_stats(snapshot)}
        unknown = self.counters - known
        if unknown:
            raise ConfigurationTypeError(
                f"counters names fields that stats() does not have: {sorted(unknown)}; "
                f"fields: {sorted(known)}"
            )
        self.source = source

    def read(self) -> list[tuple[str, float, FieldKind]]:
        """Return ``(field, value, kind)`` for every numeric field of a fresh snapshot."""
        return [
            (name, value, "counter" if name in self.counters else "gauge")
            for name, value in flatten_stats(self.source.stats())  # type: ignore[attr-defined]
        ]

    def __repr__(self) -> str:
        return f"<RegisteredSource {self.name!r} source={self.source!r}>"
