"""One process of the multi-process LayeredCache tests: ``python layered_child.py JSON``.

JSON: ``role`` (``writer``, ``reader``, ``tagger``, ``tag_reader``), ``nodes`` (``[host,
port]`` pairs), ``shm`` (the name of a shared float64 array: slot 0 is the "writer done"
flag, slot i the monotonic time at which the writer's i-th write was acknowledged),
``count`` and ``deadline`` (seconds). The child prints ``READY`` once its local tier is live
and waits for a line on stdin to start; it prints one JSON line of results at the end.
Every loop is bounded in count and in time. The waits poll the shared array: another
process moves it, so no asyncio.Event can stand in (hence the ASYNC110 exemptions).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from multiprocessing import resource_tracker, shared_memory
from typing import Any

from mtaio.cache import DistributedCache, LayeredCache

_received: list[float] = []
_seq_received: dict[int, float] = {}  # seq_writer's write i -> when its message was handled
_flushed: list[float] = []  # when the local tier was dropped
_original_on_message = LayeredCache._on_message
_original_flush = LayeredCache._flush_local


def _timed_on_message(self: LayeredCache[Any], data: Any) -> None:
    now = time.monotonic()
    _received.append(now)
    _original_on_message(self, data)
    try:
        for key in json.loads(data).get("k", ()):
            if key.startswith("seq:"):
                _seq_received[int(key[4:])] = now
    except (ValueError, AttributeError, TypeError):
        pass


def _timed_flush(self: LayeredCache[Any]) -> None:
    _flushed.append(time.monotonic())
    _original_flush(self)


LayeredCache._on_message = _timed_on_message  # type: ignore[method-assign]
LayeredCache._flush_local = _timed_flush  # type: ignore[method-assign]


async def _start_signal() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)


async def main(config: dict[str, Any]) -> dict[str, Any]:
    nodes = [tuple(n) for n in config["nodes"]]
    remote = DistributedCache[Any](nodes, replication_factor=1, namespace="mp", timeout=5.0)
    cache = LayeredCache(remote, local_ttl=60.0, local_max_size=None, heartbeat=1.0)
    shm = shared_memory.SharedMemory(name=config["shm"])
    # Attaching registers the block with this process's resource tracker (Python < 3.13),
    # which would unlink it at exit: the parent owns it.
    resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
    assert shm.buf is not None
    acks = memoryview(shm.buf).cast("d")
    deadline = time.monotonic() + float(config["deadline"])
    count = int(config["count"])
    out: dict[str, Any] = {}
    try:
        if not await cache.connected(10.0):
            raise RuntimeError("no invalidation subscription")
        print("READY", flush=True)
        await _start_signal()
        role = config["role"]
        if role == "seq_writer":
            # Each write names itself in its invalidation ("seq:<i>"), so readers can tell
            # which write a message was for even when messages are lost in a disconnect.
            for i in range(1, count + 1):
                await cache.set_many({"hot": i, f"seq:{i}": i}, ttl=60)
                acks[i] = time.monotonic()
                if time.monotonic() > deadline:
                    break
                if i % 50 == 0:
                    await asyncio.sleep(0)
            acks[0] = 1.0
        elif role == "kill_reader":
            # A stale read of v (v + 1 acknowledged before the read started) is a violation
            # if v + 1's invalidation was handled before the read, or if the local tier was
            # dropped (a lost connection) between v + 1's acknowledgement and the read.
            reads = stale = violations = 0
            while acks[0] == 0.0 and time.monotonic() < deadline:
                started = time.monotonic()
                value = await cache.get("hot", 0)
                reads += 1
                succ = value + 1
                if succ <= count and 0.0 < acks[succ] <= started:
                    stale += 1
                    handled = _seq_received.get(succ)
                    if (handled is not None and handled <= started) or any(
                        acks[succ] <= t <= started for t in _flushed
                    ):
                        violations += 1
                if reads % 20 == 0:
                    await asyncio.sleep(0)
            out = {
                "reads": reads,
                "stale": stale,
                "violations": violations,
                "flushes": len(_flushed),
                "local_hits": cache.stats().local_hits,
                "connected": cache.stats().connected or await cache.connected(5.0),
            }
        elif role == "writer":
            for i in range(1, count + 1):
                await cache.set("hot", i)
                acks[i] = time.monotonic()  # acknowledged (stored and published)
                if time.monotonic() > deadline:
                    break
                if i % 50 == 0:
                    await asyncio.sleep(0)  # let the readers' process get the CPU now and then
            acks[0] = 1.0
        elif role == "reader":
            # A stale read returns v although v + 1 had been acknowledged before the read
            # started; it is allowed only while v + 1's invalidation had not yet reached
            # this process (messages arrive in write order: the (v+1)-th one). Checked as
            # each read returns: both times are known by then.
            reads = stale = violations = 0
            value = 0
            while acks[0] == 0.0 and time.monotonic() < deadline:
                started = time.monotonic()
                value = await cache.get("hot", 0)
                reads += 1
                succ = value + 1
                if succ <= count and 0.0 < acks[succ] <= started:
                    stale += 1
                    if succ <= len(_received) and _received[succ - 1] <= started:
                        violations += 1
                if reads % 20 == 0:
                    await asyncio.sleep(0)
            # Let the last invalidations arrive, for the delay figures.
            while len(_received) < count and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            delays = sorted(
                max(0.0, _received[i - 1] - acks[i])
                for i in range(1, min(len(_received), count) + 1)
                if acks[i] > 0.0
            )
            out = {
                "reads": reads,
                "stale": stale,
                "violations": violations,
                "received": len(_received),
                "delay_p50": delays[len(delays) // 2] if delays else None,
                "delay_p99": delays[int(len(delays) * 0.99)] if delays else None,
                "local_hits": cache.stats().local_hits,
                "last": value,
            }
        elif role == "tagger":
            items = {f"member:{i}": i for i in range(count)}
            for start in range(0, count, 5000):
                batch = dict(list(items.items())[start : start + 5000])
                await cache.set_many(batch, ttl=300, tags=("big",))
            acks[1] = time.monotonic()
            while acks[2] < 2.0 and time.monotonic() < deadline:  # noqa: ASYNC110 - both filled
                await asyncio.sleep(0.01)
            await cache.invalidate_tags("big")
            acks[3] = time.monotonic()
        elif role == "tag_reader":
            while acks[1] == 0.0 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            keys = [f"member:{i}" for i in range(count)]
            filled = 0
            for start in range(0, count, 5000):
                filled += len(await cache.get_many(keys[start : start + 5000]))
            # Reads that overlapped the tagger's own invalidations were not kept: read again
            # until the tier holds every member (bounded by the deadline).
            while len(cache.local) < count and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                for start in range(0, count, 5000):
                    await cache.get_many(keys[start : start + 5000])
            local_before = len(cache.local)
            acks[2] += 1.0
            while acks[3] == 0.0 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            while len(cache.local) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            left = 0
            for start in range(0, count, 5000):
                left += len(await cache.get_many(keys[start : start + 5000]))
            out = {
                "filled": filled,
                "local_before": local_before,
                "local_after": len(cache.local),
                "left": left,
            }
    finally:
        del acks
        shm.close()
        await cache.close()
    return out


if __name__ == "__main__":
    result = asyncio.run(main(json.loads(sys.argv[1])))
    print(json.dumps(result), flush=True)
