"""Reading and writing the replicas of a key: quorums, untrusted bytes, read repair.

Everything a node returns is untrusted. An answer that is not a valid envelope, whose
version is far ahead of the local clock (see :class:`~._envelope.HybridClock`), or whose
payload does not decode, makes that replica *corrupt* for the read: it is skipped, the next
replica is asked, and the corrupt one is rewritten with the value found (read repair). Only
when no replica gives a usable answer does the read raise :class:`CacheSerializationError`.

Repairs never overwrite a newer value: a repair of a replica that had nothing is a
``SET ... NX``; a repair of a stale one is ``SET ... GET``, and if the value it replaced turns
out to be newer than the copy (a write landed between our read and our repair), that value
is written back. Per-node ordering (one batch in flight per node) makes this converge.

Time: a read waits at most ``timeout`` in all. A node whose batch is slow releases its reads
at half the timeout (so a second replica can still answer in time), and the fall-over to the
next replica is bounded by what remains of the read's ``timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any, Final

from mtaio.exceptions import CacheConnectionError, CacheError

from ._distributed_node import CacheTimeoutError, Command, Failure, NodeLink
from ._envelope import (
    KIND_TOMBSTONE,
    Envelope,
    HybridClock,
    mac_context,
    pack_header,
    unpack_envelope,
)
from ._hashing import HashRing
from ._serial import CacheSerializationError, Serializer, context_binding, load_or_raise

__all__ = ("MISSING", "Replicas", "check_reply", "glob_escape", "held_value")

_log: Final = logging.getLogger("mtaio.cache")
_SCAN_COUNT: Final = 500
MISSING: Final[Any] = object()
"""What a read returns for a key with no live value (missing, expired or deleted)."""

_Answer = tuple[NodeLink, Envelope | None]


class Replicas:
    """The replica set of a cache: placement, the read and write paths, and read repair.

    Holds the state both the public :class:`~mtaio.cache.DistributedCache` and its recovery
    logic (``_recovery.py``) share. Counters live in ``_stats``.
    """

    __slots__ = (
        "_bind",
        "_by_name",
        "_closed",
        "_hlc",
        "_loads",
        "_max_drift_ms",
        "_prefix",
        "_r",
        "_repair_chance",
        "_rf",
        "_ring",
        "_serializer",
        "_stats",
        "_tasks",
        "_timeout",
        "_w",
        "_writer",
    )

    def __init__(
        self,
        *,
        rf: int,
        r: int,
        w: int,
        prefix: bytes,
        serializer: Serializer,
        timeout: float,
        repair_chance: float,
        max_drift_ms: int,
    ) -> None:
        self._rf = rf
        self._r = r
        self._w = w
        self._prefix = prefix
        self._serializer = serializer
        self._loads = serializer.loads
        self._bind = context_binding(serializer)
        self._timeout = timeout
        self._repair_chance = repair_chance
        self._max_drift_ms = max_drift_ms
        self._hlc = HybridClock(max_drift_ms)
        self._writer = random.getrandbits(32)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._stats = dict.fromkeys(
            (
                "hits",
                "misses",
                "reads",
                "writes",
                "deletes",
                "repairs",
                "resyncs",
                "corrupt",
                "clock_anomalies",
                "loads",
                "load_errors",
                "load_waits",
            ),
            0,
        )
        self._ring: HashRing[NodeLink] = HashRing([])
        self._by_name: dict[str, NodeLink] = {}

    # -- placement --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise CacheConnectionError("DistributedCache is closed")

    def _live(self, rkey: bytes) -> list[NodeLink]:
        """The replicas of ``rkey`` that take writes (up), preferred first."""
        self._check_open()
        prefs = self._ring.preference(rkey, self._rf)
        live = [n for n in prefs if n.up]
        if not live:
            raise CacheConnectionError(
                f"every replica of {rkey.decode(errors='replace')!r} is down: "
                + ", ".join(n.name for n in prefs)
            )
        return live

    def _readable(self, rkey: bytes) -> list[NodeLink]:
        """The replicas of ``rkey`` whose reads are trusted (up and not resynchronising)."""
        self._check_open()
        prefs = self._ring.preference(rkey, self._rf)
        live = [n for n in prefs if n.up and n.readable]
        if not live:
            raise CacheConnectionError(
                f"no replica of {rkey.decode(errors='replace')!r} can serve reads "
                "(down, or resynchronising after a restart): " + ", ".join(n.name for n in prefs)
            )
        return live

    # -- encoding ---------------------------------------------------------------------------

    def _encode(
        self,
        rkey: bytes,
        kind: int,
        value: Any,
        px: int,
        *,
        encoded: bytes | None = None,
        tags: bytes = b"",
    ) -> bytes:
        """The envelope of a new version of ``rkey`` (``value`` encoded unless ``encoded``).

        ``tags`` is the packed tag section of a ``KIND_TAGGED`` value; it is signed with
        the header by a context-binding serializer.
        """
        expires_at = int(time.time() * 1000) + px if px else 0
        header = pack_header(kind, self._hlc.now(), self._writer, expires_at) + tags
        if encoded is not None:
            return header + encoded
        if self._bind:
            payload = self._serializer.dumps(value, context=mac_context(rkey, header))  # type: ignore[call-arg]
        else:
            payload = self._serializer.dumps(value)
        return header + payload

    def _unpack(self, rkey: bytes, raw: bytes) -> Envelope:
        """Parse a node's answer; refuse garbage and versions beyond the clock's drift."""
        env = unpack_envelope(raw)
        if env.version > self._hlc.last and not self._hlc.observe(env.version):
            self._clock_anomaly(rkey, env)
        return env

    def _clock_anomaly(self, rkey: bytes, env: Envelope) -> None:
        self._stats["clock_anomalies"] = count = self._stats["clock_anomalies"] + 1
        if count & (count - 1) == 0:  # the 1st, 2nd, 4th, 8th... : a flood stays readable
            ahead = ((env.version >> 16) - int(time.time() * 1000)) / 1000
            _log.warning(
                "refusing the copy of %r whose version is %.0f s ahead of this clock "
                "(more than max_clock_drift=%.0f s): a skewed writer or a planted value "
                "(%d such copies so far)",
                rkey.decode(errors="replace"),
                ahead,
                self._max_drift_ms / 1000,
                count,
            )
        raise CacheSerializationError(
            f"the stored version of {rkey.decode(errors='replace')!r} is further ahead of "
            "this clock than max_clock_drift allows"
        )

    def _value(self, rkey: bytes, env: Envelope) -> Any:
        """Decode the payload of a value envelope; any failure is a CacheSerializationError."""
        if self._bind:
            try:
                return self._serializer.loads(  # type: ignore[call-arg]
                    env.payload, context=mac_context(rkey, env.header)
                )
            except CacheSerializationError:
                raise
            except (Exception, RecursionError) as exc:
                raise CacheSerializationError(f"stored value could not be decoded: {exc}") from exc
        return load_or_raise(self._serializer, env.payload)

    def _decode(
        self, rkey: bytes, raw: bytes | None, decode: bool = True
    ) -> tuple[Envelope | None, Any]:
        """``(envelope, value)`` of one answer; ``MISSING`` value for a miss or a tombstone.

        ``decode=False`` leaves the payload as it is (the value is the payload bytes).
        """
        if raw is None:
            return None, MISSING
        env = self._unpack(rkey, raw)
        if env.kind == KIND_TOMBSTONE:
            return env, MISSING
        return env, self._value(rkey, env) if decode else env.payload

    # -- reads ------------------------------------------------------------------------------

    async def _read(
        self, rkey: bytes, start: float | None = None, decode: bool = True
    ) -> tuple[Envelope | None, Any]:
        """Read ``rkey`` at the read quorum: ``(newest envelope, its value or MISSING)``.

        Raises:
            CacheConnectionError: Too few replicas answered within ``timeout``.
            CacheSerializationError: Every replica that answered holds something unusable.
        """
        live = self._readable(rkey)
        if start is None:
            start = time.monotonic()
        if self._r != 1:
            return await self._read_quorum(rkey, live, start, decode)
        cmd = (b"GET", rkey)
        error: CacheError | None = None
        corrupt: list[NodeLink] = []
        for i, node in enumerate(live):
            fut = node.submit_read(cmd)
            res = await fut if i == 0 else await self._within(fut, start, node)
            if res.__class__ is Failure:
                if error is None or not isinstance(error, CacheSerializationError):
                    error = res.error
                continue
            try:
                env, value = self._decode(rkey, res, decode)
            except CacheSerializationError as exc:
                error = exc
                corrupt.append(node)
                self._stats["corrupt"] += 1
                continue
            if corrupt and env is not None:
                for bad in corrupt:
                    self._repair(bad, rkey, env, empty=False)
            if self._repair_chance and i + 1 < len(live) and random.random() < self._repair_chance:
                self._background_check(rkey, node, env, live[i + 1 :])
            return env, value
        assert error is not None
        raise error

    async def _read_many(
        self, rkeys: list[bytes], decode: bool = True
    ) -> list[tuple[Envelope | None, Any]]:
        """Read every key; with ``read_quorum=1`` in one round trip per node."""
        if self._r != 1:
            return list(await asyncio.gather(*(self._read(rk, None, decode) for rk in rkeys)))
        # One GET per key to its first readable replica, all queued before the first await
        # so they share each node's round trip.
        firsts = [(rk, self._readable(rk)[0].submit_read((b"GET", rk))) for rk in rkeys]
        out: list[tuple[Envelope | None, Any]] = []
        failed: list[int] = []
        for rk, fut in firsts:
            res = await fut
            if res.__class__ is Failure:
                failed.append(len(out))
                out.append((None, MISSING))
                continue
            try:
                out.append(self._decode(rk, res, decode))
            except CacheSerializationError:
                self._stats["corrupt"] += 1
                out.append(await self._read(rk, None, decode))  # skips and repairs it
        if failed:
            # The keys whose replica failed (or was released as slow) fall over together,
            # pipelined again: one by one, 100k of them would cost 100k round trips.
            seconds = []
            for i in failed:
                rk = rkeys[i]
                live = self._readable(rk)  # the failed replica is first if still listed
                node = live[-1] if len(live) > 1 else live[0]
                seconds.append((i, rk, node.submit_read((b"GET", rk))))
            for i, rk, fut in seconds:
                res = await fut
                if res.__class__ is not Failure:
                    try:
                        out[i] = self._decode(rk, res, decode)
                        continue
                    except CacheSerializationError:
                        self._stats["corrupt"] += 1
                # A fresh time budget: a read of many keys may take longer than one timeout.
                out[i] = await self._read(rk, None, decode)
        return out

    async def _within(self, fut: asyncio.Future[Any], start: float, node: NodeLink) -> Any:
        """``await fut`` for what remains of the operation's timeout, else a Failure."""
        remaining = start + self._timeout - time.monotonic()
        if remaining > 0:
            try:
                return await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                pass
        return Failure(
            CacheTimeoutError(
                f"read not answered within {self._timeout} s (last tried {node.name})",
                timeout=self._timeout,
            ),
            transport=False,
        )

    async def _read_quorum(
        self, rkey: bytes, live: list[NodeLink], start: float, decode: bool
    ) -> tuple[Envelope | None, Any]:
        need = self._r
        if len(live) < need:
            raise CacheConnectionError(
                f"read quorum {need} unreachable for {rkey.decode(errors='replace')!r}: "
                f"only {len(live)} of its replicas can serve reads"
            )
        cmd = (b"GET", rkey)
        pending = {live[i].submit_read(cmd): live[i] for i in range(need)}
        spare = live[need:]
        answers: list[tuple[NodeLink, Envelope | None]] = []
        corrupt: list[NodeLink] = []
        errors: list[str] = []
        bad: CacheSerializationError | None = None
        while pending:
            remaining = start + self._timeout - time.monotonic()
            done: set[asyncio.Future[Any]] = set()
            if remaining > 0:
                done, _ = await asyncio.wait(
                    pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
            if not done:
                late = ", ".join(n.name for n in pending.values())
                errors.append(f"{late} did not answer within {self._timeout} s")
                break
            for fut in done:
                node = pending.pop(fut)
                res = fut.result()
                if res.__class__ is Failure:
                    errors.append(str(res.error))
                    if spare:
                        nxt = spare.pop(0)
                        pending[nxt.submit_read(cmd)] = nxt
                    continue
                try:
                    env = None if res is None else self._unpack(rkey, res)
                except CacheSerializationError as exc:
                    bad = exc  # a replica holding garbage is repaired like a stale one
                    corrupt.append(node)
                    self._stats["corrupt"] += 1
                    env = None
                answers.append((node, env))
        if len(answers) < need:
            raise CacheConnectionError(
                f"read quorum {need} not reached for {rkey.decode(errors='replace')!r}: "
                + "; ".join(errors)
            )
        # The newest answer whose value decodes wins; one that does not is corrupt too.
        while True:
            newest = self._newest(answers)
            if newest is None:
                if bad is not None:
                    raise bad
                return None, MISSING
            try:
                if newest.kind == KIND_TOMBSTONE:
                    value = MISSING
                else:
                    value = self._value(rkey, newest) if decode else newest.payload
            except CacheSerializationError as exc:
                bad = exc
                self._stats["corrupt"] += 1
                answers = [(n, None if e is newest else e) for n, e in answers]
                continue
            break
        self._repair_stale(rkey, answers, newest)
        return newest, value

    @staticmethod
    def _newest(answers: list[_Answer]) -> Envelope | None:
        newest: Envelope | None = None
        for _, env in answers:
            if env is not None and (newest is None or env.order > newest.order):
                newest = env
        return newest

    def _background_check(
        self, rkey: bytes, first: NodeLink, env: Envelope | None, others: list[NodeLink]
    ) -> None:
        """Read repair for ``read_quorum=1``: compare the other replicas off the hot path."""
        answers: list[_Answer] = [(first, env)]
        left = len(others)

        def on_done(node: NodeLink, fut: asyncio.Future[Any]) -> None:
            nonlocal left
            left -= 1
            res = fut.result()
            if res.__class__ is not Failure:
                try:
                    answers.append((node, None if res is None else self._unpack(rkey, res)))
                except CacheSerializationError:
                    answers.append((node, None))  # garbage is overwritten like a stale copy
            if left == 0:
                newest = self._newest(answers)
                if newest is not None:
                    self._repair_stale(rkey, answers, newest)

        for node in others:
            node.submit_read((b"GET", rkey)).add_done_callback(partial(on_done, node))

    def _repair_stale(self, rkey: bytes, answers: list[_Answer], newest: Envelope) -> None:
        """Rewrite every answer older than ``newest`` (or missing or corrupt) with it."""
        for node, env in answers:
            if env is None or env.order < newest.order:
                self._repair(node, rkey, newest, empty=False)

    def _repair(self, node: NodeLink, rkey: bytes, newest: Envelope, *, empty: bool) -> None:
        """Copy ``newest`` to ``node`` without ever replacing a newer value there.

        ``empty``: the node had nothing (``SET NX``); otherwise ``SET ... GET`` and, should
        the replaced value be newer after all, it is written back (see the module notes).
        """
        # Fire and forget: the write joins the node's next batch; its future resolves on its
        # own. A value already past its expiry is not copied.
        cmd: tuple[Any, ...] = (b"SET", rkey, newest.raw)
        if newest.expires_at:
            px = newest.expires_at - int(time.time() * 1000)
            if px <= 0:
                return
            cmd += (b"PX", min(px, 1 << 50))
        self._stats["repairs"] += 1
        if empty:
            node.submit((*cmd, b"NX"))
        else:
            node.submit((*cmd, b"GET")).add_done_callback(
                partial(self._repair_replaced, node, rkey, newest)
            )

    def _repair_replaced(
        self, node: NodeLink, rkey: bytes, copied: Envelope, fut: asyncio.Future[Any]
    ) -> None:
        old = fut.result()
        if not isinstance(old, bytes) or self._closed:
            return
        try:
            env = unpack_envelope(old)
            if env.kind != KIND_TOMBSTONE:
                self._value(rkey, env)  # a newer copy that does not decode is garbage too
        except CacheSerializationError:
            return  # garbage was replaced: that was the point
        # Newer, and not a version from beyond the clock's drift (replacing one was right).
        if env.order > copied.order and self._hlc.observe(env.version):
            self._repair(node, rkey, env, empty=False)

    # -- writes -----------------------------------------------------------------------------

    def _submit_write(
        self, rkey: bytes, raw: bytes, px: int, get: bool = False
    ) -> list[asyncio.Future[Any]]:
        return self._send_write(self._live(rkey), rkey, raw, px, get)

    def _submit_write_then(
        self, rkey: bytes, raw: bytes, px: int, get: bool, link: NodeLink, command: Command
    ) -> tuple[list[asyncio.Future[Any]], asyncio.Future[Any] | None]:
        """Submit a write, and ``command`` to ``link`` behind it when the write goes there alone.

        When the key's live replicas are ``link`` alone, ``command`` is queued right behind the
        write in the same loop iteration: both leave in one batch (one round trip) on one
        connection, and the server runs ``command`` only after the write is applied. A
        PUBLISH sent this way reaches the subscribers after the new value is readable.
        Otherwise ``command`` is not submitted (the second future is ``None``): the caller
        sends it once the write quorum answered.
        """
        live = self._live(rkey)
        futs = self._send_write(live, rkey, raw, px, get)
        if len(live) == 1 and live[0] is link:
            return futs, link.submit(command)
        return futs, None

    def _send_write(
        self, live: list[NodeLink], rkey: bytes, raw: bytes, px: int, get: bool
    ) -> list[asyncio.Future[Any]]:
        if len(live) < self._w:
            raise CacheConnectionError(
                f"write quorum {self._w} unreachable for {rkey.decode(errors='replace')!r}: "
                f"only {len(live)} of its replicas are up"
            )
        cmd: tuple[Any, ...] = (b"SET", rkey, raw, b"PX", px) if px else (b"SET", rkey, raw)
        if get:
            cmd += (b"GET",)
        return [n.submit(cmd) for n in live]

    async def _wait_write(self, rkey: bytes, futs: list[asyncio.Future[Any]]) -> list[Any]:
        """Wait for the write quorum; return the replies of the replicas that acknowledged."""
        if len(futs) == 1:
            return [check_reply(await futs[0])]
        need = self._w
        errors: list[str] = []
        replies: list[Any] = []
        ok = 0
        # Wait for the quorum only: replicas beyond it finish on their own (their futures
        # always resolve, to a value or a Failure, so nothing is left unobserved).
        loop = asyncio.get_running_loop()
        quorum: asyncio.Future[None] = loop.create_future()
        left = len(futs)

        def on_done(fut: asyncio.Future[Any]) -> None:
            nonlocal ok, left
            left -= 1
            if quorum.done():
                return
            res = fut.result()
            if res.__class__ is Failure:
                errors.append(str(res.error))
                if ok + left < need:
                    quorum.set_result(None)
            else:
                ok += 1
                replies.append(res)
                if ok >= need:
                    quorum.set_result(None)

        for fut in futs:
            fut.add_done_callback(on_done)
        await quorum
        if ok < need:
            raise CacheConnectionError(
                f"write quorum {need} not reached for {rkey.decode(errors='replace')!r}: "
                + "; ".join(errors)
            )
        return replies

    async def _write_all(
        self, prepared: list[tuple[bytes, bytes, int]], get: bool = False
    ) -> list[list[Any]]:
        """Write every ``(rkey, raw, px)``; raise after all if any missed its quorum."""
        submitted = [(rk, self._submit_write(rk, raw, px, get)) for rk, raw, px in prepared]
        errors: list[BaseException] = []
        replies: list[list[Any]] = []
        for rk, futs in submitted:
            try:
                replies.append(await self._wait_write(rk, futs))
            except CacheError as exc:
                errors.append(exc)
        if errors:
            raise CacheConnectionError(
                f"{len(errors)} of {len(prepared)} writes failed; first: {errors[0]}"
            )
        return replies

    async def _scan(self, node: NodeLink) -> AsyncIterator[list[bytes]]:
        pattern = glob_escape(self._prefix) + b"*"
        cursor = b"0"
        while True:
            reply = check_reply(
                await node.submit((b"SCAN", cursor, b"MATCH", pattern, b"COUNT", _SCAN_COUNT))
            )
            cursor, keys = reply[0], list(reply[1])
            yield keys
            if cursor in (b"0", 0):
                return


def held_value(replies: list[Any]) -> bool:
    """Whether any ``SET ... GET`` reply shows a live value (not a tombstone) was replaced."""
    for old in replies:
        if isinstance(old, bytes):
            try:
                if unpack_envelope(old).is_value:
                    return True
            except CacheSerializationError:
                return True  # something foreign was there, and is gone now
    return False


def check_reply(reply: Any) -> Any:
    """The reply itself, or the error of a :class:`Failure` raised."""
    if reply.__class__ is Failure:
        raise reply.error
    return reply


def glob_escape(prefix: bytes) -> bytes:
    """``prefix`` with the glob metacharacters of SCAN MATCH escaped."""
    out = bytearray()
    for byte in prefix:
        if byte in b"*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)
