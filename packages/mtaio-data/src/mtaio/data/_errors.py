"""Errors specific to mtaio.data, each a subclass of the matching :mod:`mtaio.exceptions` class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

from mtaio.exceptions import MTAIOErrorGroup, StageError


class PipelineErrorGroup(StageError, MTAIOErrorGroup):
    """Every failure of one pipeline call: an exception group that is also a ``StageError``.

    A stage that fails under the ``"raise"`` policy (and a failed ``cleanup``) surfaces from
    every :class:`~mtaio.data.Pipeline` entry point as this group. It holds the original
    exceptions, each with a note naming the stage and the item, so ``except* ValueError:``
    picks out the failures you handle; with concurrent stages it holds every item that had
    failed by the time the pipeline stopped. As a :class:`~mtaio.exceptions.StageError` it
    describes the first failure: :attr:`stage`, :attr:`item` and ``__cause__``, so
    ``except StageError`` code keeps working.

    Args:
        message: What failed.
        exceptions: The original exceptions, first failure first (at least one).
        stage: The name of the stage of the first failure.
        item: The item of the first failure (``None`` for a cleanup or a flush).

    .. versionadded:: 0.2
    """

    def __new__(
        cls,
        message: str,
        exceptions: Sequence[Exception],
        stage: str | None = None,
        item: object = None,
    ) -> Self:
        return MTAIOErrorGroup.__new__(cls, message, exceptions)

    def __init__(
        self,
        message: str,
        exceptions: Sequence[Exception],
        stage: str | None = None,
        item: object = None,
    ) -> None:
        MTAIOErrorGroup.__init__(self, message, exceptions)
        self.stage = stage
        self.item = item
