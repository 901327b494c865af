"""The coverage intervals that docs/BENCHMARKS.md quotes (bench/bench_training.py)."""

import numpy as np
import pytest

from bench.bench_training import block_bootstrap_rates


def test_the_interval_holds_the_rate_and_narrows_with_more_rows():
    rng = np.random.default_rng(1)
    short, long = rng.random((200, 2)) < 0.8, rng.random((5000, 2)) < 0.8

    (low_s, high_s), (low_l, high_l) = (
        block_bootstrap_rates(short, block=10),
        block_bootstrap_rates(long, block=10),
    )

    assert np.all(low_s <= short.mean(axis=0)) and np.all(short.mean(axis=0) <= high_s)
    assert np.all(high_l - low_l < (high_s - low_s) / 3)


def test_independent_rows_give_about_the_binomial_interval():
    hits = np.random.default_rng(2).random((2000, 1)) < 0.8
    low, high = block_bootstrap_rates(hits, block=1)
    binomial = 2 * 1.96 * np.sqrt(0.8 * 0.2 / 2000)
    assert high[0] - low[0] == pytest.approx(binomial, rel=0.15)


def test_blocks_widen_the_interval_when_neighbouring_rows_miss_together():
    # Misses in runs of 24 rows (a volatile day), 20 % of the rows in all.
    hits = np.ones((2400, 1), dtype=bool)
    for start in np.random.default_rng(3).choice(np.arange(0, 2400, 24), size=20, replace=False):
        hits[start : start + 24] = False
    iid_low, iid_high = block_bootstrap_rates(hits, block=1)
    low, high = block_bootstrap_rates(hits, block=48)
    assert high[0] - low[0] > 3 * (iid_high[0] - iid_low[0])
