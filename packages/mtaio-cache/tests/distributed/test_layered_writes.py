"""LayeredCache writes and the invalidation subscription, on CacheNode and redis-server.

A write whose key lives on the bus node alone sends its SET and its PUBLISH in one round
trip, the PUBLISH behind the SET on one connection; elsewhere the PUBLISH follows the write
quorum. These tests pin that ordering, and what happens when the round trip fails half-way
or the write is cancelled: the invalidation still reaches the other processes. The
subscription's watchdog is tested against a proxy that stops forwarding (a connection that
goes silent without closing).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from mtaio.cache import DistributedCache, LayeredCache
from mtaio.cache._distributed_node import Failure, NodeLink
from mtaio.exceptions import CacheConnectionError

from .conftest import HOST, Cluster, layered_caches, started
from .conftest import until as _until

Factory = Callable[..., LayeredCache[Any]]


@pytest.fixture
async def single(backend: str) -> AsyncIterator[Cluster]:
    """One node of the current backend: every key lives on the bus."""
    async with started(backend, 1) as c:
        yield c


@pytest.fixture
async def on_one(single: Cluster) -> AsyncIterator[Factory]:
    async with layered_caches(single.addresses, 1, "lw") as make:
        yield make


@pytest.fixture
async def on_three(cluster: Cluster) -> AsyncIterator[Factory]:
    async with layered_caches(cluster.addresses, 1, "lw") as make:
        yield make


async def _pair(factory: Factory) -> tuple[LayeredCache[Any], LayeredCache[Any]]:
    """Two caches (two processes, to each other), both subscribed."""
    a, b = factory(), factory()
    assert await a.connected(5.0) and await b.connected(5.0)
    return a, b


async def _held(reader: LayeredCache[Any], writer: LayeredCache[Any], key: str, value: Any) -> None:
    """Make ``reader`` hold ``key`` = ``value`` in its local tier."""
    await writer.set(key, value)
    await _until(lambda: key not in reader.local)
    for _ in range(100):  # a read racing the write's own invalidation is (rightly) not kept
        assert await reader.get(key) == value
        if key in reader.local:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{key!r} never entered the reader's local tier")


@pytest.fixture
async def held(on_one: Factory) -> tuple[LayeredCache[Any], LayeredCache[Any]]:
    """A writer and a reader on one node; the reader holds ``k`` = ``"old"`` locally."""
    a, b = await _pair(on_one)
    await _held(b, a, "k", "old")
    return a, b


def _failed(message: str) -> asyncio.Future[Any]:
    """A command's future as when its connection was lost before the reply."""
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    fut.set_result(Failure(CacheConnectionError(message), transport=True))
    return fut


def _bus_stats(cache: LayeredCache[Any]) -> tuple[int, int]:
    node = cache.remote.stats().nodes[cache.remote.nodes[0]]
    return node.ops, node.round_trips


async def test_a_write_on_the_bus_is_one_round_trip(on_one: Factory) -> None:
    a, b = await _pair(on_one)
    await _held(b, a, "k", "v0")
    ops, trips = _bus_stats(a)
    await a.set("k", "v1")
    # The SET and the PUBLISH travelled together: two commands, one round trip.
    assert _bus_stats(a) == (ops + 2, trips + 1)
    await _until(lambda: "k" not in b.local)
    assert await b.get("k") == "v1"
    ops, trips = _bus_stats(a)
    assert await a.delete("k")
    assert _bus_stats(a) == (ops + 2, trips + 1)
    await _until(lambda: b.stats().invalidations_received >= 3)
    assert await b.get("k") is None
    stats = a.stats()
    assert stats.invalidations_sent == 3 and stats.publish_errors == 0
    assert stats.invalidations_received == 0  # its own messages come back and are skipped
    assert stats.remote.writes == 2 and stats.remote.deletes == 1


