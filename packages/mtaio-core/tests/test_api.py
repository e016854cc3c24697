import inspect

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
