"""Workload "channel-redis": Channel transports across processes, beside raw redis-py and peers.

One local redis-server (started here, on a free loopback port, killed at exit). The publisher
runs in the bench process; the subscriber is a separate process (this module run as a
script), started untimed before each round. Payloads are 100 bytes (the send time on the
shared monotonic clock, padded). A round is timed from the first publish until the
subscriber reports it has everything, so msgs/s covers both ends.

pubsub: 20k messages. raw redis-py ``publish`` / ``pubsub.listen()`` (the floor), mtaio
``Channel`` on ``RedisPubSubTransport``, broadcaster's Redis backend. The subscriber reports
p50/p99 publish-to-receive latency. The same three again, 10k messages published at a fixed
2,000 msgs/s for all: latency at one offered load (unpaced, each case's latency is measured
at its own rate, and the faster publisher has more messages queued behind any stall).

streams-group: 20k messages into one stream read by one consumer of a group that
acknowledges each: a raw ``XADD`` / ``XREADGROUP COUNT 100`` / ``XACK`` loop, mtaio
``Channel`` on ``RedisStreamsTransport`` (``auto_ack``), FastStream's Redis stream
subscriber (group, ack on return).

Peers missing from the environment are left out of the table (the bench group installs them).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from .._runner import Case, Options, Scenario, workload

PAYLOAD = 100
# Latency is compared at one offered rate, below every case's throughput: unpaced, a faster
# publisher meets each stall of the subscriber process with more messages behind it.
PACE = 2_000
IDLE = 20.0  # a subscriber that hears nothing this long reports what it has


def _resp2(url: str) -> str:
    # redis-py 8 speaks RESP3 by default; the peers expect RESP2 Pub/Sub replies.
    return f"{url}?protocol=2"


def _payload() -> str:
    return f"{time.monotonic():.9f}".ljust(PAYLOAD, "x")


def _sent_at(text: str) -> float:
    return float(text[:20].rstrip("x"))


# ---------------------------------------------------------------------- subscriber side


async def _subscriber(kind: str, url: str, name: str, n: int) -> None:
    latencies: list[float] = []

    def record(text: str) -> bool:
        latencies.append(time.monotonic() - _sent_at(text))
        return len(latencies) >= n

    def report() -> None:
        # Sent as soon as the last message is in, before any clean-up: the round's time
        # is delivery, not the subscriber's teardown or its interpreter's exit.
        ordered = sorted(latencies) or [0.0]
        result = {
            "count": len(latencies),
            "p50": statistics.median(ordered),
            "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        }
        print(json.dumps(result), flush=True)

    ready = lambda: print(json.dumps({"ready": True}), flush=True)  # noqa: E731
    if kind == "raw-pubsub":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(url, protocol=2)
        pubsub = client.pubsub()
        await pubsub.subscribe(name)
        await pubsub.get_message(timeout=5)  # the confirmation
        ready()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(IDLE):
                async for message in pubsub.listen():
                    if message["type"] == "message" and record(message["data"].decode()):
                        break
        report()
        await pubsub.aclose()
        await client.aclose()
    elif kind == "mtaio-pubsub":
        from mtaio.events import Channel, RedisPubSubTransport

        async with Channel[str](name, transport=RedisPubSubTransport(url)) as channel:
            sub = await channel.subscribe("t", maxsize=n + 10)
            ready()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE):
                    async for msg in sub:
                        if record(msg.data):
                            break
            report()
    elif kind == "broadcaster":
        from broadcaster import Broadcast

        broadcast = Broadcast(_resp2(url))
        await broadcast.connect()
        async with broadcast.subscribe(channel=name) as subscriber:
            # broadcaster 0.3.1 starts its listener before its SUBSCRIBE is sent; with
            # redis-py 8 the listener sees no subscription, stops and waits for a wake-up
            # that never comes. Wake it once the subscription exists.
            backend: Any = broadcast._backend  # type: ignore[attr-defined]
            await asyncio.sleep(0.1)
            backend._ready.set()
            ready()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE):
                    async for event in subscriber:  # type: ignore[union-attr]
                        if record(event.message):
                            break
            report()
        await broadcast.disconnect()
    elif kind == "raw-streams":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(url, protocol=2)
        with contextlib.suppress(Exception):
            await client.xgroup_create(name, "g", id="$", mkstream=True)
        ready()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(IDLE):
                done = False
                while not done:
                    reply = await client.xreadgroup("g", "c", {name: ">"}, count=100, block=1000)
                    for _, entries in reply or ():
                        ids = []
                        for entry_id, fields in entries:
                            ids.append(entry_id)
                            done = record(fields[b"d"].decode()) or done
                        await client.xack(name, "g", *ids)
        report()
        await client.aclose()
    elif kind == "mtaio-streams":
        from mtaio.events import Channel, RedisStreamsTransport

        transport = RedisStreamsTransport(url, block=1.0)
        async with Channel[str](name, transport=transport) as channel:
            sub = await channel.subscribe("t", group="g", maxsize=100)
            ready()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE):
                    async for msg in sub:
                        if record(msg.data):
                            sub.receive_nowait()  # acknowledges the last one
                            break
            report()
    elif kind == "faststream":
        from faststream.redis import RedisBroker, StreamSub

        broker = RedisBroker(_resp2(url), logger=None)  # no log line per message
        finished = asyncio.Event()

        @broker.subscriber(stream=StreamSub(name, group="g", consumer="c"))  # type: ignore[misc]
        async def handle(body: str) -> None:
            if record(body):
                finished.set()

        await broker.start()
        ready()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished.wait(), IDLE + n / 1000)
        report()
        with contextlib.suppress(Exception):  # faststream 0.7 stop() trips on its own client
            await broker.stop()
    else:
        raise SystemExit(f"unknown subscriber {kind}")


# ---------------------------------------------------------------------- publisher side


class _Round:
    """One subscriber process per round, started untimed in ``setup``."""

    def __init__(self, kind: str, url: str, n: int) -> None:
        self.kind = kind
        self.url = url
        self.n = n
        self.name = ""
        self.proc: asyncio.subprocess.Process | None = None

    async def setup(self) -> None:
        if self.proc is not None:  # the previous round's subscriber, reaped untimed
            await self.proc.wait()
        self.name = f"bench-{uuid.uuid4().hex[:8]}"
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            self.kind,
            self.url,
            self.name,
            str(self.n),
            stdout=asyncio.subprocess.PIPE,
        )
        assert json.loads(await self._line())["ready"]

    async def _line(self) -> bytes:
        # The next JSON line of the subscriber (a peer may log other lines to stdout).
        assert self.proc is not None
        assert self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), IDLE + 30)
            if not line:
                raise RuntimeError(f"{self.kind} subscriber exited with {await self.proc.wait()}")
            if line.startswith(b"{"):
                return line

    async def finish(self) -> dict[str, float]:
        # The subscriber's exit is awaited by the next setup (or the event loop at the end).
        result = json.loads(await self._line())
        if result["count"] < self.n:
            raise RuntimeError(f"{self.kind}: {result['count']} of {self.n} arrived")
        return {"p50 ms": result["p50"] * 1000, "p99 ms": result["p99"] * 1000}


async def _paced(publish: Callable[[], Awaitable[object]], n: int, rate: float) -> None:
    # Publish i is due at start + i / rate; sleep only when more than a millisecond ahead
    # (the event loop's timer resolution), so the schedule holds on average.
    start = time.monotonic()
    for i in range(n):
        ahead = start + i / rate - time.monotonic()
        if ahead > 0.001:
            await asyncio.sleep(ahead)
        await publish()


def _pubsub_cases(url: str, n: int, rate: float | None = None) -> list[Case]:
    """The three Pub/Sub cases, as fast as each goes or (``rate``) all at one pace."""
    import redis.asyncio as aioredis

    from mtaio.events import Channel, RedisPubSubTransport

    cases = []
    raw = _Round("raw-pubsub", url, n)

    async def run_raw() -> dict[str, float]:
        client = aioredis.Redis.from_url(url, protocol=2)
        if rate is None:
            for _ in range(n):
                await client.publish(raw.name, _payload())
        else:
            await _paced(lambda: client.publish(raw.name, _payload()), n, rate)
        await client.aclose()
        return await raw.finish()

    cases.append(Case("raw redis-py publish/listen", run_raw, n, raw=True, setup=raw.setup))
    mine = _Round("mtaio-pubsub", url, n)

    async def run_mtaio() -> dict[str, float]:
        async with Channel[str](mine.name, transport=RedisPubSubTransport(url)) as channel:
            publish = channel.publish
            if rate is None:
                for _ in range(n):
                    await publish(_payload(), topic="t")
            else:
                await _paced(lambda: publish(_payload(), topic="t"), n, rate)
        return await mine.finish()

    cases.append(Case("**mtaio Channel (Pub/Sub)**", run_mtaio, n, setup=mine.setup))
    try:
        from broadcaster import Broadcast
    except ImportError:
        return cases
    peer = _Round("broadcaster", url, n)

    async def run_broadcaster() -> dict[str, float]:
        broadcast = Broadcast(_resp2(url))
        await broadcast.connect()
        if rate is None:
            for _ in range(n):
                await broadcast.publish(channel=peer.name, message=_payload())
        else:
            await _paced(lambda: broadcast.publish(channel=peer.name, message=_payload()), n, rate)
        await broadcast.disconnect()
        return await peer.finish()

    cases.append(Case("broadcaster (Redis)", run_broadcaster, n, setup=peer.setup))
    return cases


def _streams_cases(url: str, n: int) -> list[Case]:
    import redis.asyncio as aioredis

    from mtaio.events import Channel, RedisStreamsTransport

    cases = []
    raw = _Round("raw-streams", url, n)

    async def run_raw() -> dict[str, float]:
        client = aioredis.Redis.from_url(url, protocol=2)
        for _ in range(n):
            await client.xadd(raw.name, {"d": _payload()})
        await client.aclose()
        return await raw.finish()

    cases.append(Case("raw XADD/XREADGROUP/XACK", run_raw, n, raw=True, setup=raw.setup))
    mine = _Round("mtaio-streams", url, n)

    async def run_mtaio() -> dict[str, float]:
        # the subscriber process reads {mtaio:<name>}:s:t
        transport = RedisStreamsTransport(url)
        async with Channel[str](mine.name, transport=transport) as channel:
            publish = channel.publish
            for _ in range(n):
                await publish(_payload(), topic="t")
        return await mine.finish()

    cases.append(Case("**mtaio Channel (Streams group)**", run_mtaio, n, setup=mine.setup))
    try:
        from faststream.redis import RedisBroker
    except ImportError:
        return cases
    peer = _Round("faststream", url, n)

    async def run_faststream() -> dict[str, float]:
        broker = RedisBroker(_resp2(url), logger=None)  # no log line per message
        await broker.connect()
        for _ in range(n):
            await broker.publish(_payload(), stream=peer.name)
        await broker.stop()
        return await peer.finish()

    cases.append(Case("FastStream (Redis stream)", run_faststream, n, setup=peer.setup))
    return cases


_SERVER: Any = None


def _server_url() -> str:
    global _SERVER
    if _SERVER is None:
        from mtaio.testing import RedisServer

        _SERVER = RedisServer()
        _SERVER.start()
        atexit.register(_SERVER.kill)
    return str(_SERVER.url)


@workload("channel-redis")
def channel_redis(options: Options) -> list[Scenario]:
    url = _server_url()
    n = options.scale(20_000)
    return [
        Scenario("Pub/Sub, 100-byte messages, 1 subscriber process", _pubsub_cases(url, n)),
        Scenario(
            f"Pub/Sub latency, paced at {PACE:,} msgs/s, 100-byte messages",
            _pubsub_cases(url, options.scale(PACE * 5), rate=PACE),
        ),
        Scenario(
            "Streams group with acks, 100-byte messages, 1 consumer process",
            _streams_cases(url, n),
        ),
    ]


if __name__ == "__main__":
    kind_, url_, name_, n_ = sys.argv[1:]
    asyncio.run(_subscriber(kind_, url_, name_, int(n_)))
