"""Readable formatting of exceptions, and wrapping one into an mtaio error."""

from __future__ import annotations

from typing import TypeVar

from ._errors import MTAIOError

E = TypeVar("E", bound=MTAIOError)

_MAX_CHAIN = 32


def _own_attributes(exc: BaseException) -> list[tuple[str, object]]:
    """Public, non-callable attributes an exception carries beyond ``args``."""
    state = getattr(exc, "__dict__", {})
    return [
        (name, value)
        for name, value in sorted(state.items())
        if not name.startswith("_") and name != "message" and not callable(value)
    ]


def _one(exc: BaseException) -> str:
    name = type(exc).__qualname__
    module = type(exc).__module__
    if module not in ("builtins", "__main__"):
        name = f"{module}.{name}"
    text = str(exc)
    lines = [f"{name}: {text}" if text else name]
    lines.extend(f"    {key} = {value!r}" for key, value in _own_attributes(exc))
    return "\n".join(lines)


def format_exception(exc: BaseException) -> str:
    """Describe an exception and its cause chain as readable text.

    Each exception in the chain is shown as its qualified type name and message, followed by
    its own public attributes (``attempts``, ``timeout``, ...), never bound methods. Causes
    (``raise ... from``) and, failing that, implicit contexts follow, oldest last.

    Args:
        exc: The exception to describe.

    Returns:
        The description, one exception per paragraph.
    """
    parts = [_one(exc)]
    seen = {id(exc)}
    current: BaseException | None = exc
    while current is not None and len(parts) < _MAX_CHAIN:
        if current.__cause__ is not None:
            link, nxt = "Caused by", current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            link, nxt = "During handling of", current.__context__
        else:
            break
        if id(nxt) in seen:
            break
        seen.add(id(nxt))
        parts.append(f"{link}: {_one(nxt)}")
        current = nxt
    return "\n".join(parts)


def wrap_exception(exc: BaseException, new_type: type[E], message: str | None = None) -> E:
    """Build an mtaio error that records ``exc`` as its cause.

    The new error is returned, not raised, so callers write ``raise wrap_exception(...)``
    and the traceback points at their own line.

    Args:
        exc: The original exception.
        new_type: The mtaio error class to build; it must accept a message as first argument.
        message: The new error's message; by default the original's text, or its type name.

    Returns:
        An instance of ``new_type`` whose ``__cause__`` is ``exc``.

    Raises:
        ConfigurationTypeError: If ``new_type`` is not a subclass of MTAIOError.
    """
    candidate: object = new_type  # checked at run time: callers may not be type-checked
    if not (isinstance(candidate, type) and issubclass(candidate, MTAIOError)):
        from ._errors import ConfigurationTypeError

        raise ConfigurationTypeError(f"new_type must be a subclass of MTAIOError, got {new_type!r}")
    if message is None:
        message = str(exc) or type(exc).__name__
    wrapped = new_type(message)
    wrapped.__cause__ = exc
    return wrapped
