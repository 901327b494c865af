"""Hourly klines as plain values, and the checks every source must pass.

A `KlineRow` is what a source (CSV file, Binance, replay) hands to the
services: exact `Decimal`s built from the exchange's strings, never floats.
Nothing here touches the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation, localcontext

INTERVAL = timedelta(hours=1)
ONE_MS = timedelta(milliseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Times from here on cannot be stored or have an hour added without overflowing.
LATEST_TIME = datetime(9999, 1, 1, tzinfo=UTC)
# A candle counts as closed only this long after its hour ended: a clock a few
# seconds ahead of the exchange's would otherwise store a still-open candle for good
# (upserts never overwrite). Beat syncs at :01, well past it.
CLOSED_MARGIN = timedelta(seconds=30)

# Plain ASCII decimals: Decimal() also takes "1_0" and non-ASCII digits, which no
# exchange writes, so they are more likely a corrupted file than a number.
PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Epoch digits: milliseconds (the API, dumps until 2024) or microseconds (spot dumps since 2025).
EPOCH_UNITS = {13: ("milliseconds", 1_000), 16: ("microseconds", 1)}

# Quote currencies we recognise at the end of a Binance symbol, longest first
# so that e.g. FDUSD wins over USD.
KNOWN_QUOTES: tuple[str, ...] = tuple(
    sorted(
        ("USDT", "BUSD", "USDC", "FDUSD", "TUSD", "DAI", "BTC", "ETH", "BNB", "EUR", "GBP", "TRY", "USD"),
        key=len,
        reverse=True,
    )
)

# Limits of Candle's DecimalField(max_digits=30, decimal_places=10).
MAX_INTEGER_DIGITS = 20
MAX_DECIMAL_PLACES = 10

DECIMAL_FIELDS = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
)


class KlineError(ValueError):
    """A kline that cannot be stored as it is; the message says why."""


@dataclass(frozen=True, slots=True)
class KlineRow:
    """One hourly kline with exact decimals; times are tz-aware UTC."""

    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    close_time: datetime
    quote_volume: Decimal
    trades: int
    taker_buy_base_volume: Decimal
    taker_buy_quote_volume: Decimal


def symbol_split(symbol: str) -> tuple[str, str]:
    """BTCUSDT -> ("BTC", "USDT"), from the known quote currencies."""
    symbol = symbol.strip().upper()
    for quote in KNOWN_QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    if symbol in KNOWN_QUOTES:  # it does end with a known quote; what it lacks is the base
        example = ("ETH" if symbol == "BTC" else "BTC") + symbol
        raise KlineError(
            f"{symbol!r} is only a quote currency: the base currency in front of it is missing "
            f"(a symbol is base + quote, e.g. {example})"
        )
    raise KlineError(
        f"cannot tell base and quote apart in {symbol!r}: it must end with one of {', '.join(KNOWN_QUOTES)}"
    )


def epoch_to_datetime(value: int, name: str) -> datetime:
    """Epoch milliseconds (13 digits) or microseconds (16 digits) as a UTC datetime."""
    digits = len(str(abs(value)))
    if value < 0 or digits not in EPOCH_UNITS:
        if 9 <= digits <= 10 and value > 0:
            raise KlineError(
                f"{name} {value} looks like epoch seconds; "
                "expected milliseconds (13 digits) or microseconds (16 digits)"
            )
        raise KlineError(
            f"{name} {value} is neither epoch milliseconds (13 digits) nor microseconds (16 digits)"
        )
    unit, us_per_unit = EPOCH_UNITS[digits]
    try:
        moment = EPOCH + timedelta(microseconds=value * us_per_unit)
    except OverflowError:
        raise KlineError(f"{name} {value} ({unit}) is out of range") from None
    return _in_range(moment, f"{name} {value} ({unit})")


def _in_range(moment: datetime, what: str) -> datetime:
    if moment >= LATEST_TIME:
        raise KlineError(f"{what} is out of range (after {LATEST_TIME:%Y-%m-%d})")
    return moment


def datetime_to_ms(value: datetime) -> int:
    return (value - EPOCH) // ONE_MS


def floor_hour(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def _plain_decimal(text: str, name: str, what: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise KlineError(f"{name} {text!r} is not {what}") from None
    if not value.is_finite():
        raise KlineError(f"{name} {text!r} is not a finite number")
    if not PLAIN_DECIMAL.fullmatch(text):
        raise KlineError(f"{name} {text!r} is not {what} (only digits 0-9, a point and an exponent)")
    return value


def parse_decimal(raw: object, name: str) -> Decimal:
    """An exact, finite, non-negative decimal that fits the Candle columns."""
    text = str(raw).strip()
    value = _plain_decimal(text, name, "a number")
    if value < 0:
        raise KlineError(f"{name} {text} is negative")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite, checked above
    if -exponent > MAX_DECIMAL_PLACES:
        # Trailing zeros beyond the column's scale lose nothing.
        normalized = value.normalize()
        exp = normalized.as_tuple().exponent
        assert isinstance(exp, int)
        if -exp > MAX_DECIMAL_PLACES:
            raise KlineError(f"{name} {text} has more than {MAX_DECIMAL_PLACES} decimal places")
        with localcontext() as context:
            context.prec = MAX_INTEGER_DIGITS + MAX_DECIMAL_PLACES + 2
            value = value.quantize(Decimal(1).scaleb(-MAX_DECIMAL_PLACES))
    if value.adjusted() >= MAX_INTEGER_DIGITS:
        raise KlineError(f"{name} {text} is too large (more than {MAX_INTEGER_DIGITS} integer digits)")
    return value


def decimal_text(value: Decimal) -> str:
    """`value` as people write it: 48109.79 for the stored 48109.7900000000, 48000 (never 4.8E+4)."""
    text = f"{value:f}"  # positional: Decimal.normalize() would give 4.8E+4
    return text.rstrip("0").rstrip(".") if "." in text else text


def parse_int(raw: object, name: str) -> int:
    text = str(raw).strip()
    # Accept "123" and "123.0" (some exports write trades as floats) but nothing lossy.
    value = _plain_decimal(text, name, "a whole number")
    if value != value.to_integral_value():
        raise KlineError(f"{name} {text!r} is not a whole number")
    if value < 0:
        raise KlineError(f"{name} {text} is negative")
    return int(value)


def parse_time(raw: object, name: str) -> datetime:
    """Epoch milliseconds or microseconds, or "YYYY-MM-DD HH:MM:SS" in UTC (the bundled file)."""
    text = str(raw).strip()
    if text.isascii() and text.isdigit():
        return epoch_to_datetime(int(text), name)
    try:
        value = datetime.fromisoformat(text)
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise KlineError(
            f"{name} {text!r} is neither epoch milliseconds/microseconds nor YYYY-MM-DD HH:MM:SS"
        ) from None
    return _in_range(value, f"{name} {text!r}")


def kline_is_closed(row: KlineRow, now: datetime) -> bool:
    """Whether the candle's hour ended at least CLOSED_MARGIN before `now`.

    A live kline may still be open, and `now` comes from our clock, not the exchange's.
    """
    return row.open_time + INTERVAL + CLOSED_MARGIN <= now


def kline_check(row: KlineRow) -> None:
    """Raise KlineError if the row is not a consistent hourly candle."""
    if row.open_time != floor_hour(row.open_time):
        raise KlineError(f"open time {row.open_time:%Y-%m-%d %H:%M:%S} is not on the hour")
    # Normally open + 1h - 1ms (- 1µs in microsecond dumps); earlier when the exchange
    # stopped mid-hour (maintenance): the bundled year has three such candles, kept as they are.
    if not row.open_time <= row.close_time < row.open_time + INTERVAL:
        raise KlineError(
            f"close_time {datetime_to_ms(row.close_time)} is outside the hour opened at "
            f"{row.open_time:%Y-%m-%d %H:%M} (expected {datetime_to_ms(row.open_time)} to "
            f"{datetime_to_ms(row.open_time + INTERVAL - ONE_MS)}, normally the latter)"
        )
    for name in ("open", "high", "low", "close"):
        value = getattr(row, name)
        if value <= 0:
            raise KlineError(f"{name} {value:f} is not a price: prices of a traded candle are above 0")
    if row.high < row.low:
        raise KlineError(f"high {row.high} is below low {row.low}")
    for name in ("open", "close"):
        value = getattr(row, name)
        if not row.low <= value <= row.high:
            raise KlineError(f"{name} {value} is outside [low {row.low}, high {row.high}]")
    if row.taker_buy_base_volume > row.volume:
        raise KlineError(f"taker-buy base volume {row.taker_buy_base_volume} exceeds volume {row.volume}")
    if row.taker_buy_quote_volume > row.quote_volume:
        raise KlineError(
            f"taker-buy quote volume {row.taker_buy_quote_volume} exceeds quote volume {row.quote_volume}"
        )


def kline_from_binance(raw: Sequence[object]) -> KlineRow:
    """A KlineRow from one element of Binance's /api/v3/klines response.

    The KlineError names the kline's open time when it can be read.
    """
    if not isinstance(raw, list | tuple) or len(raw) < 11:
        raise KlineError(f"a kline must be a list of at least 11 fields, got {raw!r:.80}")
    if not all(isinstance(raw[i], int) and not isinstance(raw[i], bool) for i in (0, 6, 8)):
        raise KlineError(f"open time, close time and trades must be integers in {raw!r:.120}")
    open_time = epoch_to_datetime(raw[0], "open time")  # type: ignore[arg-type]
    try:
        if raw[8] < 0:  # type: ignore[operator]
            raise KlineError(f"trades {raw[8]} is negative")
        row = KlineRow(
            open_time=open_time,
            open=parse_decimal(raw[1], "open"),
            high=parse_decimal(raw[2], "high"),
            low=parse_decimal(raw[3], "low"),
            close=parse_decimal(raw[4], "close"),
            volume=parse_decimal(raw[5], "volume"),
            close_time=epoch_to_datetime(raw[6], "close time"),  # type: ignore[arg-type]
            quote_volume=parse_decimal(raw[7], "quote volume"),
            trades=raw[8],  # type: ignore[arg-type]
            taker_buy_base_volume=parse_decimal(raw[9], "taker-buy base volume"),
            taker_buy_quote_volume=parse_decimal(raw[10], "taker-buy quote volume"),
        )
        kline_check(row)
    except KlineError as error:
        raise KlineError(f"kline opened at {open_time:%Y-%m-%d %H:%M} UTC: {error}") from None
    return row


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing hours between two stored candles (an exchange outage, usually)."""

    after: datetime  # open time of the last candle before the gap
    before: datetime  # open time of the first candle after it

    @property
    def missing_hours(self) -> int:
        return (self.before - self.after) // INTERVAL - 1

    @property
    def first_missing(self) -> datetime:
        return self.after + INTERVAL

    @property
    def last_missing(self) -> datetime:
        return self.before - INTERVAL

    def __str__(self) -> str:
        hours = self.missing_hours
        return (
            f"{self.after:%Y-%m-%d %H:%M} → {self.before:%Y-%m-%d %H:%M} UTC: "
            f"{hours} missing hour{'s' if hours != 1 else ''} "
            f"({self.first_missing:%Y-%m-%d %H:%M} to {self.last_missing:%Y-%m-%d %H:%M})"
        )


def find_gaps(open_times: Iterable[datetime]) -> list[Gap]:
    """The gaps in a time-ordered series of hourly open times."""
    gaps: list[Gap] = []
    previous: datetime | None = None
    for current in open_times:
        if previous is not None and current - previous > INTERVAL:
            gaps.append(Gap(after=previous, before=current))
        previous = current
    return gaps


def gap_report(symbol: str, gaps: list[Gap]) -> list[str]:
    """Lines describing the gaps for a person (import output, admin)."""
    if not gaps:
        return [f"Gap report for {symbol}: no gaps."]
    missing = sum(g.missing_hours for g in gaps)
    lines = [
        f"Gap report for {symbol}: {len(gaps)} gap(s), {missing} missing hour(s) "
        "(left missing: no candle is made up)"
    ]
    lines.extend(f"  {gap}" for gap in gaps)
    return lines
