"""Run a CacheNode in a child process for the resource tests: ``python node_child.py JSON``.

JSON holds ``node`` (CacheNode keyword arguments), optionally ``keys`` (how many small keys
``k:<i>`` to store first) and ``big`` (the size of a value stored under ``big``); they are
written through the node's own protocol. The child prints ``PORT <n>`` once ready and stops
when its stdin closes (the test ended, or died).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from mtaio.cache import CacheNode


def pack(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


async def fill(address: tuple[str, int], keys: int, big: int) -> None:
    reader, writer = await asyncio.open_connection(*address)
    requests = [pack(b"SET", b"k:%d" % i, b"v") for i in range(keys)]
    if big:
        requests.append(pack(b"SET", b"big", b"x" * big))
    for start in range(0, len(requests), 1000):
        batch = requests[start : start + 1000]
        writer.write(b"".join(batch))
        for _ in batch:
            assert await reader.readline() == b"+OK\r\n"
    writer.close()
    await writer.wait_closed()


async def main(config: dict[str, Any]) -> None:
    node = CacheNode("child", ("127.0.0.1", 0), **config.get("node", {}))
    async with node:
        await fill(node.address, int(config.get("keys", 0)), int(config.get("big", 0)))
        print(f"PORT {node.address[1]}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
