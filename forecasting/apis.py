"""API: forecast, model versions, live track record, retrain (under assets/{symbol}/).

Only stored rows are read here; retraining is a Celery task enqueued by name,
so this module never imports the training code (torch).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.throttling import CountedApiView
from forecasting.models import TrainingLease
from forecasting.selectors import (
    FAILED_FOR_MEMBERS,
    STOPPED_TRAINING_REASON,
    forecast_latest_by_symbol,
    forecast_unavailable_reason,
    model_version_list,
    track_record,
    versions_left_training,
)
from makeusrich.api_fields import QueryIntegerField, QuerySerializer
from makeusrich.api_json import ApiJSONRenderer
from makeusrich.api_schema import BAD_REQUEST, NOT_FOUND, QUOTA, QUOTA_HEADERS, UNAUTHORIZED, counted, error
from makeusrich.celery import task_send
from makeusrich.formats import api_float
from makeusrich.microcache import RecentValues
from markets.apis import SYMBOL, asset_or_404

RETRAIN_TASK = "forecasting.tasks.retrain_asset"


SKILL_HELP = (
    "1 - rmse / persistence_rmse: > 0 beats assuming no change. Where persistence_rmse is 0 (the "
    "price never moved) it is 0 if rmse is 0 too, else null: the model erred where no change was "
    "exact, worse by no finite ratio."
)


class ValidationMetricsSerializer(serializers.Serializer):
    """The same errors on the held-out gate part of the validation split.

    Validation is the last 20 % of the training windows: its older part calibrates (early
    stopping, the shrinkage toward persistence, the intervals), its newest 30 % (the gate
    windows) is held out from all of that and scored here. The promotion gate compares the
    new version with the active one on these windows. They are chosen on, so the test
    metrics remain the figures to quote. Versions trained before the gate part scored every
    validation window here, the ones they were calibrated on.
    """

    rmse = serializers.ListField(child=serializers.FloatField(allow_null=True), required=False)
    persistence_rmse = serializers.ListField(child=serializers.FloatField(allow_null=True), required=False)
    skill_rmse = serializers.ListField(
        child=serializers.FloatField(allow_null=True), required=False, help_text=SKILL_HELP
    )
    coverage_80 = serializers.ListField(child=serializers.FloatField(allow_null=True), required=False)
    windows = serializers.IntegerField(
        required=False,
        help_text="Gate windows scored (versions trained before the gate part: every validation window).",
    )


class MetricsSerializer(serializers.Serializer):
    """Held-out test metrics of a version; arrays per horizon step, index 0 = the next hour."""

    horizon = serializers.IntegerField(required=False)
    rmse = serializers.ListField(child=serializers.FloatField(allow_null=True), required=False)
    mae = serializers.ListField(child=serializers.FloatField(allow_null=True), required=False)
    mape = serializers.ListField(child=serializers.FloatField(allow_null=True), required=False)
    persistence_rmse = serializers.ListField(child=serializers.FloatField(allow_null=True), required=False)
    persistence_mae = serializers.ListField(child=serializers.FloatField(allow_null=True), required=False)
    direction_accuracy = serializers.ListField(
        child=serializers.FloatField(allow_null=True),
        required=False,
        help_text=(
            "Share of the windows where the served forecast went the way the price went (up or down "
            "from the last close), over the windows where both moved. Null at a step with no "
            "direction forecast: the model serves no change at this step (or the price never moved)."
        ),
    )
    coverage_80 = serializers.ListField(child=serializers.FloatField(allow_null=True), required=False)
    skill_rmse = serializers.ListField(
        child=serializers.FloatField(allow_null=True), required=False, help_text=SKILL_HELP
    )
    test_windows = serializers.IntegerField(required=False, help_text="Test windows scored.")
    test_start = serializers.DateTimeField(required=False, help_text="Base time of the first test window.")
    validation = ValidationMetricsSerializer(required=False)


@extend_schema_field(MetricsSerializer)
class MetricsField(serializers.Field):
    """Passes the stored metrics through as the training service wrote them."""

    def to_representation(self, value: dict[str, Any]) -> dict[str, Any]:
        return value


class ForecastPointSerializer(serializers.Serializer):
    time = serializers.DateTimeField(help_text="Open time of the forecast hour.")
    close = serializers.FloatField(allow_null=True)
    lower = serializers.FloatField(
        allow_null=True, help_text="Lower bound of the 80 % interval; never below 0 (prices are positive)."
    )
    upper = serializers.FloatField(allow_null=True, help_text="Upper bound of the 80 % interval.")


@extend_schema_field(ForecastPointSerializer(many=True))
class PointsField(serializers.Field):
    def to_representation(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return value


class ForecastSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    model_version = serializers.IntegerField(help_text="Version number of the active model.")
    generated_at = serializers.DateTimeField()
    last_candle_time = serializers.DateTimeField(
        help_text="Open time of the candle the forecast starts from."
    )
    last_close = serializers.FloatField(help_text="Close of that candle.")
    horizon_hours = serializers.IntegerField()
    points = PointsField(help_text="One per hour ahead, index 0 = the next hour.")
    stale = serializers.BooleanField(help_text="True when data, model or forecast is older than the limits.")
    stale_reason = serializers.CharField(allow_null=True, help_text="Why it is stale; null when fresh.")
    metrics = MetricsField(help_text="The version's held-out test metrics.")


class ModelVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["training", "validated", "failed", "active", "retired"])
    reason = serializers.CharField(
        help_text="Why it failed or was not promoted, or that a version still 'training' is not being "
        "trained any more (its worker stopped); may be empty."
    )
    mode = serializers.ChoiceField(choices=["full", "warm"], help_text="Trained from scratch or fine-tuned.")
    parent_version = serializers.IntegerField(source="parent.version", allow_null=True, default=None)
    horizon = serializers.IntegerField()
    window = serializers.IntegerField(help_text="Hours of history per input sequence.")
    data_first = serializers.DateTimeField(allow_null=True)
    data_last = serializers.DateTimeField(allow_null=True)
    data_candles = serializers.IntegerField()
    epochs = serializers.IntegerField()
    train_seconds = serializers.FloatField(allow_null=True)
    created_at = serializers.DateTimeField()
    trained_at = serializers.DateTimeField(allow_null=True)
    activated_at = serializers.DateTimeField(allow_null=True)
    metrics = serializers.SerializerMethodField()

    @extend_schema_field(MetricsSerializer)
    def get_metrics(self, version: Any) -> dict[str, Any]:
        return version.metrics or {}


class ModelVersionsSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    active_version = serializers.IntegerField(allow_null=True)
    versions = ModelVersionSerializer(many=True, help_text="Newest first (at most 100).")


class ErrorStatsSerializer(serializers.Serializer):
    step = serializers.IntegerField(allow_null=True, help_text="Hours ahead (1 = next hour); null overall.")
    count = serializers.IntegerField(help_text="Scored hours.")
    mae = serializers.FloatField(allow_null=True)
    rmse = serializers.FloatField(allow_null=True)
    persistence_mae = serializers.FloatField(allow_null=True)
    persistence_rmse = serializers.FloatField(allow_null=True)
    skill_rmse = serializers.FloatField(allow_null=True, help_text=SKILL_HELP)
    coverage = serializers.FloatField(
        allow_null=True, help_text="Share of actual closes inside the interval."
    )


class ScoreSerializer(serializers.Serializer):
    """One forecast hour that has closed; `actual` is null (and the rest absent) for an outage."""

    time = serializers.DateTimeField()
    actual = serializers.FloatField(allow_null=True)
    error = serializers.FloatField(
        required=False, allow_null=True, help_text="Forecast close - actual close."
    )
    inside = serializers.BooleanField(required=False, help_text="Actual close inside [lower, upper].")
    persistence_error = serializers.FloatField(
        required=False, allow_null=True, help_text="Last close - actual close."
    )


# Differences of two prices: their last digits are the prices' (cancelled), not information.
PRICE_DIFFERENCES = ("error", "persistence_error")


@extend_schema_field(ScoreSerializer(many=True))
class ScoresField(serializers.Field):
    def to_representation(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [_score_rounded(score) for score in value]


def _score_rounded(score: dict[str, Any]) -> dict[str, Any]:
    """The score with its errors rounded at the actual price's precision (38908.27 - 38908.26
    is 0.01 here, not 0.00999999999476131); every other float is left to the renderer."""
    actual = score.get("actual")
    if not isinstance(actual, int | float) or isinstance(actual, bool):
        return score
    rounded = dict(score)
    for name in PRICE_DIFFERENCES:
        if isinstance(rounded.get(name), float):
            rounded[name] = api_float(rounded[name], scale=actual)
    return rounded


class ScoredForecastSerializer(serializers.Serializer):
    base_time = serializers.DateTimeField()
    generated_at = serializers.DateTimeField()
    model_version = serializers.IntegerField()
    last_close = serializers.FloatField()
    horizon_hours = serializers.IntegerField()
    fully_scored = serializers.BooleanField()
    stats = ErrorStatsSerializer()
    scores = ScoresField()


class TrackRecordSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    days = serializers.IntegerField()
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField(help_text="The latest candle: replayed data is historical.")
    forecasts = serializers.IntegerField(help_text="Forecasts with at least one scored hour.")
    fully_scored = serializers.IntegerField()
    overall = ErrorStatsSerializer()
    per_step = ErrorStatsSerializer(many=True)
    recent = ScoredForecastSerializer(many=True, help_text="The 20 most recent scored forecasts.")


class TrackRecordQuerySerializer(QuerySerializer):
    days = QueryIntegerField(min_value=1, max_value=90, default=7, help_text="Window length, 1-90.")


class TaskSerializer(serializers.Serializer):
    task_id = serializers.UUIDField()


class IsStaff(BasePermission):
    message = "Only staff can retrain models."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_staff)


class ServiceUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Service unavailable."
    default_code = "unavailable"


NO_MODEL = {
    503: error("No active model or no forecast yet", "no active model yet for BTCUSDT: training v1 (...)")
}


class ForecastApi(CountedApiView):
    @extend_schema(
        operation_id="assets_forecast",
        summary="Latest forecast",
        description=counted(
            description="The active model's latest stored forecast with 80 % intervals, staleness "
            "and the version's held-out metrics."
        ),
        parameters=[SYMBOL, *QUOTA_HEADERS],
        responses={200: ForecastSerializer, **UNAUTHORIZED, **NOT_FOUND, **QUOTA, **NO_MODEL},
    )
    def get(self, request: Request, symbol: str) -> HttpResponse:
        # Authentication and the quota unit are settled per call before this
        # point; only the body, the same for every caller, is reused briefly.
        body = FORECAST_BODIES.get_or_compute(
            symbol.upper(), lambda: _forecast_body(symbol), seconds=settings.API_CACHE_SECONDS
        )
        return HttpResponse(body, content_type="application/json")


# Rendered forecast responses by symbol, reused for API_CACHE_SECONDS.
FORECAST_BODIES: RecentValues[bytes] = RecentValues()


def _forecast_body(symbol: str) -> bytes:
    forecast = forecast_latest_by_symbol(symbol=symbol)
    if forecast is None:
        asset = asset_or_404(symbol)
        raise ServiceUnavailable(forecast_unavailable_reason(asset=asset))
    return ApiJSONRenderer().render(ForecastSerializer(forecast).data)


class ModelVersionListApi(CountedApiView):
    @extend_schema(
        operation_id="assets_models",
        summary="Model versions",
        description=counted(description="The asset's model versions, newest first, with metrics."),
        parameters=[SYMBOL, *QUOTA_HEADERS],
        responses={200: ModelVersionsSerializer, **UNAUTHORIZED, **NOT_FOUND, **QUOTA},
    )
    def get(self, request: Request, symbol: str) -> Response:
        asset = asset_or_404(symbol)
        versions = model_version_list(asset=asset)
        training = any(version.status == "training" for version in versions)
        lease = TrainingLease.objects.filter(asset=asset).first() if training else None
        stopped = versions_left_training(versions, lease)
        for version in versions:
            if version.pk in stopped:  # its stored status stays "training" until the next run
                version.reason = STOPPED_TRAINING_REASON
            elif version.status == "failed":  # as the pages say it to members
                version.reason = FAILED_FOR_MEMBERS
        active = next((v.version for v in versions if v.status == "active"), None)
        body = {"symbol": asset.symbol, "active_version": active, "versions": versions}
        return Response(ModelVersionsSerializer(body).data)


class TrackRecordApi(CountedApiView):
    @extend_schema(
        operation_id="assets_track_record",
        summary="Live track record",
        description=counted(
            description="Stored forecasts scored against the candles that followed, over the last "
            "`days` days of market data: model MAE/RMSE per step and overall next to persistence "
            "(the price stays where it is), interval coverage, and the recent scored forecasts."
        ),
        parameters=[SYMBOL, TrackRecordQuerySerializer, *QUOTA_HEADERS],
        responses={200: TrackRecordSerializer, **BAD_REQUEST, **UNAUTHORIZED, **NOT_FOUND, **QUOTA},
    )
    def get(self, request: Request, symbol: str) -> Response:
        asset = asset_or_404(symbol)
        query = TrackRecordQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        record = track_record(asset=asset, days=query.validated_data["days"])
        return Response(TrackRecordSerializer(record).data)


class RetrainApi(APIView):
    permission_classes = [IsAuthenticated, IsStaff]

    @extend_schema(
        operation_id="assets_retrain",
        summary="Retrain now (staff)",
        description=(
            "Queue a full retrain of the asset's model; not counted against the quota. "
            "There is no endpoint to follow the task: its id names it in the worker's log, and the "
            "outcome shows as a new version in `assets/{symbol}/models/` once training ends, and in "
            'the asset admin\'s "last retrain task" (also when the retrain was skipped).'
        ),
        parameters=[SYMBOL],
        request=None,
        responses={
            202: OpenApiResponse(
                TaskSerializer,
                description="Queued; the id of the Celery task (in the worker's log; results are not stored).",
            ),
            **UNAUTHORIZED,
            403: error("Not staff", IsStaff.message),
            **NOT_FOUND,
            503: error("Task queue unreachable", "The task queue is unreachable; try again later."),
        },
    )
    def post(self, request: Request, symbol: str) -> Response:
        asset = asset_or_404(symbol)
        try:
            task_id = task_send(RETRAIN_TASK, asset.symbol, "full")
        except Exception as exc:  # kombu's, redis's or socket errors: the queue is unreachable
            raise ServiceUnavailable(f"The task queue is unreachable; try again later ({exc}).") from None
        return Response({"task_id": task_id}, status=status.HTTP_202_ACCEPTED)
