import pytest

import mtaio.events
from mtaio.events import Event, EventPriority
from mtaio.events._event import compile_pattern


def test_event_is_positional_and_defaults() -> None:
    event = Event("user.login", {"id": 1})
    assert event.name == "user.login"
    assert event.data == {"id": 1}
    assert event.metadata == {}
    assert event.propagate is True


def test_event_metadata_is_copied_and_settable() -> None:
    source = {"k": 1}
    event = Event("a", None, source)
    event.metadata["x"] = 2
    assert source == {"k": 1}
    event.metadata = {"y": 3}
    assert event.metadata == {"y": 3}


def test_event_stop_propagation_and_copy() -> None:
    event = Event("a", 1, {"m": 1})
    event.stop_propagation()
    assert event.propagate is False
    clone = event.copy()
    assert clone.propagate is True
    assert clone == event
    assert clone is not event


def test_event_equality_and_repr() -> None:
    assert Event("a", 1) == Event("a", 1)
    assert Event("a", 1) != Event("a", 2)
    assert Event("a", 1) != ("a", 1)
    assert repr(Event("a", 1)) == "Event('a', 1, metadata={})"
    with pytest.raises(TypeError):
        hash(Event("a", 1))


def test_event_is_generic() -> None:
    event = Event[int]("n", 3)
    assert event.data == 3


def test_priorities_order() -> None:
    order = sorted(EventPriority, reverse=True)
    assert order == [
        EventPriority.HIGHEST,
        EventPriority.HIGH,
        EventPriority.NORMAL,
        EventPriority.LOW,
        EventPriority.LOWEST,
        EventPriority.MONITOR,
    ]


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*", "anything.at.all", True),
        ("**", "a", True),
        ("user.*", "user.login", True),
        ("user.*", "user.login.failed", False),
        ("user.*", "user", False),
        ("user.**", "user.login.failed", True),
        ("*.login", "user.login", True),
        ("*.login", "admin.user.login", False),
        ("user.log?n", "user.login", True),
        ("user.log?n", "user.log.n", False),
        ("a+b.*", "a+b.c", True),
        ("a+b.*", "aab.c", False),
    ],
)
def test_patterns(pattern: str, name: str, expected: bool) -> None:
    assert compile_pattern(pattern)(name) is expected


def test_all_is_a_tuple_of_public_names() -> None:
    assert isinstance(mtaio.events.__all__, tuple)
    for name in mtaio.events.__all__:
        assert hasattr(mtaio.events, name), name
    public = {
        n
        for n, v in vars(mtaio.events).items()
        if not n.startswith("_") and isinstance(v, type) and v.__module__ == "mtaio.events"
    }
    assert public <= set(mtaio.events.__all__)
    assert mtaio.events.EventEmitter.__module__ == "mtaio.events"


def test_events_made_by_the_emitter_pickle_as_plain_events() -> None:
    import pickle

    from mtaio.events._event import BareEvent

    bare = BareEvent()
    bare.name, bare.data, bare._metadata, bare.propagate = "a", [1], {"m": 2}, True
    clone = pickle.loads(pickle.dumps(bare))
    assert type(clone) is Event
    assert clone == bare == Event("a", [1], {"m": 2})


def test_events_without_metadata_pickle_and_keep_what_is_written_later() -> None:
    import pickle

    from mtaio.events._event import BareEvent

    # The emitter leaves the metadata slot empty when none is given: every path that reads
    # it (the property, equality, repr, copy, pickling) must treat that as an empty dict.
    bare = BareEvent()
    bare.name, bare.data, bare.propagate = "a", 1, True
    assert pickle.loads(pickle.dumps(bare)) == Event("a", 1) == bare
    plain = Event("b", 2)
    clone = pickle.loads(pickle.dumps(plain))
    assert clone == plain and clone.metadata == {}
    plain.metadata["k"] = "v"  # made on first read, then kept
    assert plain.metadata == {"k": "v"} == plain.copy().metadata
