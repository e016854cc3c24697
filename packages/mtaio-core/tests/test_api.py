import dataclasses
import inspect

import pytest

import mtaio.core
from mtaio import exceptions


def test_all_lists_every_public_name_and_only_those() -> None:
    assert isinstance(mtaio.core.__all__, tuple)
    public = {
        name
        for name, obj in vars(mtaio.core).items()
        if not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
    }
    assert public <= set(mtaio.core.__all__)
    for name in mtaio.core.__all__:
        assert hasattr(mtaio.core, name), name


def test_classes_show_their_public_module() -> None:
    assert mtaio.core.TaskExecutor.__module__ == "mtaio.core"
    assert repr(mtaio.core.AsyncQueue).startswith("<class 'mtaio.core.AsyncQueue")


def test_errors_belong_to_the_mtaio_tree_and_to_asyncio() -> None:
    import asyncio

    assert issubclass(mtaio.core.ExecutorClosedError, exceptions.ExecutionError)
    assert issubclass(mtaio.core.QueueClosedError, exceptions.ResourceError)
    assert issubclass(mtaio.core.QueueEmptyError, asyncio.QueueEmpty)
    assert issubclass(mtaio.core.QueueFullError, asyncio.QueueFull)
    assert issubclass(mtaio.core.QueueFullError, exceptions.ResourceLimitError)


def test_stats_are_frozen_snapshots_that_asdict_turns_into_dicts() -> None:
    import asyncio

    executor = mtaio.core.TaskExecutor()
    queue = mtaio.core.PriorityQueue[str]()
    queue.put_nowait("a")
    latch = mtaio.core.Latch(2)
    snapshots: list[object] = [executor.stats(), queue.stats(), latch.stats()]
    assert [type(s).__name__ for s in snapshots] == ["ExecutorStats", "QueueStats", "LatchStats"]
    assert dataclasses.asdict(queue.stats()) == {
        "size": 1,
        "maxsize": 0,
        "getters": 0,
        "putters": 0,
        "unfinished": 1,
    }
    assert dataclasses.asdict(latch.stats()) == {"count": 2, "initial": 2, "waiters": 0}
    stats = executor.stats()
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.running = 1  # type: ignore[misc]
    assert not hasattr(stats, "__dict__")  # slots
    assert "ExecutorStats(running=0" in repr(executor)
    asyncio.run(executor.close())
