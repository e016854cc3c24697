"""The error policies of pipeline stages: "raise", "skip", Retry and DeadLetter."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, cast, final

from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    require_callable,
    require_non_negative,
    require_positive,
    require_positive_int,
)

# -- error policies --------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Error policy: hand a failed item to ``callback(item, error)`` and go on without it.

    Args:
        callback: A sync or async callable receiving the item and the exception.

    .. versionadded:: 0.1
    """

    callback: Callable[[Any, Exception], Any]

    def __post_init__(self) -> None:
        require_callable("callback", self.callback)


@final
@dataclass(frozen=True, slots=True)
class Retry:
    """Error policy: call the stage again, with exponential back-off and jitter.

    The names, defaults and meaning are the toolkit's one retry vocabulary, the same as
    ``mtaio.resources``: the wait before retry ``n`` (``n = 0`` for the first retry) is
    ``delay * factor**n``, plus the jitter, capped at ``max_delay``. ``jitter`` is either a
    number of seconds, added uniformly at random in ``[0, jitter]``, or ``"full"``: the
    whole wait is drawn uniformly in ``[0, computed wait]`` (AWS's "full jitter").
    ``jitter=0`` makes the waits exact (tests).

    Args:
        attempts: Total tries, the first included.
        delay: The first wait, in seconds (loop time).
        factor: Growth of the wait after each failed retry.
        max_delay: Ceiling of every wait, jitter included.
        jitter: Additive jitter in seconds, or ``"full"``.
        retry_on: Only these exception types are retried (a type or a tuple of types);
            others go straight to ``then``.
        then: What to do once the tries are used up: ``"raise"``, ``"skip"`` or a
            :class:`DeadLetter`.

    Raises:
        ConfigurationError: For a non-positive ``attempts`` or ``factor``, a negative or
            NaN wait, or a bad ``then``.
        ConfigurationTypeError: If an argument has the wrong type (``retry_on`` not
            exception types).

    .. versionchanged:: 0.2
        ``backoff`` is now ``delay`` and ``max_backoff`` is ``max_delay``; ``jitter`` added.

    .. versionadded:: 0.1
    """

    attempts: int = 3
    delay: float = 0.1
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: float | Literal["full"] = 0.1
    retry_on: type[Exception] | tuple[type[Exception], ...] = (Exception,)
    then: Literal["raise", "skip"] | DeadLetter = "raise"

    def __post_init__(self) -> None:
        require_positive_int("attempts", self.attempts)
        require_non_negative("delay", self.delay)
        require_positive("factor", self.factor)
        require_non_negative("max_delay", self.max_delay)
        jitter: object = self.jitter
        if jitter != "full":
            if isinstance(jitter, str):
                raise ConfigurationTypeError(
                    f'jitter must be a non-negative number or "full", got {jitter!r}'
                )
            require_non_negative("jitter", cast("float", jitter))
        retry_on: object = self.retry_on
        if isinstance(retry_on, type):
            retry_on = (retry_on,)
            object.__setattr__(self, "retry_on", retry_on)
        if not isinstance(retry_on, tuple) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in retry_on
        ):
            raise ConfigurationTypeError(
                f"retry_on must be an exception type or a tuple of them, got {retry_on!r}"
            )
        _check_policy(self.then, "then", allow_retry=False)

    def wait(self, retry: int) -> float:
        """The wait before retry ``retry`` (0 for the first retry), jitter drawn afresh.

        Args:
            retry: The number of retries already made.

        Returns:
            Seconds to wait, at most ``max_delay``.
        """
        if not self.delay:
            wait = 0.0
        else:
            try:
                wait = self.delay * self.factor**retry
            except OverflowError:  # a float power past 1.8e308: the cap applies anyway
                wait = math.inf
        if self.jitter == "full":
            wait = random.uniform(0.0, min(wait, self.max_delay))
        elif self.jitter:
            wait += random.uniform(0.0, self.jitter)
        return min(wait, self.max_delay)


OnError: TypeAlias = Literal["raise", "skip"] | Retry | DeadLetter
"""An error policy: ``"raise"`` (default), ``"skip"``, :class:`Retry`, :class:`DeadLetter`."""


def _check_policy(policy: object, name: str, *, allow_retry: bool = True) -> None:
    kinds: tuple[type, ...] = (Retry, DeadLetter) if allow_retry else (DeadLetter,)
    if policy in ("raise", "skip") or isinstance(policy, kinds):
        return
    accepted = (
        '"raise", "skip", Retry(...) or DeadLetter(...)'
        if allow_retry
        else ('"raise", "skip" or DeadLetter(...)')
    )
    raise ConfigurationError(f"{name} must be {accepted}, got {policy!r}")
