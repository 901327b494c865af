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
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from forecasting.templatetags.market_format import price_decimals
from makeusrich.formats import datetime_text

# Colours chosen to stay legible for colour-blind readers (blue/orange pair).
UP = "#1b9e77"
DOWN = "#d95f02"
CLOSE = "#334155"
FORECAST = "#2563eb"
BAND = "rgba(37, 99, 235, 0.16)"
PERSISTENCE = "#9ca3af"
ACTUAL = "#111827"

HOUR = timedelta(hours=1)
# Plotly's (d3's) spelling of the pages' date format (makeusrich.formats): "6 Mar 2022 17:00 UTC".
HOVER_TIME = "%-d %b %Y %H:%M UTC"
DAY_MS = 24 * 3600 * 1000
# Tick labels in the same order of day, month and 24-hour clock, by the spacing Plotly picks
# (dtick: milliseconds, or "M<n>" months; the first stop that holds it wins). What follows
# "\n" is Plotly's date header: written under the first tick and wherever it changes, so the
# date (and the year) is not repeated under every hour. The axis title says "(UTC)".
TIME_TICKS = [
    {"dtickrange": [None, DAY_MS - 1], "value": "%H:%M\n%-d %b %Y"},  # 06:00, 12:00 / 7 Mar 2022
    {"dtickrange": [DAY_MS, 28 * DAY_MS], "value": "%-d %b\n%Y"},  # 7 Mar, 8 Mar / 2022
    {"dtickrange": ["M1", "M11"], "value": "%b\n%Y"},
    {"dtickrange": ["M12", None], "value": "%Y"},
]
TRACK_MIN_SPAN = 12 * HOUR  # the narrowest time range the track record chart shows
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"


class ScoredLike(Protocol):
    scores: list[dict[str, Any]]


def _iso(value: datetime | str) -> str:
    return value if isinstance(value, str) else value.isoformat()


