"""Wake-ups for cross-process single flight: "key K was loaded", over Redis Pub/Sub.

A process that loaded a key under a lease PUBLISHes the key on the namespace's channel on
the node that holds the lease (the key's first live replica). Processes waiting for it
SUBSCRIBE to that channel on that node through one redis-py ``PubSub`` connection per node,
opened when a first waiter needs it and kept while the cache lives. Works on Redis, Valkey
and CacheNode alike (plain SUBSCRIBE/PUBLISH, RESP2).

A waiter registers its future *before* it waits for the subscription to be confirmed, and
re-reads the key *after* the confirmation: a value stored before that is seen by the read,
one stored after it is announced by a message. Messages can still be lost (a dropped
connection), so waiters also re-check with a bounded back-off: the message makes the wait
short, the back-off makes it finite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Final, final

from ._distributed_node import NodeLink

if TYPE_CHECKING:
    from redis.asyncio.client import PubSub

__all__ = ("LoadNotifier",)

_log: Final = logging.getLogger("mtaio.cache")


@final
class _Subscription:
    __slots__ = ("pubsub", "ready", "task")

    def __init__(self) -> None:
        self.pubsub: PubSub | None = None
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


@final
class LoadNotifier:
    """Per-node subscriptions to one channel, and the futures waiting for each key.

    Args:
        channel: The channel loaded keys are published on.
        track: Registers the listener tasks with the owner, so ``close()`` cancels them.
    """

    __slots__ = ("_channel", "_subs", "_track", "_waiters")

    def __init__(self, channel: bytes, track: Any) -> None:
        self._channel = channel
        self._track = track
        self._subs: dict[str, _Subscription] = {}
        self._waiters: dict[bytes, set[asyncio.Future[None]]] = {}

    @property
    def channel(self) -> bytes:
        """The channel name."""
        return self._channel

    def register(self, rkey: bytes) -> asyncio.Future[None]:
        """A future resolved when a message announces ``rkey``; unregister it when done."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(rkey, set()).add(fut)
        return fut

    def unregister(self, rkey: bytes, fut: asyncio.Future[None]) -> None:
        """Forget ``fut`` (resolved or not)."""
        waiting = self._waiters.get(rkey)
        if waiting is not None:
            waiting.discard(fut)
            if not waiting:
                del self._waiters[rkey]

    async def subscribed(self, node: NodeLink, within: float) -> bool:
        """Make sure this process listens on ``node``; whether it does within ``within`` s."""
        sub = self._subs.get(node.name)
        if sub is None or (sub.task is not None and sub.task.done()):
            sub = self._subs[node.name] = _Subscription()
            sub.task = asyncio.get_running_loop().create_task(self._listen(node, sub))
            self._track(sub.task)
        if sub.ready.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sub.ready.wait(), within)
        return sub.ready.is_set()

    async def _listen(self, node: NodeLink, sub: _Subscription) -> None:
        from redis.asyncio import Redis

        client = Redis(connection_pool=node.pool)
        sub.pubsub = pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    sub.ready.set()
                elif message["type"] == "message":
                    self._wake(message["data"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a lost connection: the next waiter subscribes again
            _log.debug("load notifications from %s stopped: %s", node.name, exc)
        finally:
            sub.ready.clear()
            if self._subs.get(node.name) is sub:
                del self._subs[node.name]
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            # Wake every waiter: without a subscription they must look for themselves.
            for waiting in list(self._waiters.values()):
                for fut in waiting:
                    if not fut.done():
                        fut.set_result(None)

    def _wake(self, rkey: Any) -> None:
        for fut in self._waiters.get(rkey, ()):
            if not fut.done():
                fut.set_result(None)
