"""Property: one emission reaches every emitter reachable through links exactly once."""

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mtaio.events import Event, EventEmitter

edges_strategy = st.integers(min_value=1, max_value=7).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=20),
        st.integers(0, n - 1),
    )
)


def reachable(n: int, edges: list[tuple[int, int]], start: int) -> set[int]:
    seen = {start}
    stack = [start]
    while stack:
        node = stack.pop()
        for a, b in edges:
            if a == node and b not in seen:
                seen.add(b)
                stack.append(b)
    return seen


@settings(max_examples=150, deadline=None)
@given(edges_strategy)
async def test_exactly_once_over_random_graphs(
    case: tuple[int, list[tuple[int, int]], int],
) -> None:
    n, edges, start = case
    emitters = [EventEmitter() for _ in range(n)]
    counts = [0] * n
    for i, emitter in enumerate(emitters):

        def count(event: Event[Any], i: int = i) -> None:
            counts[i] += 1

        emitter.on("*", count)
    for a, b in edges:
        emitters[a].pipe(emitters[b])
    await emitters[start].emit("x", 1)
    expected = reachable(n, edges, start)
    assert counts == [1 if i in expected else 0 for i in range(n)]