def _when(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value


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


def _at(value: datetime | str) -> str:
    """A candle's close time as the pages write it: "7 Mar 2022 17:00 UTC"."""
    return datetime_text(_when(value))


def _price_title(quote: str) -> str:
    return f"Price ({quote})" if quote else "Price"


def _add_forecast(
    fig: go.Figure,
    *,
    points: Sequence[Mapping[str, Any]],
    base_time: datetime | str | None,
    base_close: Decimal | float | None,
    digits: int,
) -> None:
    """The forecast path and its band, hover text naming the close time of each point."""
    x = [_iso(p["time"]) for p in points]
    start: list[float | None] = []
    if base_time is not None and base_close is not None:
        x.insert(0, _iso(base_time))
        start = [_num(base_close)]
    upper = start + [_num(p["upper"]) for p in points]
    # Each point sits at its candle's open time and is the price at that candle's close.
    due = [_at(_when(value) + HOUR) for value in x]
    number = f"%{{y:,.{digits}f}}"
    # Per point, so the anchor (a known close, not a forecast) says what it is.
    path_hover = [f"forecast price at %{{customdata}}: {number}<extra></extra>"] * len(points)
    band_hover = [
        f"80 % range for the price at %{{customdata[0]}}: {number} to %{{customdata[1]:,.{digits}f}}"
        "<extra></extra>"
    ] * len(points)
    if start:
        path_hover.insert(0, f"last close at %{{customdata}}: {number}<extra></extra>")
        band_hover.insert(0, "80 % range starts at the last close<extra></extra>")
    # The band is drawn as upper then lower filled to it ("tonexty"); the lower one hovers for both.
    fig.add_trace(
        go.Scatter(
            name="80 % interval (upper)",
            x=x,
            y=upper,
            mode="lines",
            line={"width": 0, "color": FORECAST},
            showlegend=False,
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            name="80 % interval",
            x=x,
            y=start + [_num(p["lower"]) for p in points],
            customdata=[[label, high] for label, high in zip(due, upper, strict=True)],
            mode="lines",
            line={"width": 0, "color": FORECAST},
            fill="tonexty",
            fillcolor=BAND,
            hovertemplate=band_hover,
        )
    )
    fig.add_trace(
        go.Scatter(
            name="Forecast",
            x=x,
            y=start + [_num(p["close"]) for p in points],
            customdata=due,
            mode="lines+markers",
            line={"color": FORECAST, "width": 2, "dash": "dot"},
            marker={"size": 4},
            hovertemplate=path_hover,
        )
    )


def _with_breaks(candles: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[float | None]]:
    """The close line's points, with a null one hour after each candle that is followed by a
    missing hour: the line breaks there instead of drawing a price nobody traded at."""
    times: list[str] = []
    closes: list[float | None] = []
    previous: datetime | None = None
    for candle in candles:
        opened = _when(candle["open_time"])
        if previous is not None and opened - previous > HOUR:
            times.append(_iso(previous + HOUR))
            closes.append(None)
        times.append(_iso(opened))
        closes.append(_num(candle["close"]))
        previous = opened
    return times, closes


def price_figure(
    *,
    name: str,
    candles: Sequence[Mapping[str, Any]],
    points: Sequence[Mapping[str, Any]] = (),
    base_time: datetime | str | None = None,
    base_close: Decimal | float | None = None,
    quote: str = "",
) -> dict[str, Any]:
    """Candlestick of `candles` with their close line, plus the forecast path and its 80 % band.

    `name` is the asset's display name ("BTC/USDT", as the page heading writes
    it): the candlestick's legend entry. `candles` are dicts with open_time/open/high/low/close (oldest first);
    `points` a forecast's [{"time","close","lower","upper"}]. The forecast path
    starts at the close it was made from (`base_time`, `base_close`), so the
    line joins the candles instead of floating beside them.

    Everything is drawn at its candle's open time (Plotly's candlestick
    convention), while the pages call a price "at 17:00" when it is the close of
    the candle ending then: the x axis says so, and the forecast's hover text
    names the close time of each point.
    """
    fig = go.Figure()
    times = [_iso(c["open_time"]) for c in candles]
    closes = [_num(c["close"]) for c in candles]
    line_times, line_closes = _with_breaks(candles)
    fig.add_trace(
        go.Candlestick(
            name=name,
            x=times,
            open=[_num(c["open"]) for c in candles],
            high=[_num(c["high"]) for c in candles],
            low=[_num(c["low"]) for c in candles],
            close=closes,
            increasing={"line": {"color": UP}},
            decreasing={"line": {"color": DOWN}},
        )
    )
    # A thin line through the closes keeps the trend readable when the candles are tiny;
    # the candles already have a legend entry.
    fig.add_trace(
        go.Scatter(
            name="Close",
            x=line_times,
            y=line_closes,
            mode="lines",
            connectgaps=False,
            line={"color": CLOSE, "width": 1},
            hoverinfo="skip",
            showlegend=False,
        )
    )
    reference = next((value for value in reversed(closes) if value is not None), _num(base_close))
    digits = price_decimals(reference) if reference is not None else 2
    if points:
        _add_forecast(fig, points=points, base_time=base_time, base_close=base_close, digits=digits)
    # Range buttons count back from the end of the x axis. Plotly's own (auto) range pads the
    # end by hours, which "1 day" then spent on empty axis: the range is set to end half an hour
    # after the forecast's last point, so "1 day" shows the last 24 candles plus the forecast.
    ahead = len(points)
    x_range = _time_range(candles, points)
    buttons = [
        {"count": 24 + ahead, "label": "1 day", "step": "hour", "stepmode": "backward"},
        {"count": 72 + ahead, "label": "3 days", "step": "hour", "stepmode": "backward"},
        {"step": "all", "label": "All"},
    ]
    fig.update_layout(
        _layout(
            yaxis={
                "title": {"text": _price_title(quote)},
                "tickformat": ",.6~g",
                "hoverformat": f",.{digits}f",
            },
            xaxis={
                "type": "date",
                "title": {"text": "Candle start (UTC)"},
                "hoverformat": f"candle from {HOVER_TIME}",
                "tickformatstops": TIME_TICKS,
                "rangeslider": {"visible": False},
                "rangeselector": {"buttons": buttons, "x": 0, "y": 1.0, "yanchor": "bottom"},
                **({"range": x_range, "autorange": False} if x_range else {}),
            },
            legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0},
            margin={"l": 64, "r": 16, "t": 40, "b": 56},
        )
    )
    return _as_dict(fig)


