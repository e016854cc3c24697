"""Seed snippets 1 and 4, which span two packages each, run verbatim."""

from collections.abc import Callable
from typing import Any

import pytest

from mtaio.cache import TTLCache
from mtaio.events import Event, EventEmitter
from mtaio.exceptions import EventHandlerError, StageError

Loader = Callable[..., dict[str, Any]]


# Snippet 1: an EventEmitter whose handler runs a Pipeline and re-emits the result.


async def test_snippet_1_validates_enriches_and_re_emits(seed_snippet: Loader) -> None:
    ns = seed_snippet(1)
    emitter = await ns["setup_event_pipeline"]()
    processed: list[Event[dict[str, Any]]] = []
    emitter.on("processed_action", processed.append)

    await emitter.emit("user_action", {"user_id": 7, "action": "login"})

    assert len(processed) == 1
    data = processed[0].data
    assert data["user_id"] == 7
    assert data["action"] == "login"
    assert isinstance(data["timestamp"], float)  # added by EnrichmentStage


async def test_snippet_1_rejects_data_without_user_id(seed_snippet: Loader) -> None:
    ns = seed_snippet(1)
    emitter = await ns["setup_event_pipeline"]()
    processed: list[Event[Any]] = []
    emitter.on("processed_action", processed.append)

    with pytest.raises(EventHandlerError) as info:
        await emitter.emit("user_action", {"action": "login"})

    assert processed == []
    (failure,) = info.value.errors
    assert isinstance(failure, StageError)
    assert failure.stage == "ValidationStage"
    assert isinstance(failure.__cause__, ValueError)
    assert str(failure.__cause__) == "user_idが見つかりません"


async def test_snippet_1_failure_goes_to_an_error_listener_when_there_is_one(
    seed_snippet: Loader,
) -> None:
    ns = seed_snippet(1)
    emitter = await ns["setup_event_pipeline"]()
    errors: list[Event[Any]] = []
    emitter.on("error", errors.append)

    await emitter.emit("user_action", {"action": "login"})  # does not raise

    assert len(errors) == 1


async def test_snippet_1_concurrent_events_share_the_reentrant_pipeline(
    seed_snippet: Loader,
) -> None:
    import asyncio

    ns = seed_snippet(1)
    emitter = await ns["setup_event_pipeline"]()
    processed: list[int] = []
    emitter.on("processed_action", lambda event: processed.append(event.data["user_id"]))

    await asyncio.gather(*(emitter.emit("user_action", {"user_id": i}) for i in range(50)))

    assert sorted(processed) == list(range(50))


# Snippet 4: a TTLCache invalidated through an EventEmitter.


async def test_snippet_4_update_invalidates_the_written_key(seed_snippet: Loader) -> None:
    ns = seed_snippet(4)
    invalidator = ns["CacheInvalidator"]()
    assert isinstance(invalidator.cache, TTLCache)
    assert isinstance(invalidator.emitter, EventEmitter)
    await invalidator.cache.set("other", "kept")

    # update_data writes the key, then announces it: the handler deletes it again.
    await invalidator.update_data("user:1", "Ada")

    assert await invalidator.cache.get("user:1") is None
    assert await invalidator.cache.get("other") == "kept"
    await invalidator.cache.close()


async def test_snippet_4_clear_all_and_missing_keys(seed_snippet: Loader) -> None:
    ns = seed_snippet(4)
    invalidator = ns["CacheInvalidator"]()
    await invalidator.cache.set_many({"a": "1", "b": "2"})

    # deleting a key that is not there is not an error
    await invalidator.emitter.emit("data_updated", {"affected_keys": ["missing"]})
    assert len(invalidator.cache) == 2

    await invalidator.emitter.emit("data_updated", {"clear_all": True})
    assert len(invalidator.cache) == 0
    await invalidator.cache.close()
