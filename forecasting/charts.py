"""Every Plotly figure of the web pages, built server-side.

Each function takes rows or plain data and returns the figure as a plain,
JSON-ready dict (`{"data": [...], "layout": {...}}`). Templates put it in a
<script type="application/json"> block and static/js/app.js draws it, so no
page needs an inline script (the CSP forbids them). Values are plain Python
lists: plotly would otherwise encode numpy arrays as binary blobs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import plotly.graph_objects as go
from plotly.subplots import make_subplots

# Colours chosen to stay legible for colour-blind readers (blue/orange pair).
UP = "#1b9e77"
DOWN = "#d95f02"
CLOSE = "#334155"
FORECAST = "#2563eb"
BAND = "rgba(37, 99, 235, 0.16)"
PERSISTENCE = "#9ca3af"
ACTUAL = "#111827"

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"


class ScoredLike(Protocol):
    scores: list[dict[str, Any]]


def _iso(value: datetime | str) -> str:
    return value if isinstance(value, str) else value.isoformat()


def _num(value: Decimal | float | int | None) -> float | None:
    return None if value is None else float(value)


def _layout(**overrides: Any) -> dict[str, Any]:
    """The shared look: compact margins so charts stay readable on a phone."""
    layout: dict[str, Any] = {
        "margin": {"l": 56, "r": 16, "t": 24, "b": 40},
        "font": {"family": FONT, "size": 12, "color": "#1f2937"},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "hovermode": "x unified",
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        "autosize": True,
    }
    layout.update(overrides)
    return layout


def _as_dict(fig: go.Figure) -> dict[str, Any]:
    # plotly.js's own defaults look clean; embedding python's template would add ~6 kB per chart.
    fig.layout.template = None
    # Round-trip through plotly's encoder: dates, Decimals and NaN become JSON-safe values.
    return json.loads(fig.to_json())


def price_figure(
    *,
    symbol: str,
    candles: Sequence[Mapping[str, Any]],
    points: Sequence[Mapping[str, Any]] = (),
    base_time: datetime | str | None = None,
    base_close: Decimal | float | None = None,
) -> dict[str, Any]:
    """Candlestick of `candles` with their close line, plus the forecast path and its 80 % band.

    `candles` are dicts with open_time/open/high/low/close (oldest first);
    `points` a forecast's [{"time","close","lower","upper"}]. The forecast path
    starts at the close it was made from (`base_time`, `base_close`), so the
    line joins the candles instead of floating beside them.
    """
    fig = go.Figure()
    times = [_iso(c["open_time"]) for c in candles]
    fig.add_trace(
        go.Candlestick(
            name=symbol,
            x=times,
            open=[_num(c["open"]) for c in candles],
            high=[_num(c["high"]) for c in candles],
            low=[_num(c["low"]) for c in candles],
            close=[_num(c["close"]) for c in candles],
            increasing={"line": {"color": UP}},
            decreasing={"line": {"color": DOWN}},
        )
    )
    fig.add_trace(
        go.Scatter(
            name="Close",
            x=times,
            y=[_num(c["close"]) for c in candles],
            mode="lines",
            line={"color": CLOSE, "width": 1},
            hoverinfo="skip",
        )
    )
    if points:
        anchored = base_time is not None and base_close is not None
        anchor_x = [_iso(base_time)] if anchored else []
        anchor_y = [_num(base_close)] if anchored else []
        x = anchor_x + [_iso(p["time"]) for p in points]
        # The band is drawn as upper then lower filled to it ("tonexty").
        fig.add_trace(
            go.Scatter(
                name="80 % interval (upper)",
                x=x,
                y=anchor_y + [_num(p["upper"]) for p in points],
                mode="lines",
                line={"width": 0, "color": FORECAST},
                showlegend=False,
                hovertemplate="upper %{y:,.2f}<extra></extra>",
            )
        )
        fig.add_trace(
            go.Scatter(
                name="80 % interval",
                x=x,
                y=anchor_y + [_num(p["lower"]) for p in points],
                mode="lines",
                line={"width": 0, "color": FORECAST},
                fill="tonexty",
                fillcolor=BAND,
                hovertemplate="lower %{y:,.2f}<extra></extra>",
            )
        )
        fig.add_trace(
            go.Scatter(
                name="Forecast",
                x=x,
                y=anchor_y + [_num(p["close"]) for p in points],
                mode="lines+markers",
                line={"color": FORECAST, "width": 2, "dash": "dot"},
                marker={"size": 4},
            )
        )
    # Range buttons count back from the end of the x axis, which is the forecast's end:
    # "1 day" shows the last day of candles plus the forecast after it.
    ahead = len(points)
    buttons = [
        {"count": 24 + ahead, "label": "1 day", "step": "hour", "stepmode": "backward"},
        {"count": 72 + ahead, "label": "3 days", "step": "hour", "stepmode": "backward"},
        {"step": "all", "label": "All"},
    ]
    fig.update_layout(
        _layout(
            yaxis={"title": {"text": "Price"}, "tickformat": ",.6~g"},
            xaxis={
                "type": "date",
                "rangeslider": {"visible": False},
                "rangeselector": {"buttons": buttons, "x": 0, "y": 1.0, "yanchor": "bottom"},
            },
            legend={"orientation": "h", "yanchor": "top", "y": -0.12, "x": 0},
            margin={"l": 64, "r": 16, "t": 40, "b": 48},
        )
    )
    return _as_dict(fig)


def loss_figure(*, loss_history: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Training and validation loss per epoch of one model version."""
    rows = [row for row in loss_history if "epoch" in row]
    epochs = [row["epoch"] for row in rows]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            name="Training loss",
            x=epochs,
            y=[_num(row.get("train_loss")) for row in rows],
            mode="lines+markers",
            line={"color": FORECAST},
        )
    )
    fig.add_trace(
        go.Scatter(
            name="Validation loss",
            x=epochs,
            y=[_num(row.get("val_loss")) for row in rows],
            mode="lines+markers",
            line={"color": DOWN},
        )
    )
    fig.update_layout(
        _layout(
            xaxis={"title": {"text": "Epoch"}, "dtick": 1 if len(epochs) <= 20 else None},
            yaxis={"title": {"text": "Loss (scaled)"}, "rangemode": "tozero"},
            hovermode="x",
        )
    )
    return _as_dict(fig)


