"""Node health for a DistributedCache: probing down nodes, resynchronising recovered ones.

A node that failed (a lost connection, a timeout) may have restarted empty or missed writes
while unreachable. From its first failure it takes writes but serves no reads
(``NodeLink.readable`` is False), and once it answers again it is resynchronised from its
peers: every key it is a replica of that a peer holds newer, or that it lacks, is copied to
it. Only when a resynchronisation completes without the node failing again are its reads
trusted again. So with ``write_quorum + read_quorum > replication_factor`` every
acknowledged write stays readable through a node's crash and empty restart: a read never
asks a replica that may have lost it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from mtaio.exceptions import CacheError

from ._distributed_node import Failure, NodeLink
from ._replicas import Replicas
from ._serial import CacheSerializationError

__all__ = ("Recovery",)

_log: Final = logging.getLogger("mtaio.cache")


class Recovery(Replicas):
    """Adds probing of down nodes and resynchronisation of recovered ones to the replicas."""

    __slots__ = ("_down_backoff", "_max_backoff", "_resync_again", "_resyncing", "_suspects")

    def __init__(self, *, down_backoff: float, max_backoff: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._down_backoff = down_backoff
        self._max_backoff = max_backoff
        self._resyncing: set[str] = set()
        self._resync_again: set[str] = set()
        self._suspects: set[str] = set()

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _node_down(self, node: NodeLink) -> None:
        if not self._closed:
            self._track(asyncio.get_running_loop().create_task(self._probe(node)))

    def _node_recovered(self, node: NodeLink) -> None:
        if self._closed or self._rf == 1:
            return
        if node.name in self._resyncing:
            self._resync_again.add(node.name)  # run once more when the current one ends
            return
        self._resyncing.add(node.name)
        self._track(asyncio.get_running_loop().create_task(self._resync(node)))

    def _node_unreadable(self, node: NodeLink) -> None:
        if not self._closed and node.name not in self._suspects:
            self._suspects.add(node.name)
            self._track(asyncio.get_running_loop().create_task(self._probe_suspect(node)))

    async def _probe_suspect(self, node: NodeLink) -> None:
        """Ping a node that failed but is not down, so it recovers without traffic of its own.

        Reads avoid an unreadable node; without this, a node that failed once and receives
        no writes would never get the successful request that starts its resync.
        """
        backoff = self._down_backoff
        try:
            while not self._settled(node):
                await asyncio.sleep(backoff)
                if self._settled(node) or node.name in self._resyncing:
                    return
                # A success after failures makes the link call _node_recovered itself.
                await node.submit((b"PING",))
                backoff = min(backoff * 2, self._max_backoff)
        finally:
            self._suspects.discard(node.name)

    def _settled(self, node: NodeLink) -> bool:
        """Nothing for a suspect probe to do: readable again, down (probed), or closed."""
        return node.readable or not node.up or self._closed

    async def _probe(self, node: NodeLink) -> None:
        backoff = self._down_backoff
        while True:
            await asyncio.sleep(backoff)
            if not isinstance(await node.submit((b"PING",)), Failure):
                node.mark_up()
                _log.warning("cache node %s answers again: re-admitted", node.name)
                self._node_recovered(node)
                return
            backoff = min(backoff * 2, self._max_backoff)

    async def _resync(self, node: NodeLink) -> None:
        """Copy to ``node`` every key it should hold that its peers have newer or it lacks."""
        since = node.errors
        complete = False
        try:
            for peer in self._by_name.values():
                if peer is node or not peer.up:
                    continue
                try:
                    async for keys in self._scan(peer):
                        mine = [k for k in keys if node in self._ring.preference(k, self._rf)]
                        if mine:
                            await self._resync_keys(node, peer, mine)
                except CacheError as exc:
                    _log.warning("resync of %s from %s stopped: %s", node.name, peer.name, exc)
                    if not node.up or node.errors != since:
                        return
            # The copies above are queued on the node ahead of this PING: once it answers,
            # they are all applied, and the node's reads can be trusted again.
            if isinstance(await node.submit((b"PING",)), Failure):
                return
            complete = True
            self._stats["resyncs"] += 1
        finally:
            self._resyncing.discard(node.name)
            if complete and node.mark_readable(since):
                _log.info("cache node %s resynchronised: serving reads again", node.name)
            if node.name in self._resync_again:
                self._resync_again.discard(node.name)
                self._node_recovered(node)

    async def _resync_keys(self, node: NodeLink, peer: NodeLink, keys: list[bytes]) -> None:
        theirs = [peer.submit((b"GET", k)) for k in keys]
        ours = [node.submit((b"GET", k)) for k in keys]
        for key, tf, of in zip(keys, theirs, ours, strict=True):
            t, o = await tf, await of
            if t is None or t.__class__ is Failure:
                continue
            if o.__class__ is Failure:
                raise o.error
            try:
                newest = self._unpack(key, t)
            except CacheSerializationError:
                continue  # a foreign (or planted) value on the peer: not ours to copy
            if o is not None:
                try:
                    if self._unpack(key, o).order >= newest.order:
                        continue
                except CacheSerializationError:
                    pass  # garbage on the node: overwrite it
            self._repair(node, key, newest, empty=o is None)