async def test_the_publish_follows_the_write_it_announces(
    on_three: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await _pair(on_three)
    bus = a.remote.nodes[0]
    here = next(f"h{i}" for i in range(100) if a.remote.replicas(f"h{i}") == [bus])
    there = next(f"t{i}" for i in range(100) if a.remote.replicas(f"t{i}") != [bus])
    log: list[tuple[bytes, str, bool]] = []
    writes: list[asyncio.Future[Any]] = []
    submit = NodeLink.submit

    def spy(self: NodeLink, command: tuple[Any, ...]) -> asyncio.Future[Any]:
        fut = submit(self, command)
        if command[0] == b"SET":
            writes.append(fut)
        if command[0] in (b"SET", b"PUBLISH"):
            log.append((command[0], self.name, all(w.done() for w in writes)))
        return fut

    monkeypatch.setattr(NodeLink, "submit", spy)
    await a.set(here, 1)
    # On the bus alone: the PUBLISH is queued right behind the SET, before its reply.
    assert log == [(b"SET", bus, False), (b"PUBLISH", bus, False)]
    log.clear()
    writes.clear()
    await a.set(there, 2)
    # Elsewhere: the PUBLISH leaves only once the write was acknowledged.
    assert [(c, n == bus) for c, n, _ in log] == [(b"SET", False), (b"PUBLISH", True)]
    assert log[1][2]
    await _until(lambda: b.stats().invalidations_received >= 2)


async def test_a_publish_lost_with_its_connection_is_sent_again(
    held: tuple[LayeredCache[Any], LayeredCache[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = held
    submit = NodeLink.submit
    lost: list[tuple[Any, ...]] = []

    def drop_first_publish(self: NodeLink, command: tuple[Any, ...]) -> asyncio.Future[Any]:
        if command[0] == b"PUBLISH" and not lost:
            # The connection died after the SET ran and before the PUBLISH did.
            lost.append(command)
            return _failed("connection lost")
        return submit(self, command)

    monkeypatch.setattr(NodeLink, "submit", drop_first_publish)
    await a.set("k", "new")
    assert lost
    await _until(lambda: "k" not in b.local)
    assert await b.get("k") == "new"
    assert a.stats().invalidations_sent == 2  # the _held write's, and this one's retry
    assert a.stats().publish_errors == 0


async def test_a_write_that_fails_after_it_was_sent_still_invalidates(
    held: tuple[LayeredCache[Any], LayeredCache[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = held
    submit = NodeLink.submit
    failing = [True]

    def lose_replies(self: NodeLink, command: tuple[Any, ...]) -> asyncio.Future[Any]:
        # The batch reaches the server (the SET is applied), then its connection dies
        # before any reply: both the SET and the PUBLISH behind it end as a Failure.
        real = submit(self, command)
        if not failing[0] or command[0] not in (b"SET", b"PUBLISH"):
            return real
        if command[0] == b"PUBLISH":
            failing[0] = False  # the retry goes through
        out: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        real.add_done_callback(
            lambda _: out.set_result(Failure(CacheConnectionError("lost"), transport=True))
        )
        return out

    monkeypatch.setattr(NodeLink, "submit", lose_replies)
    with pytest.raises(CacheConnectionError, match="lost"):
        await a.set("k", "new")
    # The SET did land: the other process must not keep "old".
    await _until(lambda: "k" not in b.local)
    assert await b.get("k") == "new"
    await _until(lambda: a.stats().invalidations_sent == 2)
    assert a.stats().publish_errors == 0


async def test_a_cancelled_write_still_invalidates(on_three: Factory) -> None:
    a, b = await _pair(on_three)
    bus = a.remote.nodes[0]
    key = next(f"c{i}" for i in range(100) if a.remote.replicas(f"c{i}") != [bus])
    await _held(b, a, key, "old")
    received = b.stats().invalidations_received
    task = asyncio.create_task(a.set(key, "new"))
    await asyncio.sleep(0)  # the SET is queued; its reply is not in yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Whether or not the SET ran, the invalidation is sent (never a stale copy kept).
    await _until(lambda: b.stats().invalidations_received > received)
    assert key not in b.local
    assert await b.get(key) in ("old", "new")


async def test_an_unreachable_bus_counts_publish_errors(
    on_one: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = on_one()
    assert await a.connected(5.0)
    await a.set("k", 1)
    submit = NodeLink.submit

    def no_publish(self: NodeLink, command: tuple[Any, ...]) -> asyncio.Future[Any]:
        if command[0] != b"PUBLISH":
            return submit(self, command)
        return _failed("bus down")

    monkeypatch.setattr(NodeLink, "submit", no_publish)
    await a.set("k", 2)  # the write itself succeeded: no error for the caller
    await a.invalidate_tags("t")
    stats = a.stats()
    assert stats.publish_errors == 2 and stats.invalidations_sent == 1


class _Proxy:
    """A loopback TCP proxy to one node that can freeze: it then forwards nothing."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.frozen = False
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        return HOST, int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                if not self.frozen:
                    dst.write(data)
            dst.close()

        with contextlib.suppress(OSError):
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()


async def test_a_silent_subscription_is_dropped_by_the_watchdog(single: Cluster) -> None:
    proxy = _Proxy(single.addresses[0])
    address = await proxy.start()
    remote = DistributedCache[Any]([address], replication_factor=1, namespace="lw", timeout=2.0)
    cache = LayeredCache(remote, heartbeat=0.1)
    try:
        assert await cache.connected(5.0)
        await cache.set("k", "v")
        await _until(lambda: cache.stats().invalidations_sent == 1)
        assert await cache.get("k") == "v"
        assert "k" in cache.local
        accepted = proxy.accepted
        proxy.frozen = True  # the connection stays open but nothing comes through
        loop = asyncio.get_running_loop()
        started = loop.time()
        await _until(lambda: not cache.stats().connected, within=5.0)
        # A heartbeat of silence, a PING, another heartbeat without its answer (and up to
        # one more of the watchdog's period): then the local tier goes.
        assert loop.time() - started < 1.5
        assert len(cache.local) == 0 and cache.stats().local_flushes >= 1
        proxy.frozen = False
        await _until(lambda: cache.stats().connected, within=5.0)
        assert proxy.accepted > accepted  # a new subscription, on a new connection
    finally:
        await cache.close()
        await proxy.close()


async def test_garbage_on_the_subscription_reconnects(single: Cluster) -> None:
    # A server that answers every command with an error, one that speaks garbage, and one
    # that never answers: none makes the cache live, and its listener keeps trying (with
    # back-off), never stuck, never crashed.
    answers = [b"-NOPERM this user has no permissions to access the channel\r\n", b"?!\r\n", b""]
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        answer = answers[connections % len(answers)]
        connections += 1
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                commands = data.count(b"\r\n*") + data.startswith(b"*")
                writer.write(answer * commands)
        writer.close()

    server = await asyncio.start_server(serve, HOST, 0)
    address = (HOST, int(server.sockets[0].getsockname()[1]))
    remote = DistributedCache[Any]([address], replication_factor=1, namespace="lw", timeout=0.5)
    cache = LayeredCache(remote, heartbeat=0.1, max_backoff=0.1)
    try:
        assert not await cache.connected(0.5)
        await _until(lambda: connections >= 4)  # past the silent one (connect_timeout)
        assert not cache.stats().connected and len(cache.local) == 0
    finally:
        await cache.close()
        server.close()