def _time_range(
    candles: Sequence[Mapping[str, Any]], points: Sequence[Mapping[str, Any]]
) -> list[str] | None:
    """[half an hour before the first candle, half an hour after the last candle or forecast point]."""
    times = [_as_datetime(c["open_time"]) for c in candles[:1]] + [
        _as_datetime(item)
        for item in ([points[-1]["time"]] if points else [c["open_time"] for c in candles[-1:]])
    ]
    if not times:
        return None
    margin = HOUR / 2
    return [_iso(min(times) - margin), _iso(max(times) + margin)]


def _as_datetime(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))


def loss_figure(
    *, loss_history: Iterable[dict[str, Any]], no_change: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """Training and validation loss per epoch of one model version.

    The loss is the mean squared error of the predicted changes, each divided by
    its standard deviation in training. `no_change` ({"train", "validation"},
    either may be missing) is what predicting "no change" scored on the same
    windows, drawn as a dashed line beside its loss: it is about 1 on training
    only, so without it the chart has no reference (versions trained before it
    was recorded have none).
    """
    rows = [row for row in loss_history if "epoch" in row]
    epochs = [row["epoch"] for row in rows]
    no_change = no_change or {}
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
    # Each loss's own reference, in its colour, flat across the epochs so hover shows it.
    for split, label, colour in (("train", "training", FORECAST), ("validation", "validation", DOWN)):
        if no_change.get(split) is not None and epochs:
            fig.add_trace(
                go.Scatter(
                    name=f"No change ({label})",
                    x=epochs,
                    y=[float(no_change[split])] * len(epochs),
                    mode="lines",
                    line={"color": colour, "width": 1, "dash": "dash"},
                )
            )
    fig.update_layout(
        _layout(
            xaxis={"title": {"text": "Epoch"}, "dtick": 1 if len(epochs) <= 20 else None},
            yaxis={"title": {"text": "Scaled squared error"}, "rangemode": "tozero"},
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


def track_record_figure(*, series: dict[str, list], step: int = 0, quote: str = "") -> dict[str, Any]:
    """Live track record: forecasts against what happened, and both error lines.

    Top: the realised close and what the model had forecast for that hour.
    Bottom: the model's absolute error next to persistence's ("no change").
    Like the price chart, each hour is drawn at its candle's open time.
    """
    ahead = f"{step + 1} h ahead"
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.6, 0.4])
    fig.add_trace(
        go.Scatter(
            name="What happened",
            x=series["time"],
            y=series["actual"],
            mode="lines+markers",
            line={"color": ACTUAL, "width": 1.5},
            marker={"size": 4},
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
            mode="lines+markers",
            line={"color": FORECAST},
            marker={"size": 4},
        ),
        row=2,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            name="No-change error",
            x=series["time"],
            y=series["persistence_error"],
            mode="lines+markers",
            line={"color": PERSISTENCE, "dash": "dash"},
            marker={"size": 4},
        ),
        row=2,
        col=1,
    )
    # Room below for two-line tick labels (hours over the date) and the axis title.
    fig.update_layout(_layout(margin={"l": 64, "r": 16, "t": 24, "b": 56}))
    digits = price_decimals(series["actual"][-1]) if series["actual"] else 2
    fig.update_xaxes(hoverformat=f"candle from {HOVER_TIME}", tickformatstops=TIME_TICKS)
    fig.update_xaxes(title_text="Candle start (UTC)", row=2, col=1)
    if series["time"]:
        # The first scored hours: Plotly would zoom a lone point to milliseconds.
        first, last = _when(series["time"][0]), _when(series["time"][-1])
        if last - first < TRACK_MIN_SPAN:
            middle = first + (last - first) / 2
            fig.update_xaxes(range=[_iso(middle - TRACK_MIN_SPAN / 2), _iso(middle + TRACK_MIN_SPAN / 2)])
    fig.update_yaxes(
        title_text=_price_title(quote), tickformat=",.6~g", hoverformat=f",.{digits}f", row=1, col=1
    )
    unit = f" ({quote})" if quote else ""
    # As the `amount` filter writes errors: 2 decimals from 1 up, 3 significant digits below.
    error_format = ",.2f" if max(series["error"] + series["persistence_error"], default=0) >= 1 else ".3g"
    fig.update_yaxes(
        title_text=f"Abs. error{unit}", rangemode="tozero", hoverformat=error_format, row=2, col=1
    )
    return _as_dict(fig)
