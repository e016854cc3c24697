import builtins
import pickle

import pytest

import mtaio.exceptions as exc
from mtaio.exceptions import (
    CacheConnectionError,
    CacheKeyError,
    CircuitBreakerError,
    ConfigurationError,
    ConfigurationTypeError,
    DependencyError,
    EventHandlerError,
    MTAIOError,
    MTAIOErrorGroup,
    RateLimitError,
    ResourceLimitError,
    ResourceTimeoutError,
    RetryError,
    StageError,
    TimeoutError,
    format_exception,
    wrap_exception,
)

ERROR_CLASSES = [
    obj
    for name in exc.__all__
    if isinstance(obj := getattr(exc, name), type) and issubclass(obj, BaseException)
]
GROUP_CLASSES = [cls for cls in ERROR_CLASSES if issubclass(cls, BaseExceptionGroup)]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_is_an_mtaio_error(cls: type[BaseException]) -> None:
    assert issubclass(cls, MTAIOError)
    error: MTAIOError
    if issubclass(cls, BaseExceptionGroup):
        error = cls("something happened", [ValueError("a")])
        assert str(error) == "something happened (1 sub-exception)"
    else:
        error = cls("something happened")
        assert str(error) == "something happened"
    assert error.message == "something happened"


@pytest.mark.parametrize("cls", GROUP_CLASSES, ids=lambda c: c.__name__)
def test_several_failures_are_one_exception_group(cls: type[MTAIOErrorGroup]) -> None:
    first, second = ValueError("a"), KeyError("b")
    with pytest.raises(ExceptionGroup) as info:
        raise cls("two failed", [first, second])
    assert isinstance(info.value, MTAIOError)
    assert info.value.exceptions == (first, second)


def test_except_star_splits_keep_the_class_and_attributes() -> None:
    caught: list[EventHandlerError] = []
    try:
        raise EventHandlerError("2 failed", [ValueError("a"), KeyError("b")], "user.created")
    except* ValueError as group:
        assert isinstance(group, EventHandlerError)
        caught.append(group)
    except* KeyError as group:
        assert isinstance(group, EventHandlerError)
        caught.append(group)
    assert [len(g.errors) for g in caught] == [1, 1]
    assert {g.event_name for g in caught} == {"user.created"}
    assert [type(g.errors[0]) for g in caught] == [ValueError, KeyError]


def test_a_limit_wait_that_runs_out_of_time_is_a_timeout_and_a_limit_error() -> None:
    with pytest.raises(builtins.TimeoutError):
        raise ResourceTimeoutError("waited 1 s for a token", timeout=1.0)
    assert issubclass(ResourceTimeoutError, ResourceLimitError)
    assert issubclass(ResourceTimeoutError, TimeoutError)
    assert ResourceTimeoutError("x", timeout=1.0).timeout == 1.0


def test_the_predecessor_names_still_import() -> None:
    assert RateLimitError is ResourceLimitError


def test_a_missing_dependency_is_an_import_error() -> None:
    with pytest.raises(ImportError, match="pip install"):
        raise DependencyError("needs redis-py: pip install 'mtaio-cache[redis]'")


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (TimeoutError, builtins.TimeoutError),
        (CacheKeyError, KeyError),
        (CacheConnectionError, ConnectionError),
        (ConfigurationError, ValueError),
        (ConfigurationTypeError, TypeError),
        (ConfigurationTypeError, ValueError),
    ],
)
def test_errors_are_caught_by_their_builtin_twin(
    cls: type[MTAIOError], builtin: type[BaseException]
) -> None:
    with pytest.raises(builtin) as info:
        raise cls("boom")
    assert isinstance(info.value, MTAIOError)


def test_timeout_error_is_not_the_builtin_itself() -> None:
    assert TimeoutError is not builtins.TimeoutError
    with pytest.raises(builtins.TimeoutError):
        raise TimeoutError("late", timeout=1.5)


def test_key_error_keeps_a_plain_message() -> None:
    assert str(CacheKeyError("missing key 'a'")) == "missing key 'a'"


def test_message_and_extra_args() -> None:
    error = MTAIOError("failed", 1, "two")
    assert error.message == "failed"
    assert error.args == ("failed", 1, "two")
    assert MTAIOError().message == ""


