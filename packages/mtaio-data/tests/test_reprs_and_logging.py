"""What users see when they print the objects they hold, and the package logger."""

from __future__ import annotations

import logging

from mtaio.data import Change, ChangeType, MapStage, Observable, ObservableValue, Pipeline


async def test_pipeline_repr_names_the_stages() -> None:
    p = Pipeline[int, str](buffer_size=8).add_stage(MapStage(abs, name="abs"))
    p.add_stage(MapStage(str), concurrency=4)
    assert repr(p) == "<Pipeline [abs -> map(str) x4] buffer_size=8>"
    async with p:
        assert repr(p).endswith("buffer_size=8 entered=1>")
    assert repr(Pipeline[int, int]()) == "<Pipeline [] buffer_size=0>"


async def test_observable_reprs_show_the_counts() -> None:
    obs = Observable[int]()
    obs.add_observer(lambda change: None)
    await obs.notify(Change(ChangeType.ADD, 1))
    assert repr(obs) == "<Observable observers=1 notifications=1 failures=0>"
    async with obs.batch_operations():
        assert repr(obs).endswith(" batching>")
    assert repr(ObservableValue("a")) == "ObservableValue('a')"  # its value, as before


def test_the_package_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger("mtaio.data").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)
