"""forecasting.charts: the figures' traces, checked on the JSON the pages embed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

from forecasting import charts
from forecasting.templatetags.market_format import when

T0 = datetime(2022, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _candles(count: int = 120) -> list[dict]:
    return [
        {
            "open_time": T0 + i * HOUR,
            "open": Decimal("40000") + i,
            "high": Decimal("40100") + i,
            "low": Decimal("39900") + i,
            "close": Decimal("40050.5") + i,
        }
        for i in range(count)
    ]


def _points(base: datetime, count: int = 24, close: float = 40200.0) -> list[dict]:
    return [
        {
            "time": (base + (step + 1) * HOUR).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "close": close + step,
            "lower": close + step - 50 - 10 * step,
            "upper": close + step + 50 + 10 * step,
        }
        for step in range(count)
    ]


def _traces(figure: dict) -> dict[str, dict]:
    return {trace["name"]: trace for trace in figure["data"]}


def test_the_price_chart_has_the_candlestick_close_line_forecast_and_band():
    candles = _candles()
    last = candles[-1]
    figure = charts.price_figure(
        name="BTC/USDT",
        candles=candles,
        points=_points(last["open_time"]),
        base_time=last["open_time"],
        base_close=last["close"],
    )
    traces = _traces(figure)
    assert [trace["type"] for trace in figure["data"]] == [
        "candlestick",
        "scatter",
        "scatter",
        "scatter",
        "scatter",
    ]
    candle = traces["BTC/USDT"]
    assert len(candle["x"]) == len(candle["open"]) == len(candle["high"]) == len(candle["close"]) == 120
    assert candle["close"][-1] == 40169.5
    assert traces["Close"]["y"] == candle["close"]
    forecast = traces["Forecast"]
    # The path starts at the close it was made from, then one point per hour ahead.
    assert len(forecast["x"]) == len(forecast["y"]) == 25
    assert forecast["y"][0] == 40169.5 and forecast["y"][1] == 40200.0
    upper, lower = traces["80 % interval (upper)"], traces["80 % interval"]
    assert len(upper["y"]) == len(lower["y"]) == 25
    assert all(u >= lo for u, lo in zip(upper["y"], lower["y"], strict=True))
    assert all(lo <= f <= u for lo, f, u in zip(lower["y"], forecast["y"], upper["y"], strict=True))
    assert lower["fill"] == "tonexty"


def test_the_close_line_stays_out_of_the_legend_beside_the_candles():
    traces = _traces(charts.price_figure(name="BTC/USDT", candles=_candles(10)))
    assert traces["Close"]["showlegend"] is False
    assert traces["BTC/USDT"].get("showlegend", True) is True


def test_the_price_chart_hover_names_the_close_time_of_each_forecast_point():
    # Points sit at their candle's open time (Plotly's convention); the pages say "price at"
    # the close, so the 03:00 candle's point is the price at 04:00.
    base = T0 + 2 * HOUR
    figure = charts.price_figure(
        name="BTC/USDT", candles=_candles(3), points=_points(base, 2), base_time=base, base_close=40052.5
    )
    traces = _traces(figure)
    forecast, band = traces["Forecast"], traces["80 % interval"]
    assert forecast["x"][:2] == ["2022-03-01T02:00:00+00:00", "2022-03-01T03:00:00Z"]
    assert forecast["customdata"] == ["1 Mar 2022 03:00 UTC", "1 Mar 2022 04:00 UTC", "1 Mar 2022 05:00 UTC"]
    assert forecast["hovertemplate"][0].startswith("last close at %{customdata}")
    assert forecast["hovertemplate"][1].startswith("forecast price at %{customdata}: %{y:,.2f}")
    # The band's hover carries both ends, with the upper bound in customdata.
    assert band["customdata"][1] == ["1 Mar 2022 04:00 UTC", traces["80 % interval (upper)"]["y"][1]]
    assert "80 % range for the price at %{customdata[0]}" in band["hovertemplate"][1]
    assert traces["80 % interval (upper)"]["hoverinfo"] == "skip"
    xaxis = figure["layout"]["xaxis"]
    assert xaxis["title"]["text"] == "Candle start (UTC)"
    assert xaxis["hoverformat"] == "candle from %-d %b %Y %H:%M UTC"


def test_plotlys_hover_dates_read_as_the_pages_write_dates():
    # d3's time format shares strftime's directives, so Python can render what Plotly will.
    moment = datetime(2022, 11, 24, 14, tzinfo=UTC)
    assert moment.strftime(charts.HOVER_TIME) == when(moment) == "24 Nov 2022 14:00 UTC"
    series = {
        "time": [moment.isoformat()],
        "actual": [1.0],
        "forecast": [1.0],
        "error": [0.0],
        "persistence_error": [0.0],
    }
    track = charts.track_record_figure(series=series)
    assert {axis["hoverformat"] for name, axis in track["layout"].items() if name.startswith("xaxis")} == {
        f"candle from {charts.HOVER_TIME}"
    }


MONTH_MS = 2629743830  # Plotly's average month, for "M<n>" spacings


def _tick_format(stops: list[dict], dtick: int | str) -> str:
    """The format Plotly picks for tick spacing `dtick`: the first stop whose range holds it."""

    def ms(value: int | str) -> float:
        return int(value[1:]) * MONTH_MS if isinstance(value, str) else value

    for stop in stops:
        low, high = stop["dtickrange"]
        if (low is None or ms(low) <= ms(dtick)) and (high is None or ms(dtick) <= ms(high)):
            return stop["value"]
    raise AssertionError(f"no tick format for {dtick}")


def test_time_axis_ticks_write_dates_as_the_pages_do():
    moment = datetime(2022, 3, 6, 17, tzinfo=UTC)
    series = {"time": [moment.isoformat()], "actual": [1.0], "forecast": [1.0], "error": [0.0]}
    figures = [
        charts.price_figure(name="BTC/USDT", candles=_candles(5)),
        charts.track_record_figure(series={**series, "persistence_error": [0.0]}),
    ]
    axes = [axis for figure in figures for name, axis in figure["layout"].items() if name.startswith("xaxis")]
    assert len(axes) == 3 and all(axis["tickformatstops"] == axes[0]["tickformatstops"] for axis in axes)
    stops = axes[0]["tickformatstops"]
    # Hours: the time on every tick, the date once under the first one and each new day
    # (Plotly writes what follows "\n" only where it changes).
    for dtick in (3600000, 6 * 3600000, 12 * 3600000):
        time, date = _tick_format(stops, dtick).split("\n")
        assert moment.strftime(f"{date} {time} UTC") == when(moment) == "6 Mar 2022 17:00 UTC"
    for dtick in (86400000, 2 * 86400000, 7 * 86400000, 14 * 86400000):  # days, the year once
        assert moment.strftime(_tick_format(stops, dtick).replace("\n", " ")) == "6 Mar 2022"
    for dtick in ("M1", "M3", "M6"):
        assert moment.strftime(_tick_format(stops, dtick).replace("\n", " ")) == "Mar 2022"
    assert moment.strftime(_tick_format(stops, "M12")) == "2022"


def test_the_price_axis_names_the_quote_currency():
    figure = charts.price_figure(name="BTC/USDT", candles=_candles(5), quote="USDT")
    assert figure["layout"]["yaxis"]["title"]["text"] == "Price (USDT)"


def test_hover_prices_are_rounded_like_the_cards_whatever_the_price_size():
    tiny = [
        {
            "open_time": T0 + i * HOUR,
            "open": 0.00001230,
            "high": 0.0000125,
            "low": 0.0000121,
            "close": 0.00001234,
        }
        for i in range(3)
    ]
    points = [{"time": T0 + 3 * HOUR, "close": 0.00001236, "lower": 0.0000120, "upper": 0.0000127}]
    figure = charts.price_figure(
        name="SHIB/USDT", candles=tiny, points=points, base_time=T0 + 2 * HOUR, base_close=0.00001234
    )
    # The `price` filter writes 0.00001234 with 8 decimals, and so does the hover.
    assert figure["layout"]["yaxis"]["hoverformat"] == ",.8f"
    assert ": %{y:,.8f}" in _traces(figure)["Forecast"]["hovertemplate"][1]
    big = charts.price_figure(name="BTC/USDT", candles=_candles(3))
    assert big["layout"]["yaxis"]["hoverformat"] == ",.2f"


def test_the_price_chart_has_range_buttons_and_no_range_slider():
    figure = charts.price_figure(name="BTC/USDT", candles=_candles(), points=_points(T0 + 119 * HOUR))
    xaxis = figure["layout"]["xaxis"]
    assert [button["label"] for button in xaxis["rangeselector"]["buttons"]] == ["1 day", "3 days", "All"]
    # "1 day" counts back from the axis end, half an hour after the forecast's last point (not
    # Plotly's padded autorange): the last 24 candles plus the 24 forecast hours.
    assert xaxis["rangeselector"]["buttons"][0]["count"] == 48
    last_point = T0 + (119 + 24) * HOUR
    assert xaxis["range"] == [(T0 - HOUR / 2).isoformat(), (last_point + HOUR / 2).isoformat()]
    assert xaxis["autorange"] is False
    one_day_from = last_point + HOUR / 2 - 48 * HOUR
    shown = [c for c in _candles() if c["open_time"] >= one_day_from]
    assert len(shown) == 24 and shown[-1]["open_time"] == T0 + 119 * HOUR
    assert xaxis["rangeslider"]["visible"] is False


def test_the_price_chart_without_a_forecast_draws_only_prices():
    figure = charts.price_figure(name="BTC/USDT", candles=_candles(10))
    assert [trace["name"] for trace in figure["data"]] == ["BTC/USDT", "Close"]


def test_figures_are_plain_json_without_plotlys_python_template():
    figure = charts.price_figure(name="BTC/USDT", candles=_candles(5), points=_points(T0))
    assert "template" not in figure["layout"]
    # Plain lists, not plotly's binary-encoded arrays, and valid JSON as embedded.
    assert json.loads(json.dumps(figure)) == figure
    assert isinstance(figure["data"][0]["x"], list)
    assert figure["data"][0]["x"][0] == "2022-03-01T00:00:00+00:00"


def test_the_loss_chart_has_one_point_per_epoch_for_both_losses():
    history = [{"epoch": epoch, "train_loss": 1 / epoch, "val_loss": 1.2 / epoch} for epoch in range(1, 7)]
    figure = charts.loss_figure(loss_history=history)
    assert figure["layout"]["yaxis"]["title"]["text"] == "Scaled squared error"
    traces = _traces(figure)
    assert set(traces) == {"Training loss", "Validation loss"}
    assert traces["Training loss"]["x"] == [1, 2, 3, 4, 5, 6]
    assert traces["Validation loss"]["y"][0] == 1.2
    assert all(len(trace["x"]) == len(trace["y"]) == 6 for trace in traces.values())


def test_the_loss_chart_draws_what_no_change_scores_as_a_flat_dashed_line_per_split():
    history = [{"epoch": epoch, "train_loss": 1 / epoch, "val_loss": 0.7} for epoch in range(1, 5)]
    figure = charts.loss_figure(loss_history=history, no_change={"train": 1.0001, "validation": 0.757})
    traces = _traces(figure)
    validation = traces["No change (validation)"]
    assert validation["x"] == [1, 2, 3, 4] and validation["y"] == [0.757] * 4
    assert validation["line"]["dash"] == "dash"
    assert validation["line"]["color"] == traces["Validation loss"]["line"]["color"]
    assert traces["No change (training)"]["y"] == [1.0001] * 4


def test_the_loss_chart_of_a_version_without_the_no_change_loss_has_no_reference_line():
    history = [{"epoch": 1, "train_loss": 0.9, "val_loss": 0.7}]
    assert set(_traces(charts.loss_figure(loss_history=history))) == {"Training loss", "Validation loss"}
    only_validation = charts.loss_figure(loss_history=history, no_change={"validation": 0.75})
    assert set(_traces(only_validation)) == {"Training loss", "Validation loss", "No change (validation)"}


def _scored(base: datetime, actual: float, forecast: float, last_close: float, outage: bool = False):
    time = (base + HOUR).strftime("%Y-%m-%dT%H:%M:%SZ")
    if outage:
        return SimpleNamespace(scores=[{"time": time, "actual": None}])
    return SimpleNamespace(
        scores=[
            {
                "time": time,
                "actual": actual,
                "error": forecast - actual,
                "inside": True,
                "persistence_error": last_close - actual,
            }
        ]
    )


def test_the_track_record_series_recovers_forecasts_and_skips_outages_oldest_first():
    newest_first = [
        _scored(T0 + 2 * HOUR, actual=103.0, forecast=101.0, last_close=100.0),
        _scored(T0 + HOUR, actual=0.0, forecast=0.0, last_close=0.0, outage=True),
        _scored(T0, actual=98.0, forecast=99.5, last_close=100.0),
        SimpleNamespace(scores=[]),  # nothing scored yet
    ]
    series = charts.track_record_series(newest_first)
    assert series["time"] == ["2022-03-01T01:00:00Z", "2022-03-01T03:00:00Z"]
    assert series["actual"] == [98.0, 103.0]
    assert series["forecast"] == [99.5, 101.0]
    assert series["error"] == [1.5, 2.0]
    assert series["persistence_error"] == [2.0, 3.0]


def test_the_track_record_chart_puts_forecasts_over_reality_and_errors_below():
    series = charts.track_record_series(
        [_scored(T0 + i * HOUR, 100.0 + i, 101.0 + i, 99.0 + i) for i in range(5)]
    )
    figure = charts.track_record_figure(series=series, quote="USDT")
    assert figure["layout"]["yaxis"]["title"]["text"] == "Price (USDT)"
    assert figure["layout"]["yaxis2"]["title"]["text"] == "Abs. error (USDT)"
    assert figure["layout"]["yaxis"]["hoverformat"] == ",.2f"
    traces = _traces(figure)
    assert set(traces) == {"What happened", "Forecast 1 h ahead", "Model error", "No-change error"}
    assert traces["What happened"]["yaxis"] == "y" and traces["Model error"]["yaxis"] == "y2"
    assert all(len(trace["x"]) == len(trace["y"]) == 5 for trace in traces.values())
    assert traces["No-change error"]["y"] == [1.0] * 5


def test_the_track_record_chart_shows_a_lone_first_hour_over_half_a_day():
    series = charts.track_record_series([_scored(T0, 100.0, 101.0, 99.0)])
    figure = charts.track_record_figure(series=series, quote="USDT")
    start, end = (charts._when(value) for value in figure["layout"]["xaxis"]["range"])
    assert end - start == 12 * HOUR and start < charts._when(series["time"][0]) < end
    assert all("markers" in trace["mode"] for trace in _traces(figure).values())
    many = charts.track_record_series([_scored(T0 + i * HOUR, 100.0, 101.0, 99.0) for i in range(24)])
    assert "range" not in charts.track_record_figure(series=many)["layout"]["xaxis"]


def test_the_close_line_breaks_at_missing_hours_instead_of_joining_them():
    candles = _candles(10)
    del candles[4:7]  # an outage: 3 hours without a candle
    traces = _traces(charts.price_figure(name="BTC/USDT", candles=candles))
    close = traces["Close"]
    assert close["connectgaps"] is False
    assert None in close["y"]
    gap = close["y"].index(None)
    assert close["x"][gap - 1 : gap + 2] == [
        (T0 + 3 * HOUR).isoformat(),
        (T0 + 4 * HOUR).isoformat(),
        (T0 + 7 * HOUR).isoformat(),
    ]
    # Only real candles are drawn: nothing is made up for the missing hours.
    assert [value for value in close["y"] if value is not None] == traces["BTC/USDT"]["close"]
    assert len(traces["BTC/USDT"]["x"]) == 7
