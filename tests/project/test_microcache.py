"""RecentValues: a value is reused for `seconds`, then computed again; failures are not kept."""

import pytest

from makeusrich import microcache
from makeusrich.microcache import RecentValues


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(microcache.time, "monotonic", clock)
    return clock


def counter():
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    return compute, calls


def test_a_value_is_reused_until_its_seconds_are_over(clock):
    values, (compute, calls) = RecentValues(), counter()

    assert values.get_or_compute("BTC", compute, seconds=2) == 1
    clock.now += 1.9
    assert values.get_or_compute("BTC", compute, seconds=2) == 1
    clock.now += 0.2
    assert values.get_or_compute("BTC", compute, seconds=2) == 2
    assert len(calls) == 2


def test_keys_are_kept_apart(clock):
    values = RecentValues()

    assert values.get_or_compute("BTC", lambda: "b", seconds=5) == "b"
    assert values.get_or_compute("ETH", lambda: "e", seconds=5) == "e"
    assert values.get_or_compute("BTC", lambda: "other", seconds=5) == "b"


def test_zero_seconds_turns_it_off(clock):
    values, (compute, _) = RecentValues(), counter()

    assert [values.get_or_compute("BTC", compute, seconds=0) for _ in range(3)] == [1, 2, 3]


def test_a_failed_computation_is_not_kept(clock):
    values = RecentValues()

    def fail():
        raise LookupError("not yet")

    with pytest.raises(LookupError):
        values.get_or_compute("BTC", fail, seconds=5)
    assert values.get_or_compute("BTC", lambda: "ready", seconds=5) == "ready"


def test_it_never_holds_more_than_max_entries_and_drops_expired_ones_first(clock):
    values = RecentValues(max_entries=3)
    values.get_or_compute("old", lambda: 0, seconds=1)
    clock.now += 0.5
    values.get_or_compute("a", lambda: 1, seconds=10)
    values.get_or_compute("b", lambda: 2, seconds=10)
    clock.now += 1  # "old" has expired
    values.get_or_compute("c", lambda: 3, seconds=10)

    assert values.get_or_compute("a", lambda: "again", seconds=10) == 1  # kept: only "old" went
    assert len(values._entries) == 3


def test_clear_forgets_everything(clock):
    values, (compute, _) = RecentValues(), counter()
    values.get_or_compute("BTC", compute, seconds=60)
    values.clear()

    assert values.get_or_compute("BTC", compute, seconds=60) == 2
