"""The invalidation channel of a LayeredCache: its messages, and the subscription that reads it.

Messages are JSON objects with a sender id ``"s"`` and one of ``"k"`` (keys), ``"t"`` (tags)
or ``"c"`` (clear). :func:`notice` builds the PUBLISH command of one, and :func:`parse` reads
one back; everything read from the channel is untrusted, so :func:`parse` checks types and
size and raises :class:`ValueError` on anything else.

:func:`subscribe` holds one subscription on its own connection and reads it in a tight loop:
one ``read_response`` per message and a direct call of the handler, with no per-message
timeout, task or dict (redis-py's ``PubSub.get_message(timeout=...)`` arms a timeout, runs
a health check and builds a message dict for each one). Liveness is a separate watchdog
task, one per subscription: after a heartbeat without traffic it sends PING, and when
another heartbeat passes without any reply it ends the read loop, so a subscription silent
for two to three heartbeats counts as lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NoReturn

from ._distributed_node import Command

if TYPE_CHECKING:
    from redis.asyncio.connection import AbstractConnection, ConnectionPool

__all__ = ("MAX_MESSAGE", "notice", "own_suffix", "parse", "subscribe")

MAX_MESSAGE: Final = 1 << 20  # bytes; larger messages are malformed (and flush)


def notice(channel: bytes, sender: str, body: dict[str, Any]) -> Command:
    """The PUBLISH command of the message ``body`` from ``sender`` on ``channel``.

    The sender comes last, so a process recognises its own messages by their ending
    (:func:`own_suffix`) without decoding them.
    """
    body.pop("s", None)
    body["s"] = sender
    return (b"PUBLISH", channel, json.dumps(body, separators=(",", ":")).encode())


def own_suffix(sender: str) -> bytes:
    """How every message :func:`notice` builds for ``sender`` ends."""
    return b',"s":' + json.dumps(sender).encode() + b"}"


def parse(data: Any, sender: str, suffix: bytes) -> tuple[str, list[str]] | None:
    """Read one message: ``("k", keys)``, ``("t", tags)``, ``("c", [])``, or ``None`` if ours.

    Args:
        data: The payload as read from the channel (untrusted).
        sender: This process's sender id.
        suffix: ``own_suffix(sender)``: a payload ending so is ours, skipped undecoded (a
            forged one is skipped too, as a forged sender id in the JSON would be).

    Raises:
        ValueError: ``data`` is not a valid message (too large, not JSON, wrong types).
    """
    if data.__class__ is not bytes or len(data) > MAX_MESSAGE:
        raise ValueError("not bytes, or too large")
    if data.endswith(suffix):
        return None  # our own: already applied before publishing
    try:
        body = json.loads(data)
    except RecursionError:
        raise ValueError("nested too deep") from None
    if body.__class__ is not dict or body.get("s").__class__ is not str:
        raise ValueError("no sender")
    if body["s"] == sender:
        return None  # our own: already applied before publishing
    for kind in ("k", "t"):
        names = body.get(kind)
        if names is not None:
            if names.__class__ is not list or not all(n.__class__ is str for n in names):
                raise ValueError("keys and tags must be strings")
            return kind, names
    if "c" in body:
        return "c", []
    raise ValueError("no keys, tags or clear")


async def subscribe(
    pool: ConnectionPool,
    channel: bytes,
    heartbeat: float,
    connect_timeout: float,
    on_subscribed: Callable[[], None],
    on_message: Callable[[Any], None],
) -> NoReturn:
    """Subscribe to ``channel`` on a new connection of ``pool`` and read it until it is lost.

    ``on_subscribed`` runs when the server confirms the subscription, ``on_message`` with
    the payload of each message, both in the read loop itself. Never returns: it raises
    when the connection is lost, closed, or silent past the heartbeat (``ConnectionError``),
    when connecting (with the client's handshake) takes over ``connect_timeout`` seconds
    (``TimeoutError``), or when it is cancelled; the connection is closed either way.
    """
    loop = asyncio.get_running_loop()
    conn: AbstractConnection = pool.make_connection()  # type: ignore[no-untyped-call]
    received = 0  # replies read; the watchdog watches it move
    watchdog: asyncio.Task[None] | None = None

    async def watch(deadline: asyncio.Timeout) -> None:
        try:
            while True:
                seen = received
                await asyncio.sleep(heartbeat)
                if received != seen:
                    continue
                await conn.send_command(b"PING", check_health=False)
                await asyncio.sleep(heartbeat)
                if received == seen:
                    break
        except Exception:  # the PING could not be sent: the connection is gone
            pass
        deadline.reschedule(loop.time())  # ends the read loop with TimeoutError

    try:
        async with asyncio.timeout(connect_timeout):
            await conn.connect()  # type: ignore[no-untyped-call]
        async with asyncio.timeout(None) as deadline:
            await conn.send_command(b"SUBSCRIBE", channel, check_health=False)
            watchdog = loop.create_task(watch(deadline))
            read = conn.read_response
            while True:
                reply = await read(disconnect_on_error=False)
                received += 1
                if reply.__class__ is list and len(reply) == 3:
                    kind = reply[0]
                    if kind == b"message":
                        on_message(reply[2])
                    elif kind == b"subscribe":
                        on_subscribed()
                # Anything else (the PING's pong) only shows the connection is alive.
    except TimeoutError:
        if watchdog is None:
            raise
        raise ConnectionError(f"no answer to the heartbeat ping within {heartbeat} s") from None
    finally:
        if watchdog is not None:
            watchdog.cancel()  # not awaited: an outer cancellation must not be swallowed
        with contextlib.suppress(Exception):
            await conn.disconnect(nowait=True)
