"""Type variables and aliases.

The callable aliases are generic: ``AsyncFunc[int]`` is ``Callable[..., Awaitable[int]]``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeAlias, TypeVar

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)
K = TypeVar("K")
V = TypeVar("V")
P = ParamSpec("P")
F = TypeVar("F", bound=Callable[..., Any])

JSON: TypeAlias = "dict[str, JSON] | list[JSON] | str | int | float | bool | None"
"""A value that ``json.dumps`` accepts and ``json.loads`` returns."""

PathLike: TypeAlias = str | os.PathLike[str]
"""A filesystem path given as text or path object."""

TimeValue: TypeAlias = int | float
"""A duration or instant in seconds."""

Primitive: TypeAlias = str | int | float | bool | None
"""A scalar value."""

Clock: TypeAlias = Callable[[], float]
"""A monotonic clock in seconds, such as ``time.monotonic`` or ``loop.time``; tests inject fakes."""

Callback: TypeAlias = Callable[..., None]
"""A synchronous notification callback."""

AsyncCallback: TypeAlias = Callable[..., Awaitable[None]]
"""An asynchronous notification callback."""

ErrorCallback: TypeAlias = Callable[[BaseException], None]
"""A synchronous callback receiving an exception."""

AsyncErrorCallback: TypeAlias = Callable[[BaseException], Awaitable[None]]
"""An asynchronous callback receiving an exception."""

CleanupCallback: TypeAlias = Callable[[], None]
"""A synchronous clean-up callback taking no arguments."""

AsyncCleanupCallback: TypeAlias = Callable[[], Awaitable[None]]
"""An asynchronous clean-up callback taking no arguments."""

SyncFunc: TypeAlias = Callable[..., T]
"""A synchronous function returning ``T``."""

AsyncFunc: TypeAlias = Callable[..., Awaitable[T]]
"""A function returning an awaitable of ``T`` (usually a coroutine function)."""

AsyncCallable: TypeAlias = Callable[P, Awaitable[T]]
"""An asynchronous callable with the parameters ``P``: ``AsyncCallable[[int], str]``."""

CoroFunc: TypeAlias = Callable[..., Coroutine[Any, Any, T]]
"""A coroutine function returning ``T``."""

AnyFunc: TypeAlias = Callable[..., T | Awaitable[T]]
"""A function that may be synchronous or asynchronous."""

Decorator: TypeAlias = Callable[[F], F]
"""A decorator that returns a callable of the same type as it was given."""
