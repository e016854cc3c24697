"""Every eviction policy against a plain reference model, driven by hypothesis.

The model is a list of records scanned in full on every step: obviously right, and slow in
the way the cache must not be. It checks contents, eviction order (``keys()`` is in policy
order), expiry under an injected clock, the reasons listeners hear, and the stats.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from mtaio.cache import EvictionPolicy, EvictionReason, TTLCache
from mtaio.typing import ManualClock

KEYS = st.sampled_from(["a", "b", "c", "d", "e", "f"])
TTLS = st.sampled_from([None, 0.5, 1.0, 2.5, 7.0])
STEPS = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 3.0])
MAX_SIZE = 3
DEFAULT_TTL = 4.0

Event = tuple[Hashable, Any, EvictionReason]


@dataclass
class Record:
    key: str
    value: int
    expires: float | None
    inserted: int  # FIFO order
    used: int  # LRU order, and LFU tie-break
    freq: int = 1


class Model:
    """The reference: a list of records, every operation a linear scan."""

    def __init__(self, policy: EvictionPolicy) -> None:
        self.policy = policy
        self.records: list[Record] = []
        self.seq = 0
        self.hits = self.misses = self.evictions = self.expirations = 0
        self.events: list[Event] = []

    def tick(self) -> int:
        self.seq += 1
        return self.seq

    def find(self, key: str) -> Record | None:
        return next((r for r in self.records if r.key == key), None)

    @staticmethod
    def expired(record: Record, now: float) -> bool:
        return record.expires is not None and record.expires <= now

    def expire(self, record: Record) -> None:
        self.records.remove(record)
        self.expirations += 1
        self.events.append((record.key, record.value, EvictionReason.EXPIRED))

    def use(self, record: Record) -> None:
        if self.policy is not EvictionPolicy.FIFO:
            record.used = self.tick()
            record.freq += 1

    def order(self) -> list[Record]:
        if self.policy is EvictionPolicy.FIFO:
            return sorted(self.records, key=lambda r: r.inserted)
        if self.policy is EvictionPolicy.LRU:
            return sorted(self.records, key=lambda r: r.used)
        return sorted(self.records, key=lambda r: (r.freq, r.used))

    def live(self, key: str, now: float) -> Record | None:
        """The live record of ``key``; an expired one found is purged."""
        record = self.find(key)
        if record is not None and self.expired(record, now):
            self.expire(record)
            return None
        return record

    def set(self, key: str, value: int, expires: float | None, now: float) -> None:
        record = self.live(key, now)
        if record is not None:
            self.events.append((key, record.value, EvictionReason.REPLACED))
            record.value = value
            record.expires = expires
            self.use(record)
            return
        if len(self.records) >= MAX_SIZE:
            victim = self.order()[0]
            self.records.remove(victim)
            if self.expired(victim, now):
                self.expirations += 1
                self.events.append((victim.key, victim.value, EvictionReason.EXPIRED))
            else:
                self.evictions += 1
                self.events.append((victim.key, victim.value, EvictionReason.CAPACITY))
        seq = self.tick()
        self.records.append(Record(key, value, expires, seq, seq))

    def get(self, key: str, now: float) -> int | None:
        record = self.live(key, now)
        if record is None:
            self.misses += 1
            return None
        self.hits += 1
        self.use(record)
        return record.value

    def purge(self, now: float) -> None:
        for record in [r for r in self.records if self.expired(r, now)]:
            self.expire(record)


def machine(policy: EvictionPolicy) -> type[RuleBasedStateMachine]:
    class CacheMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.clock = ManualClock(1000.0)
            self.events: list[Event] = []
            self.cache = TTLCache[int](
                default_ttl=DEFAULT_TTL,
                max_size=MAX_SIZE,
                cleanup_interval=None,
                eviction_policy=policy,
                on_removed=lambda k, v, r: self.events.append((k, v, r)),
                clock=self.clock,
            )
            self.model = Model(policy)
            self.counter = 0

        def run(self, coro: Any) -> Any:
            return self.loop.run_until_complete(coro)

        def teardown(self) -> None:
            self.loop.close()

        def check_events(self, *, ordered: bool = True) -> None:
            got, want = self.events, self.model.events
            if not ordered:
                got, want = sorted(got, key=repr), sorted(want, key=repr)
            assert got == want
            self.events.clear()
            self.model.events.clear()

        @rule(key=KEYS, ttl=TTLS)
        def set(self, key: str, ttl: float | None) -> None:
            self.counter += 1
            now = self.clock()
            expires = now + (DEFAULT_TTL if ttl is None else ttl)
            self.run(self.cache.set(key, self.counter, ttl))
            self.model.set(key, self.counter, expires, now)
            self.check_events()

        @rule(key=KEYS, ttl=TTLS)
        def set_many(self, key: str, ttl: float | None) -> None:
            # set() has an inlined fast path; set_many takes the general one.
            self.counter += 1
            now = self.clock()
            expires = now + (DEFAULT_TTL if ttl is None else ttl)
            self.run(self.cache.set_many({key: self.counter}, ttl))
            self.model.set(key, self.counter, expires, now)
            self.check_events()

        @rule(key=KEYS, ttl=TTLS)
        def get_or_set(self, key: str, ttl: float | None) -> None:
            self.counter += 1
            now = self.clock()
            record = self.model.live(key, now)
            if record is not None:
                self.model.hits += 1
                self.model.use(record)
                want = record.value
            else:
                self.model.misses += 1
                expires = now + (DEFAULT_TTL if ttl is None else ttl)
                self.model.set(key, self.counter, expires, now)
                want = self.counter
            got = self.run(self.cache.get_or_set(key, lambda: self.counter, ttl))
            assert got == want
            self.check_events()

        @rule(put=KEYS, drop=KEYS, ttl=TTLS)
        def transaction(self, put: str, drop: str, ttl: float | None) -> None:
            if put == drop:
                return
            self.counter += 1
            now = self.clock()

            async def run() -> None:
                async with self.cache.transaction() as tx:
                    await tx.set(put, self.counter, ttl)
                    await tx.delete(drop)

            self.run(run())
            self.model.set(put, self.counter, now + (DEFAULT_TTL if ttl is None else ttl), now)
            record = self.model.live(drop, now)
            if record is not None:
                self.model.records.remove(record)
                self.model.events.append((drop, record.value, EvictionReason.DELETED))
            self.check_events()

        @rule(key=KEYS)
        def get(self, key: str) -> None:
            assert self.run(self.cache.get(key)) == self.model.get(key, self.clock())
            self.check_events()

        @rule(key=KEYS)
        def delete(self, key: str) -> None:
            record = self.model.live(key, self.clock())
            if record is not None:
                self.model.records.remove(record)
                self.model.events.append((key, record.value, EvictionReason.DELETED))
            assert self.run(self.cache.delete(key)) == (record is not None)
            self.check_events()

        @rule(key=KEYS, ttl=TTLS)
        def touch(self, key: str, ttl: float | None) -> None:
            now = self.clock()
            record = self.model.live(key, now)
            if record is not None:
                record.expires = now + (DEFAULT_TTL if ttl is None else ttl)
                self.model.use(record)
            assert self.run(self.cache.touch(key, ttl)) == (record is not None)
            self.check_events()

        @rule(key=KEYS)
        def has(self, key: str) -> None:
            record = self.model.live(key, self.clock())
            assert self.run(self.cache.has(key)) == (record is not None)
            self.check_events()

        @rule(key=KEYS)
        def ttl(self, key: str) -> None:
            now = self.clock()
            record = self.model.live(key, now)
            left = self.run(self.cache.ttl(key))
            if record is None:
                assert left is None
            else:
                assert record.expires is not None
                assert left == record.expires - now
            self.check_events()

        @rule(step=STEPS)
        def advance(self, step: float) -> None:
            self.clock.advance(step)

        @rule()
        def purge(self) -> None:
            self.model.purge(self.clock())
            self.cache.purge_expired()
            self.check_events(ordered=False)

        @rule()
        def keys(self) -> None:
            self.model.purge(self.clock())
            assert self.cache.keys() == [r.key for r in self.model.order()]
            self.check_events(ordered=False)

        @rule()
        def clear(self) -> None:
            now = self.clock()
            for record in self.model.order():
                if not self.model.expired(record, now):
                    self.model.events.append((record.key, record.value, EvictionReason.CLEARED))
            self.model.records.clear()
            self.run(self.cache.clear())
            self.check_events(ordered=False)

        @invariant()
        def same_contents_and_stats(self) -> None:
            now = self.clock()
            for record in self.model.records:
                want = None if self.model.expired(record, now) else record.value
                assert self.cache.peek(record.key) == want
            stats = self.cache.stats()
            assert stats.items == len(self.model.records)
            assert stats.hits == self.model.hits
            assert stats.misses == self.model.misses
            assert stats.evictions == self.model.evictions
            assert stats.expirations == self.model.expirations

    CacheMachine.__name__ = f"{policy.name}Machine"
    return CacheMachine


SETTINGS = settings(max_examples=60, stateful_step_count=40, deadline=None)

TestLRU = SETTINGS(machine(EvictionPolicy.LRU)).TestCase
TestLFU = SETTINGS(machine(EvictionPolicy.LFU)).TestCase
TestFIFO = SETTINGS(machine(EvictionPolicy.FIFO)).TestCase
