"""Pure kline helpers: symbol split, exact decimals, kline checks, gaps (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from markets.klines import (
    KlineError,
    find_gaps,
    gap_report,
    kline_from_binance,
    parse_decimal,
    symbol_split,
)

T0 = datetime(2021, 3, 6, 17, tzinfo=UTC)
HOUR = timedelta(hours=1)
T0_MS = 1615050000000
GOOD = [T0_MS, "10.5", "11.0", "10.0", "10.75", "2.5", T0_MS + 3_599_999, "26.0", 7, "1.0", "10.4", "0"]


@pytest.mark.parametrize(
    ("symbol", "pair"),
    [
        ("BTCUSDT", ("BTC", "USDT")),
        ("ethbtc", ("ETH", "BTC")),
        ("BNBFDUSD", ("BNB", "FDUSD")),
        ("XRPEUR", ("XRP", "EUR")),
    ],
)
def test_symbols_split_at_a_known_quote(symbol, pair):
    assert symbol_split(symbol) == pair


def test_a_symbol_that_is_only_a_quote_is_refused():
    with pytest.raises(KlineError, match="cannot tell base and quote apart"):
        symbol_split("USDT")


def test_decimals_are_exact_and_keep_their_digits():
    assert parse_decimal("128615238.60874081", "v") == Decimal("128615238.60874081")
    assert parse_decimal(" 1.500000000000 ", "v") == Decimal("1.5000000000")


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("nan", "not a finite number"),
        ("1e400", "too large"),
        ("0.00000000001", "more than 10 decimal places"),
    ],
)
def test_decimals_that_do_not_fit_are_refused(raw, words):
    with pytest.raises(KlineError, match=words):
        parse_decimal(raw, "v")


def test_a_binance_kline_becomes_a_row():
    row = kline_from_binance(GOOD)

    assert row.open_time == T0
    assert row.close_time == T0 + HOUR - timedelta(milliseconds=1)
    assert (row.open, row.trades) == (Decimal("10.5"), 7)


def test_a_kline_closed_early_by_maintenance_is_accepted_as_it_is():
    early = [*GOOD[:6], T0_MS + 58_146, *GOOD[7:]]

    assert kline_from_binance(early).close_time == T0 + timedelta(milliseconds=58_146)


@pytest.mark.parametrize(
    ("index", "value", "words"),
    [
        (0, "1615050000000", "must be integers"),
        (6, T0_MS + 3_600_000, "outside the hour"),
        (2, "9.0", "high 9.0 is below low"),
        (9, "3.0", "exceeds volume"),
    ],
)
def test_an_inconsistent_kline_is_refused(index, value, words):
    raw = list(GOOD)
    raw[index] = value
    with pytest.raises(KlineError, match=words):
        kline_from_binance(raw)


def test_gaps_are_found_between_non_consecutive_hours():
    times = [T0, T0 + HOUR, T0 + 4 * HOUR, T0 + 5 * HOUR, T0 + 7 * HOUR]

    gaps = find_gaps(times)

    assert [(g.after, g.before, g.missing_hours) for g in gaps] == [
        (T0 + HOUR, T0 + 4 * HOUR, 2),
        (T0 + 5 * HOUR, T0 + 7 * HOUR, 1),
    ]
    assert gap_report("BTCUSDT", gaps)[0] == (
        "Gap report for BTCUSDT: 2 gap(s), 3 missing hour(s) (left missing: no candle is made up)"
    )
    assert "1 missing hour (" in gap_report("BTCUSDT", gaps)[2]
