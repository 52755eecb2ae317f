"""Properties of percentiles, intervals and histograms, for any input (hypothesis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from perflab import statistics

METHODS = sorted(statistics.METHODS)

latency = st.floats(min_value=0.0, max_value=1e7, allow_nan=False, width=64)
samples = st.one_of(
    st.lists(latency, min_size=1, max_size=300),
    # All-equal samples, one sample included.
    st.builds(lambda v, n: [v] * n, latency, st.integers(min_value=1, max_value=50)),
)
percentile_lists = st.lists(
    st.floats(min_value=0.0, max_value=100.0, allow_nan=False), min_size=1, max_size=8
)


@settings(max_examples=200, deadline=None)
@given(samples, percentile_lists, st.sampled_from(METHODS))
def test_percentiles_are_monotonic_in_q_and_within_the_range(values, ps, method):
    ps = sorted(ps)
    got = statistics.percentiles(values, ps, method)
    results = [got[statistics.percentile_column(p)] for p in ps]
    assert all(a <= b for a, b in zip(results, results[1:], strict=False))
    assert all(min(values) <= r <= max(values) for r in results)


@settings(max_examples=100, deadline=None)
@given(latency, st.integers(min_value=1, max_value=40), st.sampled_from(METHODS))
def test_all_equal_samples_give_that_value_everywhere(value, n, method):
    got = statistics.percentiles([value] * n, [0, 50, 99.9, 100], method)
    assert set(got.values()) == {value}


@settings(max_examples=100, deadline=None)
@given(samples, percentile_lists)
def test_intervals_are_ordered_and_hold_the_nearest_rank_estimate(values, ps):
    table = statistics.percentile_intervals(values, ps, warn=False)
    for row in table.itertuples():
        if not np.isnan(row.low):
            assert row.low <= row.value
        if not np.isnan(row.high):
            assert row.value <= row.high
        if not (np.isnan(row.low) or np.isnan(row.high)):
            assert row.exact_coverage >= 0.95
        assert row.n == len(values)


@settings(max_examples=100, deadline=None)
@given(samples, samples, st.sampled_from([0.001, 0.01, 0.1]))
def test_histograms_merge_like_the_union_of_samples(a, b, error):
    merged = statistics.LatencyHistogram.merge(
        [
            statistics.LatencyHistogram.of(a, error),
            statistics.LatencyHistogram.of(b, error),
        ]
    )
    assert merged == statistics.LatencyHistogram.of(a + b, error)


@settings(max_examples=150, deadline=None)
@given(
    samples, percentile_lists, st.sampled_from(METHODS), st.sampled_from([1e-3, 0.05])
)
def test_histogram_percentiles_are_within_the_relative_error(values, ps, method, error):
    histogram = statistics.LatencyHistogram.of(values, error)
    exact = statistics.percentiles(values, ps, method)
    approx = histogram.percentiles(ps, method)
    for column, value in exact.items():
        # Relative error e, plus the absolute microsecond below which latencies are 0.
        tolerance = error * value * (1 + 1e-9) + statistics.HISTOGRAM_LOWEST_MS
        assert abs(approx[column] - value) <= tolerance


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.one_of(st.none(), latency), min_size=1, max_size=5),
    latency,
    latency,
)
def test_tidied_tool_percentiles_are_monotonic_and_within_min_and_max(ps, a, b):
    low, high = min(a, b), max(a, b)
    columns = ["p50", "p90", "p95", "p99", "p99_9"][: len(ps)]
    table = pd.DataFrame(
        [
            {
                "endpoint": "GET /",
                "min_ms": low,
                "max_ms": high,
                **dict(zip(columns, ps, strict=True)),
            }
        ]
    )
    tidy = statistics.tidy_tool_percentiles(table, warn=False)
    values = [v for v in tidy.loc[0, columns].tolist() if not pd.isna(v)]
    assert values == sorted(values)
    assert all(low <= v <= high for v in values)
    # Missing stays missing.
    assert [pd.isna(v) for v in tidy.loc[0, columns]] == [v is None for v in ps]