def test_structured_errors_keep_their_attributes() -> None:
    cause = ValueError("bad")
    retry = RetryError("gave up", attempts=3, last_error=cause)
    assert (retry.attempts, retry.last_error) == (3, cause)
    breaker = CircuitBreakerError("open", failures=5, reset_timeout=30.0)
    assert (breaker.failures, breaker.reset_timeout) == (5, 30.0)
    handlers = EventHandlerError("2 handlers failed", [cause, KeyError("k")], "user.created")
    assert handlers.errors[0] is cause and len(handlers.errors) == 2
    assert handlers.event_name == "user.created"
    stage = StageError("stage failed", stage="validate", item={"id": 1})
    assert (stage.stage, stage.item) == ("validate", {"id": 1})
    assert TimeoutError("late", timeout=2.0).timeout == 2.0


@pytest.mark.parametrize(
    "error",
    [
        RetryError("gave up", attempts=3, last_error=ValueError("x")),
        CircuitBreakerError("open", failures=5, reset_timeout=30.0),
        TimeoutError("late", timeout=2.0),
        EventHandlerError("h", [ValueError("a")], "e"),
        MTAIOErrorGroup("g", [ValueError("a"), KeyError("b")]),
        CacheKeyError("k"),
        MTAIOError("m", 1),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_survive_pickling(error: MTAIOError) -> None:
    # Errors cross process boundaries (process pools, logging handlers): nothing may be lost.
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert repr(clone.args) == repr(error.args)
    assert clone.message == error.message
    assert {k: repr(v) for k, v in vars(clone).items()} == {
        k: repr(v) for k, v in vars(error).items()
    }


def test_format_exception_shows_type_message_attributes_and_cause_chain() -> None:
    try:
        try:
            raise ConnectionRefusedError("node 127.0.0.1:5000 refused")
        except ConnectionRefusedError as inner:
            raise RetryError("gave up after 3 attempts", attempts=3, last_error=inner) from inner
    except RetryError as error:
        text = format_exception(error)
    lines = text.splitlines()
    assert lines[0] == "mtaio.exceptions.RetryError: gave up after 3 attempts"
    assert "    attempts = 3" in lines
    assert any(line.startswith("    last_error = ConnectionRefusedError(") for line in lines)
    assert lines[-1] == "Caused by: ConnectionRefusedError: node 127.0.0.1:5000 refused"


def test_format_exception_never_shows_bound_methods() -> None:
    error = MTAIOError("x")
    error.callback = error.with_traceback  # type: ignore[attr-defined]
    error.count = 2  # type: ignore[attr-defined]
    error._private = 1  # type: ignore[attr-defined]
    text = format_exception(error)
    assert "callback" not in text and "_private" not in text
    assert "count = 2" in text


def test_format_exception_follows_implicit_context_but_not_suppressed() -> None:
    try:
        try:
            raise KeyError("a")
        except KeyError:
            raise ValueError("b") from None
    except ValueError as error:
        assert format_exception(error) == "ValueError: b"
    try:
        try:
            raise KeyError("a")
        except KeyError:
            raise ValueError("") from None
    except ValueError as error:
        error.__suppress_context__ = False
        assert format_exception(error) == "ValueError\nDuring handling of: KeyError: 'a'"


def test_format_exception_stops_on_cycles() -> None:
    a, b = ValueError("a"), ValueError("b")
    a.__cause__, b.__cause__ = b, a
    assert format_exception(a).splitlines() == ["ValueError: a", "Caused by: ValueError: b"]


def test_wrap_exception_returns_new_type_with_cause() -> None:
    original = OSError("disk full")
    wrapped = wrap_exception(original, StageError, "stage write failed")
    assert isinstance(wrapped, StageError)
    assert wrapped.__cause__ is original
    assert wrapped.message == "stage write failed"
    assert wrap_exception(original, MTAIOError).message == "disk full"
    assert wrap_exception(KeyError(), MTAIOError).message == "KeyError"


def test_wrap_exception_rejects_non_mtaio_types() -> None:
    with pytest.raises(ConfigurationTypeError, match="new_type must be a subclass of MTAIOError"):
        wrap_exception(ValueError("x"), ValueError)  # type: ignore[type-var]
