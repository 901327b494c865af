"""Writes for markets: `candles` (assets, the candle upsert, CSV import) and `sync` (from a
source: new closed candles, then holes in the stored history)."""

from markets.services.candles import (
    IMPORT_MAX_HOLE_HOURS,
    AssetError,
    ImportHoleError,
    ImportSummary,
    Progress,
    UpsertResult,
    asset_get_or_create,
    assets_set_active,
    candles_import_csv,
    candles_upsert,
)
from markets.services.sync import (
    GapFillResult,
    SyncReport,
    SyncResult,
    asset_gaps_fill,
    asset_sync,
    assets_sync,
)

__all__ = [
    "IMPORT_MAX_HOLE_HOURS",
    "AssetError",
    "ImportHoleError",
    "GapFillResult",
    "ImportSummary",
    "Progress",
    "SyncReport",
    "SyncResult",
    "UpsertResult",
    "asset_get_or_create",
    "asset_gaps_fill",
    "asset_sync",
    "assets_set_active",
    "assets_sync",
    "candles_import_csv",
    "candles_upsert",
]
