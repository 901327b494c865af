"""Admin of the model registry: versions (read-only, "activate" for rollback) and forecasts (read-only)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from forecasting.models import Forecast, ModelVersion
from forecasting.overview import no_change_was_exact, skill_at
from markets.admin import decimal_column

# Forecast steps shown in the metrics table (1-based hours ahead); the last one is added.
METRIC_STEPS = (1, 6, 12)


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    try:
        return f"{float(value):,.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def _pct(value: Any, *, signed: bool = False) -> str:
    """A share as the whole admin writes skill and coverage: "+12.0 %", "80.6 %"."""
    if value is None:
        return "–"
    try:
        return f"{float(value) * 100:{'+' if signed else ''}.1f} %"
    except (TypeError, ValueError):
        return str(value)


def _loss(value: Any) -> str:
    # Significant digits, not places: late epochs' losses can be 0.0012.
    return "–" if value is None else f"{float(value):.3g}"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by the pipeline: viewable, never edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = (
        "asset",
        "version",
        "status_shown",
        "pinned",
        "mode",
        "trained_at",
        "skill_1h",
        "epochs",
        "train_time",
    )
    list_filter = ("asset", "status", "failure_kind", "mode")
    # The lease (one-to-one) says whether a "training" row is still being trained: same query.
    list_select_related = ("asset", "asset__training_lease")
    ordering = ("asset__symbol", "-version")
    search_fields = ("asset__symbol", "reason")
    actions = ["activate", "unpin"]
    fields = (
        "asset",
        "version",
        "status_shown",
        "pinned",
        "failure_kind",
        "reason",
        "mode",
        "parent",
        "metrics_table",
        "horizon",
        "window",
        "features",
        "hyperparameters",
        "data_first",
        "data_last",
        "data_candles",
        "data_fingerprint",
        "epochs",
        "train_seconds",
        "loss_history_lines",
        "artifact_name",
        "artifact_sha256",
        "weights_name",
        "weights_sha256",
        "created_at",
        "trained_at",
        "activated_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelVersion]:
        queryset = super().get_queryset(request)
        # The changelist never shows the serving JSON; the detail page loads it by itself.
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            queryset = queryset.defer("preprocessing", "loss_history", "features", "hyperparameters")
        return queryset

    @admin.display(description="status", ordering="status")
    def status_shown(self, obj: ModelVersion) -> str:
        """The status, and what it does not say: a "training" row no run is training any more (its
        worker died; the next run marks it interrupted), an active one whose artifact cannot be loaded."""
        shown = obj.get_status_display()
        if obj.status == ModelVersion.Status.TRAINING:
            try:
                lease = obj.asset.training_lease
            except ObjectDoesNotExist:
                lease = None
            if lease is None or not lease.held(timezone.now()):
                return format_html("{} — <strong>stopped</strong> (no worker holds the lease)", shown)
        if obj.status == ModelVersion.Status.ACTIVE and obj.asset.model_unloadable:
            return format_html(
                '{} — <strong><span title="{}">cannot be loaded</span></strong>',
                shown,
                obj.asset.forecast_problem,
            )
        return shown

    @admin.display(description="skill 1 h")
    def skill_1h(self, obj: ModelVersion) -> str:
        skill = skill_at(obj.metrics or {}, 0)
        if no_change_was_exact(skill.value, skill.rmse, skill.persistence_rmse):
            return "worse (no change was exact)"
        return _pct(skill.value, signed=True)

    @admin.display(description="loss history")
    def loss_history_lines(self, obj: ModelVersion) -> str:
        # One line an epoch rather than the stored JSON: "epoch 1: train 0.98 / val 0.73".
        history = obj.loss_history or []
        if not history:
            return "–"
        return format_html_join(
            mark_safe("<br>"),
            "epoch {}: train {} / val {}",
            (
                (entry.get("epoch", index), _loss(entry.get("train_loss")), _loss(entry.get("val_loss")))
                for index, entry in enumerate(history, start=1)
            ),
        )

    @admin.display(description="train time")
    def train_time(self, obj: ModelVersion) -> str:
        return "–" if obj.train_seconds is None else f"{obj.train_seconds:.0f} s"

    @admin.display(description="metrics (held-out test, next to persistence)")
    def metrics_table(self, obj: ModelVersion) -> str:
        metrics = obj.metrics or {}
        rmse = metrics.get("rmse") or []
        if not rmse:
            return "no metrics recorded"
        steps = sorted({step for step in (*METRIC_STEPS, len(rmse)) if step <= len(rmse)})

        def cell(name: str, index: int) -> str:
            values = metrics.get(name) or []
            return _fmt(values[index]) if index < len(values) else "–"

        def share(name: str, index: int, *, signed: bool = False) -> str:
            values = metrics.get(name) or []
            return _pct(values[index], signed=signed) if index < len(values) else "–"

        rows = format_html_join(
            "",
            "<tr><td>{} h</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    step,
                    cell("rmse", step - 1),
                    cell("persistence_rmse", step - 1),
                    cell("mae", step - 1),
                    cell("persistence_mae", step - 1),
                    share("skill_rmse", step - 1, signed=True),
                    share("coverage_80", step - 1),
                )
                for step in steps
            ),
        )
        return format_html(
            "<table><thead><tr><th>ahead</th><th>RMSE</th><th>persistence RMSE</th><th>MAE</th>"
            "<th>persistence MAE</th><th>skill</th><th>80 % coverage</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    def has_activate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("forecasting.change_modelversion")

    @admin.action(description="Activate the selected version (rollback)", permissions=["activate"])
    def activate(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        # Imported here: the services pull in onnxruntime and pandas, which pages never need;
        # activating runs the version once, in this process, to store its current forecast.
        from forecasting.services import model_version_activate

        versions = list(queryset.select_related("asset"))
        assets = [version.asset_id for version in versions]
        if len(set(assets)) != len(assets):
            self.message_user(
                request, "Select at most one version per asset: only one can be active.", messages.ERROR
            )
            return
        for version in versions:
            name = f"{version.asset.symbol} v{version.version}"
            if version.status == ModelVersion.Status.ACTIVE:  # keep the reason it was promoted for
                self.message_user(request, f"{name} is already active.", messages.INFO)
                continue
            # Members read the reason on the pages and in the API: who did it goes to the admin's
            # history (LogEntry), and the reason the version had before stays readable.
            earlier = f"; earlier: {version.reason}" if version.reason else ""
            try:
                model_version_activate(
                    version=version, reason=f"rolled back by an operator{earlier}", pinned=True
                )
            except Exception as error:  # the service explains why (wrong status, missing artifact)
                self.message_user(
                    request, f"{name} ({version.status}): not activated: {error}", messages.ERROR
                )
            else:
                self.log_change(request, version, "Activated (rollback) and pinned.")
                self.message_user(
                    request,
                    f"{name} is now active, and pinned: retraining keeps new versions out of service "
                    "until you activate another version or unpin it.",
                    messages.SUCCESS,
                )

    @admin.action(
        description="Unpin: let retraining replace the selected active version", permissions=["activate"]
    )
    def unpin(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        from forecasting.services import model_version_unpin

        for version in queryset.select_related("asset"):
            name = f"{version.asset.symbol} v{version.version}"
            if model_version_unpin(version=version):
                self.message_user(
                    request, f"{name}: the next retrain may replace it again.", messages.SUCCESS
                )
            else:
                self.message_user(request, f"{name} was not pinned.", messages.INFO)


@admin.register(Forecast)
class ForecastAdmin(ReadOnlyAdmin):
    list_display = (
        "asset",
        "base_time",
        "model_version",
        "horizon",
        "scored_hours",
        "fully_scored",
        "generated_at",
    )
    list_filter = ("asset", "fully_scored")
    # The version column names its asset too (ModelVersion.__str__): one join, not a query a row.
    list_select_related = ("asset", "model_version__asset")
    date_hierarchy = "base_time"
    ordering = ("-base_time",)
    fields = (
        "asset",
        "model_version",
        "base_time",
        "last_close_",
        "horizon",
        "points",
        "scores",
        "fully_scored",
        "generated_at",
    )
    readonly_fields = fields
    last_close_ = decimal_column("last_close")

    @admin.display(description="scored hours")
    def scored_hours(self, obj: Forecast) -> str:
        return f"{len(obj.scores or [])} / {obj.horizon}"
