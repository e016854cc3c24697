"""A worker process for the multi-process channel tests (run as a script, never collected).

Usage: python _channel_worker.py MODE URL NAME [ARGS...]; prints JSON lines on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from mtaio.events import (
    Channel,
    ChannelConnectionError,
    RedisPubSubTransport,
    RedisStreamsTransport,
)


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def pubsub_subscriber(url: str, name: str, publishers: int, seconds: float) -> None:
    transport = RedisPubSubTransport(url, max_backoff=0.2)
    async with Channel[dict[str, Any]](name, transport=transport) as channel:
        sub = await channel.subscribe("t.*", maxsize=100_000)
        say(event="ready")
        got: dict[str, list[int]] = {}
        done = 0
        async with asyncio.timeout(seconds):
            while done < publishers:
                message = await sub.receive()
                if message.data.get("done"):
                    done += 1
                    continue
                got.setdefault(message.topic or "", []).append(message.data["i"])
        stats = transport.stats()
        say(event="result", got=got, missed=sub.stats().missed, reconnects=stats.reconnects)


async def pubsub_publisher(url: str, name: str, me: int, count: int, pause: float) -> None:
    transport = RedisPubSubTransport(url)
    attempts = failures = 0
    async with Channel[dict[str, Any]](name, transport=transport) as channel:
        topic = f"t.p{me}"
        for i in range(count):
            attempts += 1
            try:
                await channel.publish({"i": i}, topic=topic)
                if i == 50:
                    say(event="started")
            except ChannelConnectionError:
                failures += 1
                await asyncio.sleep(0.05)
            if pause:
                await asyncio.sleep(pause)
        while True:  # the end marker must arrive
            attempts += 1
            try:
                await channel.publish({"done": True}, topic=topic)
                break
            except ChannelConnectionError:
                failures += 1
                await asyncio.sleep(0.05)
    say(event="result", topic=topic, attempts=attempts, failures=failures)


async def streams_publisher(url: str, name: str, me: int, count: int, poison: int) -> None:
    async with Channel[dict[str, Any]](name, transport=RedisStreamsTransport(url)) as channel:
        for i in range(count):
            await channel.publish({"p": me, "i": i}, topic="jobs")
        for _ in range(poison):
            await channel.publish({"p": me, "poison": True}, topic="jobs")
    say(event="result", published=count)


async def streams_consumer(url: str, name: str, out: str, pause: float) -> None:
    transport = RedisStreamsTransport(url, claim_idle=0.5, max_deliveries=3, block=0.1)
    async with Channel[dict[str, Any]](name, transport=transport) as channel:
        sub = await channel.subscribe("jobs", group="workers", maxsize=20, auto_ack=False)
        say(event="ready")
        # Line-buffered, so the lines written before a SIGKILL stay; a test worker may block.
        with Path(out).open("a", buffering=1) as log:  # noqa: ASYNC230
            async for message in sub:
                data = message.data
                if data.get("poison"):
                    log.write(f"poison {message.deliveries}\n")
                    continue  # the handler "fails": never acknowledged
                if pause:
                    await asyncio.sleep(pause)
                log.write(f"{data['p']}:{data['i']} {message.deliveries}\n")
                await message.ack()


def main() -> None:
    mode, url, name, *args = sys.argv[1:]
    if mode == "pubsub-sub":
        run = pubsub_subscriber(url, name, int(args[0]), float(args[1]))
    elif mode == "pubsub-pub":
        run = pubsub_publisher(url, name, int(args[0]), int(args[1]), float(args[2]))
    elif mode == "streams-pub":
        run = streams_publisher(url, name, int(args[0]), int(args[1]), int(args[2]))
    elif mode == "streams-consumer":
        run = streams_consumer(url, name, args[0], float(args[1]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    asyncio.run(run)


if __name__ == "__main__":
    main()