def track_record_series(forecasts: Iterable[ScoredLike], *, step: int = 0) -> dict[str, list]:
    """The scored `step`-hours-ahead point of each forecast, oldest first.

    Scores are `Forecast.scores` entries ({"time","actual","error",
    "persistence_error"}, error = forecast - actual), so the forecast value is
    actual + error. Returns parallel lists: time, actual, forecast, model
    error and persistence error (absolute, quote currency). Hours without a
    realised close (exchange outages) are left out.
    """
    rows = []
    for forecast in forecasts:
        scores = forecast.scores or []
        if len(scores) <= step:
            continue
        score = scores[step]
        if score.get("actual") is None or score.get("error") is None:
            continue
        actual, error = float(score["actual"]), float(score["error"])
        rows.append(
            (
                _iso(score["time"]),
                actual,
                actual + error,
                abs(error),
                abs(float(score["persistence_error"])),
            )
        )
    rows.sort(key=lambda row: row[0])
    return {
        "time": [row[0] for row in rows],
        "actual": [row[1] for row in rows],
        "forecast": [row[2] for row in rows],
        "error": [row[3] for row in rows],
        "persistence_error": [row[4] for row in rows],
    }


def track_record_figure(*, series: dict[str, list], step: int = 0) -> dict[str, Any]:
    """Live track record: forecasts against what happened, and both error lines.

    Top: the realised close and what the model had forecast for that hour.
    Bottom: the model's absolute error next to persistence's ("no change").
    """
    ahead = f"{step + 1} h ahead"
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.6, 0.4])
    fig.add_trace(
        go.Scatter(
            name="What happened",
            x=series["time"],
            y=series["actual"],
            mode="lines",
            line={"color": ACTUAL, "width": 1.5},
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            name=f"Forecast {ahead}",
            x=series["time"],
            y=series["forecast"],
            mode="lines+markers",
            line={"color": FORECAST, "width": 1.5, "dash": "dot"},
            marker={"size": 4},
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            name="Model error",
            x=series["time"],
            y=series["error"],
            mode="lines",
            line={"color": FORECAST},
        ),
        row=2,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            name="No-change error",
            x=series["time"],
            y=series["persistence_error"],
            mode="lines",
            line={"color": PERSISTENCE, "dash": "dash"},
        ),
        row=2,
        col=1,
    )
    fig.update_layout(_layout(margin={"l": 64, "r": 16, "t": 24, "b": 40}))
    fig.update_yaxes(title_text="Price", tickformat=",.6~g", row=1, col=1)
    fig.update_yaxes(title_text="Abs. error", rangemode="tozero", row=2, col=1)
    return _as_dict(fig)
