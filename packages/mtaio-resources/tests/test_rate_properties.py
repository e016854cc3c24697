from hypothesis import given, settings
from hypothesis import strategies as st

from mtaio.resources import Limit, RateLimiter
from mtaio.typing import ManualClock

steps = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=2, allow_nan=False),
        st.floats(min_value=0.01, max_value=3, allow_nan=False),
    ),
    min_size=1,
    max_size=60,
)


def _never_above(taken: list[tuple[float, float]], rate: float, burst: float) -> None:
    for i, (start, _) in enumerate(taken):
        total = 0.0
        for end, tokens in taken[i:]:
            total += tokens
            assert total <= burst + rate * (end - start) + 1e-6


@settings(max_examples=100, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=50, allow_nan=False),
    burst=st.floats(min_value=3, max_value=20, allow_nan=False),
    ops=steps,
)
def test_no_window_takes_more_than_burst_plus_rate(
    rate: float, burst: float, ops: list[tuple[float, float]]
) -> None:
    clock = ManualClock()
    limiter = RateLimiter(rate, burst, clock=clock)
    level = burst  # a reference bucket
    taken: list[tuple[float, float]] = []
    for dt, tokens in ops:
        clock.advance(dt)
        level = min(burst, level + dt * rate)
        granted = limiter.try_acquire(tokens)
        if abs(level - tokens) > 1e-9:  # away from float ties: no token lost, none invented
            assert granted == (level >= tokens)
        if granted:
            level -= tokens
            taken.append((clock(), tokens))
    _never_above(taken, rate, burst)


@settings(max_examples=60, deadline=None)
@given(ops=steps)
def test_several_rates_each_hold(ops: list[tuple[float, float]]) -> None:
    clock = ManualClock()
    limiter = RateLimiter(10, 5, limits=[Limit(6, per=3, burst=4)], clock=clock)
    taken: list[tuple[float, float]] = []
    for dt, tokens in ops:
        clock.advance(dt)
        if tokens <= 4 and limiter.try_acquire(tokens):
            taken.append((clock(), tokens))
    _never_above(taken, 10, 5)
    _never_above(taken, 2, 4)
