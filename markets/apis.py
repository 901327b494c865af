"""API: the followed assets and their candles (GET assets/, assets/{symbol}/, .../candles/)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.throttling import CountedApiView
from forecasting.selectors import asset_find, asset_overview_list, asset_symbols, sync_error_for_members
from makeusrich.api_fields import QueryDateTimeField, QueryIntegerField, QuerySerializer
from makeusrich.api_schema import BAD_REQUEST, NOT_FOUND, QUOTA, QUOTA_HEADERS, UNAUTHORIZED, counted
from markets.models import Asset
from markets.selectors import candle_list

SYMBOL = OpenApiParameter(
    "symbol",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="Binance pair, any case, e.g. `BTCUSDT` or `btcusdt`.",
)


def asset_or_404(symbol: str) -> Asset:
    """The active asset `symbol` (annotated with its last candle), or a 404 naming the known ones."""
    asset = asset_find(symbol=symbol)
    if asset is None:
        known = ", ".join(asset_symbols()[:20]) or "none yet"
        shown = symbol if len(symbol) <= 40 else symbol[:40] + "…"
        raise NotFound(f"Unknown asset {shown!r}; followed assets: {known}.")
    return asset


@extend_schema_field({"type": "string", "format": "decimal", "example": "43210.5"})
class DecimalStringField(serializers.Field):
    """An exchange decimal as stored, as a string without trailing zeros."""

    def to_representation(self, value: Decimal) -> str:
        return format(value.normalize(), "f")


class ForecastSummarySerializer(serializers.Serializer):
    model_version = serializers.IntegerField()
    generated_at = serializers.DateTimeField()
    base_time = serializers.DateTimeField(help_text="Open time of the candle the forecast starts from.")
    horizon_hours = serializers.IntegerField()
    next_close = serializers.FloatField(allow_null=True, help_text="Forecast close of the next hour.")
    final_close = serializers.FloatField(allow_null=True, help_text="Forecast close at the horizon.")
    final_lower = serializers.FloatField(allow_null=True, help_text="Lower bound at the horizon.")
    final_upper = serializers.FloatField(allow_null=True, help_text="Upper bound at the horizon.")
    stale = serializers.BooleanField()
    stale_reason = serializers.CharField(allow_null=True)


class AssetSerializer(serializers.Serializer):
    symbol = serializers.CharField(source="asset.symbol")
    base = serializers.CharField(source="asset.base")
    quote = serializers.CharField(source="asset.quote")
    interval = serializers.CharField(source="asset.interval")
    horizon_hours = serializers.SerializerMethodField()
    last_candle_time = serializers.DateTimeField(allow_null=True, help_text="Open time of the last candle.")
    last_price = serializers.FloatField(source="last_close", allow_null=True, help_text="Its close.")
    last_synced_at = serializers.DateTimeField(source="asset.last_synced_at", allow_null=True)
    sync_error = serializers.SerializerMethodField()
    forecast = ForecastSummarySerializer(
        allow_null=True, help_text="The active model's latest forecast; null before the first one."
    )

    @extend_schema_field(
        serializers.IntegerField(
            help_text="Hours ahead the asset's next trainings forecast (its setting). After an admin "
            "changes it, `forecast.horizon_hours` keeps the serving model's until a new one is trained."
        )
    )
    def get_horizon_hours(self, overview: Any) -> int:
        return overview.asset.horizon or settings.FORECAST_HORIZON

    @extend_schema_field(
        serializers.CharField(
            allow_null=True,
            help_text="Null while syncs succeed; else that market data is not updating (or that older "
            "missing hours could not be fetched). The exchange's own words are in the admin.",
        )
    )
    def get_sync_error(self, overview: Any) -> str | None:
        return sync_error_for_members(overview.asset)


class CandleSerializer(serializers.Serializer):
    open_time = serializers.DateTimeField()
    open = DecimalStringField()
    high = DecimalStringField()
    low = DecimalStringField()
    close = DecimalStringField()
    volume = DecimalStringField()
    close_time = serializers.DateTimeField()
    quote_volume = DecimalStringField()
    trades = serializers.IntegerField()
    taker_buy_base_volume = DecimalStringField()
    taker_buy_quote_volume = DecimalStringField()


class CandlesSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    interval = serializers.CharField()
    count = serializers.IntegerField()
    candles = CandleSerializer(many=True, help_text="Oldest first.")


class CandleQuerySerializer(QuerySerializer):
    limit = QueryIntegerField(
        min_value=1,
        max_value=1000,
        default=120,
        help_text="How many candles at most (1-1000): the first from `start`, else the newest.",
    )
    start = QueryDateTimeField(
        required=False, help_text="ISO 8601; only candles opening at or after it (UTC if no offset)."
    )
    end = QueryDateTimeField(
        required=False, help_text="ISO 8601; only candles opening at or before it (UTC if no offset)."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "start" in attrs and "end" in attrs and attrs["start"] > attrs["end"]:
            raise serializers.ValidationError({"start": "start must not be after end."})
        return attrs


class AssetListApi(CountedApiView):
    @extend_schema(
        operation_id="assets_list",
        summary="Followed assets",
        description=counted(description="Active assets with last price and latest forecast summary."),
        parameters=QUOTA_HEADERS,
        responses={200: AssetSerializer(many=True), **UNAUTHORIZED, **QUOTA},
    )
    def get(self, request: Request) -> Response:
        return Response(AssetSerializer(asset_overview_list(), many=True).data)


class AssetDetailApi(CountedApiView):
    @extend_schema(
        operation_id="assets_retrieve",
        summary="One asset",
        description=counted(description="One asset with last price and latest forecast summary."),
        parameters=[SYMBOL, *QUOTA_HEADERS],
        responses={200: AssetSerializer, **UNAUTHORIZED, **NOT_FOUND, **QUOTA},
    )
    def get(self, request: Request, symbol: str) -> Response:
        asset = asset_or_404(symbol)
        (overview,) = asset_overview_list(symbol=asset.symbol)
        return Response(AssetSerializer(overview).data)


class CandleListApi(CountedApiView):
    @extend_schema(
        operation_id="assets_candles",
        summary="Hourly candles",
        description=counted(
            description="Closed candles with start <= open_time <= end, oldest first, at most `limit`: "
            "with `start`, the first ones from `start` on (page forward with `start` = the hour after "
            "the last one received); without `start`, the newest ones up to `end` (page back with "
            "`end` = the hour before the oldest one received). Prices and volumes are decimal strings: exactly as the exchange sent them "
            "on PostgreSQL; the embedded SQLite setup keeps 15 significant digits."
        ),
        parameters=[SYMBOL, CandleQuerySerializer, *QUOTA_HEADERS],
        responses={200: CandlesSerializer, **BAD_REQUEST, **UNAUTHORIZED, **NOT_FOUND, **QUOTA},
    )
    def get(self, request: Request, symbol: str) -> Response:
        asset = asset_or_404(symbol)
        query = CandleQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        candles = candle_list(asset=asset, **query.validated_data)
        body = {"symbol": asset.symbol, "interval": asset.interval, "count": len(candles), "candles": candles}
        return Response(CandlesSerializer(body).data)
