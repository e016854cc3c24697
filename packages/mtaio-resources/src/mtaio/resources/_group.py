"""ResourceGroup (enter many async context managers as one) and ResourceManager (close many)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar, final

from mtaio.exceptions import ResourceError
from mtaio.typing import AsyncCloseable, call_maybe_async

__all__ = ("ResourceGroup", "ResourceManager")

_R = TypeVar("_R")
_C = TypeVar("_C", bound=AsyncCloseable)

logger = logging.getLogger("mtaio.resources")


def _is_async_cm(obj: object) -> bool:
    return hasattr(type(obj), "__aenter__") and hasattr(type(obj), "__aexit__")


def _raise_all(errors: list[BaseException], what: str) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise BaseExceptionGroup(f"{len(errors)} resources failed to {what}", errors)


@final
class ResourceGroup:
    """Resources used together: ``async with group`` enters them in order, exits in reverse.

    Resources that are async context managers are entered by ``async with group`` (one
    that fails to enter makes the group exit those already entered, then raise) and exited
    in reverse order when the block ends, each seeing the block's exception as a nested
    ``async with`` would. Resources that are only closeable (an async ``close()``) are
    closed at that point instead. Adding a resource to an entered group enters it at once;
    removing one from an entered group exits it at once.

    .. versionadded:: 0.1
    """

    __slots__ = ("_active", "_entered", "_resources")

    def __init__(self) -> None:
        self._resources: list[Any] = []
        self._entered: list[Any] = []
        self._active = False

    def __repr__(self) -> str:
        return f"ResourceGroup({len(self._resources)} resources, active={self._active})"

    def __len__(self) -> int:
        return len(self._resources)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._resources))

    def __contains__(self, resource: object) -> bool:
        return any(r is resource for r in self._resources)

    @property
    def active(self) -> bool:
        """Whether the group is entered."""
        return self._active

    async def add(self, resource: _R) -> _R:
        """Add ``resource``; if the group is entered, enter it now.

        Args:
            resource: An async context manager, or an object with an async ``close()``.

        Returns:
            ``resource`` itself (not what its ``__aenter__`` returns), for chaining.

        Raises:
            ResourceError: If it is already in the group, or is neither an async context
                manager nor closeable.
        """
        if resource in self:
            raise ResourceError(f"{resource!r} is already in the group")
        if not _is_async_cm(resource) and not callable(getattr(resource, "close", None)):
            raise ResourceError(
                f"{resource!r} is neither an async context manager nor has a close() method"
            )
        if self._active and _is_async_cm(resource):
            await type(resource).__aenter__(resource)  # type: ignore[attr-defined]
            self._entered.append(resource)
        self._resources.append(resource)
        return resource

    async def remove(self, resource: object) -> None:
        """Remove ``resource``; if the group is entered, exit (or close) it now.

        Args:
            resource: A resource added before.

        Raises:
            ResourceError: If it is not in the group.
        """
        for i, r in enumerate(self._resources):
            if r is resource:
                del self._resources[i]
                break
        else:
            raise ResourceError(f"{resource!r} is not in the group")
        if self._active:
            for i, r in enumerate(self._entered):
                if r is resource:
                    del self._entered[i]
                    break
            await self._exit_one(resource, None, None, None)

    @staticmethod
    async def _exit_one(
        resource: Any,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if _is_async_cm(resource):
            return bool(await type(resource).__aexit__(resource, exc_type, exc, tb))
        await call_maybe_async(resource.close)
        return False

    async def __aenter__(self) -> ResourceGroup:
        if self._active:
            raise ResourceError("the group is already entered")
        self._active = True
        self._entered = []
        try:
            for resource in list(self._resources):
                if _is_async_cm(resource):
                    await type(resource).__aenter__(resource)
                self._entered.append(resource)
        except BaseException as error:
            await self._unwind(type(error), error, error.__traceback__, reraise=False)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return await self._unwind(exc_type, exc, tb, reraise=True)

    async def _unwind(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        *,
        reraise: bool,
    ) -> bool:
        # The same rules as nested ``async with`` blocks (and AsyncExitStack): each exit sees
        # the exception pending at that point, may suppress it, or may replace it.
        original = exc
        entered, self._entered = self._entered, []
        self._active = False
        while entered:
            resource = entered.pop()
            try:
                if await self._exit_one(resource, exc_type, exc, tb):
                    exc_type, exc, tb = None, None, None
            except BaseException as error:
                if error is not exc:
                    error.__context__ = exc
                exc_type, exc, tb = type(error), error, error.__traceback__
        if not reraise:
            return False
        if exc is None:
            return original is not None  # suppressed by one of the exits
        if exc is original:
            return False
        raise exc


@final
class ResourceManager:
    """Registers closeable resources and closes them all, the newest first.

    Satisfies the :class:`mtaio.typing.ResourceManager` protocol. ``async with
    ResourceManager() as rm:`` closes whatever was registered when the block ends, also when
    it raises. A resource whose ``close()`` raises does not stop the others from closing;
    the error (or an exception group of them) is raised after all were tried.

    Example::

        async with ResourceManager() as resources:
            conn = await resources.acquire(await open_connection())
            ...  # conn is closed when the block ends, also on error

    .. versionadded:: 0.1
    """

    __slots__ = ("_resources",)

    def __init__(self) -> None:
        self._resources: list[AsyncCloseable] = []

    def __repr__(self) -> str:
        return f"ResourceManager({len(self._resources)} resources)"

    def __len__(self) -> int:
        return len(self._resources)

    def __contains__(self, resource: object) -> bool:
        return any(r is resource for r in self._resources)

    async def acquire(self, resource: _C) -> _C:
        """Register ``resource`` to be closed by :meth:`cleanup`.

        Args:
            resource: An object with an async ``close()``.

        Returns:
            ``resource`` itself.

        Raises:
            ResourceError: If ``resource`` has no ``close()`` method.
        """
        if not callable(getattr(resource, "close", None)):
            raise ResourceError(f"{resource!r} has no close() method")
        self._resources.append(resource)
        return resource

    async def release(self, resource: AsyncCloseable) -> None:
        """Close ``resource`` now and forget it.

        Args:
            resource: A registered resource.

        Raises:
            ResourceError: If it is not registered.
        """
        for i, r in enumerate(self._resources):
            if r is resource:
                del self._resources[i]
                break
        else:
            raise ResourceError(f"{resource!r} is not registered")
        await call_maybe_async(resource.close)

    async def cleanup(self) -> None:
        """Close every registered resource, the newest first.

        Raises:
            BaseException: The error of a ``close()`` that failed, or a
                :class:`BaseExceptionGroup` if several failed.
        """
        errors: list[BaseException] = []
        while self._resources:
            resource = self._resources.pop()
            try:
                await call_maybe_async(resource.close)
            except BaseException as error:
                logger.debug("closing %r failed", resource, exc_info=True)
                errors.append(error)
        _raise_all(errors, "close")

    @asynccontextmanager
    async def scope(self) -> AsyncIterator[ResourceManager]:
        """An async context manager that runs :meth:`cleanup` on the way out."""
        try:
            yield self
        finally:
            await self.cleanup()

    async def __aenter__(self) -> ResourceManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cleanup()
