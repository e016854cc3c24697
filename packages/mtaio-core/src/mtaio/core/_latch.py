"""A countdown latch: waiters are released once the count reaches zero."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import final

from mtaio.exceptions import TimeoutError as MTAIOTimeoutError
from mtaio.exceptions import require_non_negative, require_non_negative_int, require_positive_int


@final
@dataclass(frozen=True, slots=True)
class LatchStats:
    """A snapshot of a latch's counters, from :meth:`Latch.stats`.

    Attributes:
        count: Count-downs still needed to open the latch (``0``: open).
        initial: The count given at creation.
        waiters: ``wait`` calls blocked now.
    """

    count: int
    initial: int
    waiters: int


@final
class Latch:
    """Release every waiter once :meth:`count_down` has been called ``count`` times.

    The count never goes below zero and never goes back up: once open, the latch stays open
    and :meth:`wait` returns at once. Needs no running event loop to be created.

    Args:
        count: How many count-downs open the latch; ``0`` makes an open latch.

    Raises:
        ConfigurationError: If ``count`` is negative.

    Example:
        >>> async def main():
        ...     latch = Latch(2)
        ...     await latch.count_down()
        ...     await latch.count_down()
        ...     return await latch.wait()
        >>> asyncio.run(main())
        True
    """

    __slots__ = ("_count", "_initial", "_waiters")

    def __init__(self, count: int) -> None:
        self._count = require_non_negative_int("count", count)
        self._initial = count
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def count(self) -> int:
        """How many count-downs are still needed to open the latch."""
        return self._count

    def get_count(self) -> int:
        """Return how many count-downs are still needed to open the latch."""
        return self._count

    def is_open(self) -> bool:
        """Return True once the count has reached zero."""
        return self._count == 0

    def count_down_nowait(self, n: int = 1) -> int:
        """Decrease the count by ``n`` (not below zero) without awaiting.

        Args:
            n: How much to count down; a positive integer.

        Returns:
            The count left.

        Raises:
            ConfigurationError: If ``n`` is not a positive integer.
        """
        require_positive_int("n", n)
        if self._count == 0:
            return 0
        self._count = max(0, self._count - n)
        if self._count == 0:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        return self._count

    async def count_down(self, n: int = 1) -> int:
        """Decrease the count by ``n`` (not below zero); at zero every waiter is released.

        Args:
            n: How much to count down; a positive integer.

        Returns:
            The count left.

        Raises:
            ConfigurationError: If ``n`` is not a positive integer.
        """
        return self.count_down_nowait(n)

    async def wait(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until the count reaches zero.

        Args:
            timeout: Seconds to wait at most; ``None`` waits for as long as it takes.

        Returns:
            True: the latch is open.

        Raises:
            ConfigurationError: If ``timeout`` is negative.
            TimeoutError: ``mtaio.exceptions.TimeoutError`` (also the builtin) if
                ``timeout`` passed first, as for every wait in mtaio.

        .. versionchanged:: 0.2
            A timeout raises instead of returning False.
        """
        if timeout is not None:
            require_non_negative("timeout", timeout)
        if self._count == 0:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            if timeout is None:
                await waiter
            else:
                async with asyncio.timeout(timeout):
                    await waiter
        except TimeoutError as error:
            if self._count == 0:
                return True
            raise MTAIOTimeoutError(
                f"the latch did not open within {timeout} s ({self._count} to go)",
                timeout=timeout,
            ) from error
        finally:
            if not waiter.done() or waiter.cancelled():
                waiter.cancel()
                # Gone already when the latch opened meanwhile (the list was swapped out).
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        return True

    def stats(self) -> LatchStats:
        """Return a :class:`LatchStats` snapshot: ``count``, ``initial`` and ``waiters``."""
        return LatchStats(
            count=self._count,
            initial=self._initial,
            waiters=sum(1 for w in self._waiters if not w.done()),
        )

    def __repr__(self) -> str:
        return f"<Latch count={self._count}/{self._initial}>"
