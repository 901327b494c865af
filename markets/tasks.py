"""Celery entry points for market data: they take symbols and call one service."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from markets.models import Asset
from markets.services import asset_sync

logger = logging.getLogger(__name__)

# A slow exchange must not hold one of the worker's two processes for ever: the
# client's timeout bounds each socket read, not a whole answer (a body trickling
# in byte by byte never times out). A sync normally takes seconds; this leaves
# room for a backfill's pages with retries and Retry-After waits.
# At the soft limit the sync stops and records it on the asset; the hard limit
# kills the process a minute later if it is stuck where Python cannot interrupt it.
SYNC_SOFT_TIME_LIMIT_SECONDS = 10 * 60
SYNC_TIME_LIMIT_SECONDS = SYNC_SOFT_TIME_LIMIT_SECONDS + 60


@shared_task(acks_late=True, soft_time_limit=SYNC_SOFT_TIME_LIMIT_SECONDS, time_limit=SYNC_TIME_LIMIT_SECONDS)
def sync_asset(symbol: str) -> dict[str, Any]:
    """Pull the asset's new closed candles, then fill holes in its history (bounded per
    sync). Retries live in the source, so a
    failure (the time limit included) is recorded on the asset (last_sync_error)
    and returned, not raised."""
    asset = Asset.objects.filter(symbol=symbol.strip().upper()).first()
    if asset is None:
        logger.warning("sync_asset: no asset %s", symbol)
        return {"symbol": symbol, "inserted": 0, "error": f"no asset {symbol}"}
    result = asset_sync(asset=asset)
    summary = {
        "symbol": result.symbol,
        "inserted": result.inserted,
        "note": result.note,
        "error": result.error,
    }
    if result.gaps is not None and result.gaps.anything:
        summary["holes"] = str(result.gaps)
    return summary


@shared_task
def sync_active_assets() -> list[str]:
    """Fan out: one sync_asset task per active asset (beat runs this hourly)."""
    symbols = list(Asset.objects.filter(is_active=True).order_by("symbol").values_list("symbol", flat=True))
    for symbol in symbols:
        sync_asset.delay(symbol)
    return symbols
