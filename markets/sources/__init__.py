"""Where new candles come from: one small interface, two implementations.

- `BinanceSource`: the exchange's public klines through python-binance;
- `ReplaySource`: the bundled real year revealed a few candles per sync, so
  the hourly loop runs offline.

`source_for()` picks one from settings.MARKET_DATA_SOURCE. python-binance is
imported only when the Binance source is built, never on the web path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from markets.klines import INTERVAL, KlineRow


class SourceError(Exception):
    """A sync that cannot complete; the message is shown to admins as is.

    `rows`: closed candles fetched before a fault that retrying cannot cure (a
    kline that fails validation), oldest first. They are safe to store: a sync
    appends after the last stored candle, so the next one starts again at the
    fault; a hole stays unconfirmed, so the next sync asks for it again.
    """

    def __init__(self, message: str, *, rows: list[KlineRow] | None = None) -> None:
        super().__init__(message)
        self.rows = rows or []


@dataclass(frozen=True, slots=True)
class Fetched:
    """Closed candles a source returns, oldest first, and a note for the log."""

    rows: list[KlineRow] = field(default_factory=list)
    note: str = ""


# The most hours one fetch_range call covers: Binance's page size, so that one
# answer holds every candle of the range and an hour missing from it is missing
# at the exchange.
MAX_RANGE_HOURS = 1000


class KlineSource(Protocol):
    name: str

    def fetch(self, *, symbol: str, after: datetime | None, now: datetime) -> Fetched:
        """Closed candles newer than `after` (None: a new asset, so its backfill)."""
        ...

    def fetch_range(self, *, symbol: str, first: datetime, last: datetime, now: datetime) -> Fetched:
        """Every closed candle the source has opened from `first` to `last` (inclusive), in one
        request; at most MAX_RANGE_HOURS hours. An hour left out is an hour the source has no
        candle for; a fault raises SourceError."""
        ...

    def coverage(self, *, symbol: str) -> tuple[datetime, datetime] | None:
        """The first and last hour the source has data for, or None when it has no such bound
        (an exchange). Only a missing hour inside these is an outage: the sync asks about no
        hour outside them, and confirms none."""
        ...


def range_hours(first: datetime, last: datetime) -> int:
    """Hours from `first` to `last`, both included; ValueError beyond MAX_RANGE_HOURS."""
    hours = (last - first) // INTERVAL + 1
    if not 1 <= hours <= MAX_RANGE_HOURS:
        raise ValueError(f"a range must hold 1 to {MAX_RANGE_HOURS} hours, not {hours}")
    return hours


def source_for(conf: Any = None) -> KlineSource:
    """The source named by settings.MARKET_DATA_SOURCE ("replay" or "binance")."""
    if conf is None:
        from django.conf import settings as conf
    if conf.MARKET_DATA_SOURCE == "binance":
        from markets.sources.binance import BinanceSource

        return BinanceSource(
            api_url=conf.BINANCE_API_URL,
            api_key=conf.BINANCE_API_KEY,
            api_secret=conf.BINANCE_API_SECRET,
            timeout=conf.BINANCE_TIMEOUT_SECONDS,
            max_retries=conf.BINANCE_MAX_RETRIES,
            retry_base_seconds=conf.BINANCE_RETRY_BASE_SECONDS,
            backfill_days=conf.BINANCE_BACKFILL_DAYS,
        )
    if conf.MARKET_DATA_SOURCE == "replay":
        from markets.sources.replay import ReplaySource

        return ReplaySource(path=conf.BUNDLED_DATA_FILE, candles_per_sync=conf.REPLAY_HOURS_PER_SYNC)
    raise SourceError(f"unknown MARKET_DATA_SOURCE {conf.MARKET_DATA_SOURCE!r}: use 'replay' or 'binance'")
