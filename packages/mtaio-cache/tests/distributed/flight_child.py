"""A process of the cross-process single-flight tests: ``python flight_child.py JSON``.

JSON holds ``nodes`` (addresses), ``mode`` and ``lease_time``. The child builds a
DistributedCache, prints ``READY``, and waits for a line on stdin. Then:

* ``load``: 50 tasks call ``get_or_set("cold", loader)``; the loader takes 200 ms. The child
  prints one JSON line: its loader calls, the wall-clock times they started, the values
  its tasks got, and its ``load_waits``.
* ``hold``: one ``get_or_set`` whose loader prints ``LOADING <wall time>`` and then sleeps
  far longer than the test lasts: the parent SIGKILLs this process mid-load.
* ``tags``: reads every 25th of the ``members`` keys ``m<i>`` (tagged ``big`` by the
  parent) and prints how many it found, then, after a second line on stdin, reads them
  again and prints that count (the parent invalidated the tag in between).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from mtaio.cache import DistributedCache

TASKS = 50


async def main(config: dict[str, Any]) -> None:
    nodes = [tuple(n) for n in config["nodes"]]
    cache = DistributedCache[str](
        nodes, replication_factor=2, timeout=2.0, lease_time=float(config["lease_time"])
    )
    started: list[float] = []

    async def loader() -> str:
        started.append(time.time())
        if config["mode"] == "hold":
            print(f"LOADING {time.time()}", flush=True)
            await asyncio.sleep(60)
        await asyncio.sleep(0.2)
        return f"from {os.getpid()}"

    async with cache:
        await cache.get("warm-up")  # connections open before the start line
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if config["mode"] == "tags":
            keys = [f"m{i}" for i in range(0, int(config["members"]), 25)]
            print(len(await cache.get_many(keys)), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            print(len(await cache.get_many(keys)), flush=True)
            return
        values = await asyncio.wait_for(
            asyncio.gather(*(cache.get_or_set("cold", loader, ttl=60) for _ in range(TASKS))),
            30,
        )
        report = {
            "calls": len(started),
            "started": started,
            "values": sorted(set(values)),
            "load_waits": cache.stats().load_waits,
        }
        print(json.dumps(report), flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
