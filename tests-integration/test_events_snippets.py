"""Seed snippet 2 (event filtering and transformation) runs verbatim on mtaio.events."""

from collections.abc import Callable
from typing import Any

from mtaio.events import Event, EventEmitter


async def test_snippet_2_runs_verbatim(seed_snippet: Callable[..., dict[str, Any]]) -> None:
    ns = seed_snippet(2)
    assert await ns["setup_event_processing"]() is None
    assert ns["EventEmitter"] is EventEmitter
    assert ns["Event"] is Event


async def test_snippet_2_graph_delivers_each_event_once(
    seed_snippet: Callable[..., dict[str, Any]],
) -> None:
    seed_snippet(2)
    # The snippet's function returns nothing; the same graph, built the same way:
    emitter = EventEmitter()
    filtered = emitter.filter(lambda event: event.data.get("priority") == "high")
    transformed = emitter.map(lambda event: Event(event.name, {**event.data, "processed": True}))
    emitter.pipe(filtered)
    filtered.pipe(transformed)

    seen_filtered: list[Event[Any]] = []
    seen_transformed: list[Event[Any]] = []
    filtered.on("*", seen_filtered.append)
    transformed.on("*", seen_transformed.append)
    originals: list[Event[Any]] = []
    emitter.on("*", originals.append)

    high = {"priority": "high", "id": 1}
    low = {"priority": "low", "id": 2}
    await emitter.emit("task", high)
    await emitter.emit("task", low)
    await emitter.emit("other", {"priority": "high", "id": 3})

    assert [e.data["id"] for e in seen_filtered] == [1, 3]
    assert [e.data for e in seen_transformed] == [
        {"priority": "high", "id": 1, "processed": True},
        {"priority": "low", "id": 2, "processed": True},
        {"priority": "high", "id": 3, "processed": True},
    ]
    assert [e.name for e in seen_transformed] == ["task", "task", "other"]
    # the original events are never mutated by map()
    assert high == {"priority": "high", "id": 1}
    assert low == {"priority": "low", "id": 2}
    assert all("processed" not in e.data for e in originals)
