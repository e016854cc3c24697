"""Type-checked by mypy, never run: the public generics and overloads behave for users."""

from typing import assert_type

from mtaio.exceptions import ConfigurationError, StageError, require_positive, wrap_exception
from mtaio.typing import AsyncFunc, Result, call_maybe_async


async def checks() -> None:
    assert_type(Result.ok(3), Result[int])
    assert_type(Result.ok("x").unwrap(), str)
    assert_type(Result[int].fail(ValueError()).value, int | None)

    async def fetch(key: str) -> bytes:
        return key.encode()

    def size(key: str) -> int:
        return len(key)

    assert_type(await call_maybe_async(fetch, "k"), bytes)
    assert_type(await call_maybe_async(size, "k"), int)

    handler: AsyncFunc[bytes] = fetch
    assert_type(await handler("k"), bytes)

    assert_type(require_positive("rate", 2), int)
    assert_type(require_positive("rate", 2.5), float)
    assert_type(wrap_exception(OSError(), StageError), StageError)
    assert_type(wrap_exception(OSError(), ConfigurationError, "bad"), ConfigurationError)
