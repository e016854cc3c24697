"""The Pub/Sub channel transport on the embedded CacheNode: several processes, no server.

CacheNode speaks PUBLISH/SUBSCRIBE/PSUBSCRIBE as Redis does, so ``RedisPubSubTransport``
runs on it unchanged: the demo can fan events out between processes with nothing installed.
"""

from __future__ import annotations

from typing import Any

from mtaio.cache import CacheNode
from mtaio.events import Channel, RedisPubSubTransport


async def test_pubsub_transport_runs_against_the_embedded_cache_node() -> None:
    async with CacheNode("events-node") as node:
        host, port = node.address
        url = f"redis://{host}:{port}/0"
        receiving = RedisPubSubTransport(url)
        async with (
            Channel[dict[str, Any]]("orders", transport=receiving) as inbox,
            Channel[dict[str, Any]]("orders", transport=RedisPubSubTransport(url)) as outbox,
        ):
            exact = await inbox.subscribe("order.created")
            one_level = await inbox.subscribe("order.*")
            any_depth = await inbox.subscribe("order.**")
            # Redis counts one receiver per matching subscription: SUBSCRIBE and PSUBSCRIBE
            assert await outbox.publish({"id": 1}, topic="order.created") == 2
            await outbox.publish({"id": 2}, topic="order.item.added")
            await outbox.publish({"id": 3}, topic="order.paid", metadata={"by": "card"})
            assert [(await exact.receive(timeout=5)).data["id"]] == [1]
            assert [(await one_level.receive(timeout=5)).data["id"] for _ in range(2)] == [1, 3]
            got = [await any_depth.receive(timeout=5) for _ in range(3)]
            assert [m.topic for m in got] == ["order.created", "order.item.added", "order.paid"]
            assert got[2].metadata == {"by": "card"}
            assert exact.qsize() == one_level.qsize() == any_depth.qsize() == 0
            assert receiving.stats().missed == receiving.stats().malformed == 0
