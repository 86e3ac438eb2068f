"""The canonical-form fast path of parse_tick gives exactly what the general path gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from marketflow.core.records import RecordError, _parse_canonical, _parse_tick

prices = st.one_of(
    st.floats(min_value=-1, max_value=2e7),
    st.sampled_from([float("nan"), float("inf"), -0.0, 1e-9]),
    st.integers(-5, 10**8),
    st.decimals(min_value=0, max_value=10_000, places=3).map(float),
    st.decimals(min_value=0, max_value=10_000, places=4).map(float),
)
turnovers = st.one_of(
    st.none(),
    st.floats(min_value=-1, max_value=1e12, allow_nan=False),
    st.integers(-5, 10**12),
    st.decimals(min_value=0, max_value=10**9, places=2).map(float),
    st.decimals(min_value=0, max_value=10**6, places=3).map(float),
)
ticks = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(["00700", "09988", "00000", "0700", "HSI", "99999"]),
        "ts": st.one_of(st.integers(0, 5 * 10**12), st.just(1_763_947_800_000)),
        "price": prices,
        "qty": st.one_of(st.integers(-5, 10**7), st.just(100)),
    },
    optional={
        "turnover": turnovers,
        "seq": st.one_of(st.none(), st.integers(0, 10**6), st.text(max_size=2)),
        "kind": st.sampled_from(["trade", "index", "quote"]),
    },
)


@settings(max_examples=3000, deadline=None)
@given(ticks)
def test_fast_path_agrees_with_general_path(obj: dict) -> None:
    fast = _parse_canonical(obj)
    if fast is None:
        return
    try:
        slow = _parse_tick(obj)
    except RecordError as error:  # the fast path must never accept what the general rejects
        raise AssertionError(f"fast path accepted {obj!r}; general path: {error}") from None
    assert fast == slow
