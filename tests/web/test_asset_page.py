"""The asset page: the charts' figure JSON, the versions table, track record and empty states."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from forecasting.models import Forecast, ModelVersion
from markets.models import Asset, Candle
from tests.candles import candle_row
from tests.web import factories

pytestmark = pytest.mark.django_db
Status = ModelVersion.Status


def _page(client, user, path: str = "/assets/BTCUSDT/") -> str:
    client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200
    return response.content.decode()


def _figure(html: str, element_id: str) -> dict:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"no figure data {element_id}"
    return json.loads(match.group(1))


def _names(figure: dict) -> list[str]:
    return [trace["name"] for trace in figure["data"]]


def test_it_embeds_the_five_day_candlestick_with_the_latest_forecast(client, member, market):
    html = _page(client, member)
    figure = _figure(html, "price-chart-data")
    assert _names(figure) == ["BTC/USDT", "Close", "80 % interval (upper)", "80 % interval", "Forecast"]
    candles = figure["data"][0]
    assert len(candles["x"]) == 120  # the last five days of the 150 stored
    assert candles["close"][-1] == float(market.candles[-1].close)
    assert figure["data"][-1]["y"][1:] == [point["close"] for point in market.forecast.points]
    # Rendered by static JS from a JSON block: the page carries no inline script.
    assert re.findall(r"<script(?![^>]*(type=\"application/json\"|src=))", html) == []
    assert '<script src="/static/vendor/plotly/plotly.min.js" defer>' in html


def test_it_embeds_the_training_loss_of_the_active_version(client, member, market):
    figure = _figure(_page(client, member), "loss-chart-data")
    assert _names(figure) == ["Training loss", "Validation loss"]
    assert figure["data"][0]["y"] == [row["train_loss"] for row in market.version.loss_history]


def test_it_shows_the_live_track_record_against_persistence(client, member, market):
    html = _page(client, member)
    figure = _figure(html, "track-chart-data")
    assert _names(figure) == ["What happened", "Forecast 1 h ahead", "Model error", "No-change error"]
    # The 30 scored forecasts of the fixture each have a realised next hour.
    assert len(figure["data"][0]["x"]) == 30
    summary = re.sub(r"\s+", " ", html.split('data-field="track-summary"')[1].split("</p>")[0])
    assert "30 forecasts met reality" in summary
    assert "assuming no change" in summary


def _summary(html: str) -> str:
    return _text(html.split('data-field="track-summary">')[1].split("</p>")[0])


def test_the_track_record_says_how_many_scored_hours_each_finding_rests_on(client, member, market):
    summary = _summary(_page(client, member))
    assert "One hour ahead, over 30 scored hours, the model was off by" in summary
    # Forecast k hours old has min(k, 24) scored hours: 1 + ... + 24 + 6 * 24.
    assert "of the time (444 scored hours from 30 forecasts)" in summary
    assert "Preliminary" not in summary and "too few" not in summary


def test_on_a_few_scored_hours_the_track_record_says_too_few_to_judge(client, member, btc):
    factories.market_create(asset=btc, scored=3)
    html = _page(client, member)
    summary = _summary(html)
    assert (
        "One hour ahead, only 3 hours have been scored, too few to judge the model (it takes 24)." in summary
    )
    assert "Preliminary: off by" in summary
    assert (
        "The 80 % band is judged once 24 forecasts have been checked against reality"
        " (at least their first hour scored). So far 6 hours from 3 forecasts: 21 more forecasts to go,"
        " about 21 hours at one forecast an hour." in summary
    )
    assert re.search(r"Preliminary: it held the real price \d+ % of the time\.", summary)
    # No verdict next to "no change" in bold, and no band figure outside the preliminary note.
    assert "<strong>" not in html.split('data-field="track-summary">')[1].split("</p>")[0]
    assert summary.count("held the real price") == 1


@pytest.mark.parametrize(("scored", "judged"), [(23, False), (24, True)])
def test_a_day_of_scored_forecasts_is_the_least_the_track_record_judges_on(
    client, member, btc, scored, judged
):
    factories.market_create(asset=btc, scored=scored)
    summary = _summary(_page(client, member))
    assert (f"One hour ahead, over {scored} scored hours" in summary) is judged
    assert ("Preliminary" in summary) is not judged
    assert ("1 more forecast to go, about 1 hour at one forecast an hour." in summary) is not judged


def test_the_versions_table_lists_status_kind_duration_and_errors_next_to_persistence(client, member, market):
    html = _page(client, member)
    table = re.sub(r"\s+", " ", html.split('id="versions-table"')[1].split("</table>")[0])
    rows = re.findall(r'data-version="(\d+)"', table)
    assert rows == ["2", "1"]
    metrics = market.version.metrics
    assert (
        f"{metrics['rmse'][0]:,.2f}" in table and f"no change {metrics['persistence_rmse'][0]:,.2f}" in table
    )
    assert (
        f"{metrics['rmse'][-1]:,.2f}" in table
        and f"no change {metrics['persistence_rmse'][-1]:,.2f}" in table
    )
    assert "12 % better" in table and "5 % worse" in table
    assert "warm start" in table and "42 s" in table
    assert "loss became NaN at epoch 3" not in table  # an operator's text: members are told less
    assert "The operators see why in the admin." in table
    assert "Trained (UTC)" in table and f"<div>{_dated(market.version.trained_at)}</div>" in table


def test_a_null_skill_where_no_change_was_exact_reads_as_worse_in_the_versions_table(client, member, market):
    metrics = market.version.metrics
    metrics["rmse"][-1], metrics["persistence_rmse"][-1], metrics["skill_rmse"][-1] = 3.0, 0.0, None
    market.version.save(update_fields=["metrics"])

    html = _page(client, member)

    table = re.sub(r"\s+", " ", html.split('id="versions-table"')[1].split("</table>")[0])
    assert "12 % better" in table and "worse (no change was exact)" in table


def test_the_track_record_says_worse_when_no_change_was_exact_and_the_model_was_not(client, member, market):
    for forecast in market.scored:  # the price never moved one hour ahead; the forecasts did
        forecast.scores[0]["persistence_error"] = 0.0
        forecast.save(update_fields=["scores"])

    summary = _summary(_page(client, member))

    assert (
        "against 0.00 for assuming no change: worse than assuming no change, which was exact here" in summary
    )
    assert "not measured" not in summary


def test_a_lower_case_symbol_redirects_to_the_canonical_page(client, member, btc):
    client.force_login(member)
    response = client.get("/assets/btcusdt/")
    assert response.status_code == 302 and response["Location"] == "/assets/BTCUSDT/"


@pytest.mark.parametrize("symbol", ["ETHUSDT", "NOPE", "BTC-USDT"])
def test_unknown_or_inactive_assets_are_not_found(client, member, btc, symbol):
    Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT", is_active=False)
    client.force_login(member)
    assert client.get(f"/assets/{symbol}/").status_code == 404


def test_without_candles_it_says_there_is_nothing_to_chart(client, member, btc):
    html = _page(client, member)
    assert "No candles stored yet" in html and "price-chart-data" not in html
    assert '<h2 id="price-title">Prices</h2>' in html  # not "Last 5 days" of nothing
    assert "No forecast has been checked against reality yet" in html
    assert "No model has been trained for BTC/USDT yet." in html


def test_without_a_model_it_charts_prices_only_and_says_training_failed(client, staff, member, btc):
    factories.candles_create(asset=btc, count=150, last=factories.last_full_hour())
    factories.version_create(asset=btc, version=1, status=Status.FAILED, reason="parity check failed")
    html = _page(client, staff)
    assert _names(_figure(html, "price-chart-data")) == ["BTC/USDT", "Close"]
    assert 'data-state="failed"' in html and "parity check failed" in html
    html = _page(client, member)
    assert "Training failed; the operators see why in the admin." in html and "parity check" not in html
    assert "loss-chart-data" not in html


def test_without_a_model_in_service_staff_read_the_gates_reason_and_members_a_plain_line(
    client, staff, member, btc
):
    factories.candles_create(asset=btc, count=150, last=factories.last_full_hour())
    reason = "kept out of service: the gate could not score active v1: [ONNXRuntimeError] INVALID_GRAPH"
    factories.version_create(asset=btc, version=2, status=Status.VALIDATED, reason=reason)

    def notice(user) -> str:
        html = _page(client, user)
        return _text(html.split('data-state="not_promoted">')[1].split("</div>")[0]).strip()

    assert notice(staff) == f"No model in service. Version 2: {reason}."
    plain = notice(member)
    assert plain.startswith("No model is in service for BTC/USDT; the operators see why in the admin.")
    assert "ONNXRuntime" not in plain and "gate" not in plain


def test_a_chart_without_a_forecast_does_not_describe_one(client, member, market):
    html = _page(client, member)
    assert "with its forecast" in html and "The dotted line is the model’s forecast" in html
    Forecast.objects.all().delete()  # v2 is active, its first forecast not stored yet
    html = _page(client, member)
    assert "price-chart-data" in html and 'data-state="no_forecast"' in html
    assert "with its forecast" not in html and "dotted line" not in html and "shaded band" not in html


def test_its_queries_are_bounded_whatever_the_history(client, member, market):
    client.force_login(member)
    with CaptureQueriesContext(connection) as before:
        client.get("/assets/BTCUSDT/")
    versions = [
        factories.version_create(asset=market.asset, version=number, status=Status.VALIDATED)
        for number in range(3, 9)
    ]
    closes = {candle.open_time: float(candle.close) for candle in market.candles}
    for candle in market.candles[-40:-31]:
        factories.forecast_create(version=versions[0], base=candle, closes=closes)
    assert Forecast.objects.filter(asset=market.asset).count() == 40
    with CaptureQueriesContext(connection) as after:
        html = client.get("/assets/BTCUSDT/").content.decode()
    assert "39 forecasts met reality" in html
    assert len(after) == len(before) <= 10, [query["sql"][:60] for query in after]


def _dated(moment: datetime) -> str:
    """The one way the pages write a moment, year included: "6 Mar 2022 17:00" (then " UTC")."""
    return f"{moment.day} {moment:%b %Y %H:%M}"


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_every_label_calls_a_price_at_hh_mm_the_close_of_the_candle_ending_then(client, member, market):
    html = _page(client, member)
    base = market.forecast.base_time  # open time of the last candle
    # The head price, and the sentence under the forecast: both the close of the base candle.
    close_at = factories.HOUR + base
    assert f"at {_dated(close_at)} UTC" in _text(html.split('data-field="price-time"')[1].split("</span>")[0])
    sentence = _text(html.split('data-field="forecast-base"')[1].split("</p>")[0])
    assert f"Forecast made from the close at {_dated(close_at)} UTC" in sentence
    # The table's first row, the next-hour card and the chart's hover name the same hour.
    first_due = base + 2 * factories.HOUR
    table = html.split('id="forecast-table"')[1].split("</table>")[0]
    first_row = _text(re.search(r"<td[^>]*>(.*?)</td>", table.split("<tbody>")[1]).group(1)).strip()
    assert first_row == _dated(first_due)  # the column header says "(UTC)"
    assert f"at {_dated(first_due)} UTC" in _text(html.split('class="facts"')[1].split("</dt>")[0])
    forecast = {trace["name"]: trace for trace in _figure(html, "price-chart-data")["data"]}["Forecast"]
    assert forecast["customdata"][1] == f"{first_row} UTC"
    assert forecast["x"][1] == market.forecast.points[0]["time"]  # drawn at the candle's open


def test_the_price_chart_names_the_quote_currency(client, member, market):
    figure = _figure(_page(client, member), "price-chart-data")
    assert figure["layout"]["yaxis"]["title"]["text"] == "Price (USDT)"


def test_the_price_chart_names_the_asset_as_the_heading_does(client, member, market):
    html = _page(client, member)
    assert re.search(r"<h1>BTC<span class=\"unit\">/USDT</span></h1>", html)
    candles = _figure(html, "price-chart-data")["data"][0]
    assert (candles["type"], candles["name"]) == ("candlestick", "BTC/USDT")
    assert "<title>BTC/USDT · Make Us Rich</title>" in html


def _no_change(html: str) -> str:
    match = re.search(r'data-field="no-change">(.*?)</p>', html, re.S)
    return _text(match.group(1)) if match else ""


def test_it_says_why_the_forecast_is_flat_when_every_hour_is_no_change(client, member, market):
    ModelVersion.objects.filter(pk=market.version.pk).update(
        preprocessing={"target": {"shrink": [0.0] * factories.HORIZON, "scale": [0.01] * factories.HORIZON}}
    )
    note = _no_change(_page(client, member))
    assert note.startswith("On held-out data the model did not beat “no change”, so it forecasts no change")
    assert "calibrated 80 % range" in note


def test_the_no_change_note_does_not_call_a_band_calibrated_that_held_far_from_80_percent(
    client, member, market
):
    metrics = {**market.version.metrics, "coverage_80": [0.81] * 23 + [0.62]}
    ModelVersion.objects.filter(pk=market.version.pk).update(
        metrics=metrics, preprocessing={"target": {"shrink": [0.0] * factories.HORIZON}}
    )
    html = _page(client, member)
    assert "calibrated 80 % range" not in _no_change(html)
    assert "it held 62 % of the time at 24 h" in _no_change(html)
    table = _text(html.split('id="versions-table"')[1].split("</table>")[0])
    assert "62 % at 24 h" in table


def test_it_says_which_share_of_the_hours_is_no_change_when_only_some_are(client, member, market):
    shrink = [0.4] * 6 + [0.0] * 18
    ModelVersion.objects.filter(pk=market.version.pk).update(preprocessing={"target": {"shrink": shrink}})
    note = _no_change(_page(client, member))
    assert note.startswith("For 18 of the 24 hours ahead the model did not beat “no change”")


def test_it_says_nothing_about_no_change_when_the_model_moves_every_hour(client, member, market):
    ModelVersion.objects.filter(pk=market.version.pk).update(preprocessing={"target": {"shrink": [0.3] * 24}})
    assert _no_change(_page(client, member)) == ""


def _loss_caption(html: str) -> str:
    return _text(html.split('data-field="loss-explained">')[1].split("</p>")[0]).strip()


def test_it_draws_what_no_change_scores_on_validation_beside_the_training_loss(client, member, market):
    # The bundled year's v1: validation loss about 0.69 while "no change" scores 0.76 there.
    no_change = {"train": 1.0, "validation": 0.757}
    ModelVersion.objects.filter(pk=market.version.pk).update(
        preprocessing={"training": {"best_epoch": 3, "no_change_loss": no_change}}
    )
    html = _page(client, member)
    traces = {trace["name"]: trace for trace in _figure(html, "loss-chart-data")["data"]}
    assert set(traces["No change (validation)"]["y"]) == {0.757}
    assert set(traces["No change (training)"]["y"]) == {1.0}
    caption = _loss_caption(html)
    assert (
        "what forecasting “no change” scores on the same windows (0.76 on the validation windows training was stopped on, not the held-out gate windows)"
        in caption
    )
    assert "about 1" not in caption


def test_a_version_without_the_no_change_loss_gets_no_line_and_no_claim_about_it(client, member, market):
    html = _page(client, member)
    assert _names(_figure(html, "loss-chart-data")) == ["Training loss", "Validation loss"]
    caption = _loss_caption(html)
    assert caption.startswith("The loss is the mean squared error")
    assert "about 1" not in caption and "dashed" not in caption
    assert "trained before the score of “no change” was recorded" in caption


def test_it_says_the_prices_are_replayed_history_with_the_stored_range(client, member, market, settings):
    settings.MARKET_DATA_SOURCE = "replay"
    note = _text(_page(client, member).split('data-state="replay"')[1].split("</div>")[0])
    first, last = market.candles[0].open_time, market.candles[-1].open_time + factories.HOUR
    assert "Replayed prices, not live." in note
    assert f"{first.day} {first:%b %Y} to {last.day} {last:%b %Y}" in note


def test_an_asset_the_replay_source_does_not_serve_is_not_called_replayed(client, member, market, settings):
    settings.MARKET_DATA_SOURCE = "replay"
    eth = Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT")
    factories.candles_create(asset=eth, count=48, last=factories.last_full_hour())
    html = _page(client, member, "/assets/ETHUSDT/")
    assert 'data-state="replay"' not in html and "revealed hour by hour" not in html


def test_live_binance_prices_carry_no_replay_note(client, member, market, settings):
    settings.MARKET_DATA_SOURCE = "binance"
    assert 'data-state="replay"' not in _page(client, member)


def test_the_versions_table_labels_each_cell_as_its_column_header(client, member, market):
    table = _page(client, member).split('id="versions-table"')[1].split("</table>")[0]
    headers = [_text(header).strip() for header in re.findall(r"<th[^>]*>(.*?)</th>", table)]
    labels = set(re.findall(r'data-label="([^"]+)"', table)) - {"Metrics"}
    assert "Error 24 h ahead" in headers
    assert labels <= set(headers), labels - set(headers)


def _sparse_candles(asset, *, count: int, every: int) -> list:
    """`count` candles `every` hours apart up to the last full hour: an exchange with outages."""
    last = factories.last_full_hour()
    price = {name: Decimal("40000") for name in ("open", "high", "low", "close")}
    rows = [
        candle_row(asset, last - (count - 1 - index) * every * factories.HOUR, **price)
        for index in range(count)
    ]
    return Candle.objects.bulk_create(rows)


def test_the_price_chart_shows_five_days_of_time_not_the_last_120_candles(client, member, btc):
    rows = _sparse_candles(btc, count=120, every=6)  # 120 candles over a month
    html = _page(client, member)
    figure = _figure(html, "price-chart-data")
    shown = figure["data"][0]["x"]
    assert len(shown) == 20  # the candles of the last 5 days only
    assert datetime.fromisoformat(shown[0]) >= rows[-1].open_time - 119 * factories.HOUR
    assert ">Last 5 days<" in html
    assert "100 hours in this span have no candle" in _text(html)


def test_the_price_chart_heading_says_how_much_history_it_shows_when_there_is_less(client, member, btc):
    factories.candles_create(asset=btc, count=36, last=factories.last_full_hour())
    html = _page(client, member)
    assert ">Last 36 hours<" in html and "Last 5 days" not in html
    assert 'data-field="missing-hours"' not in html


def _version_row(html: str, version: int) -> str:
    table = html.split('id="versions-table"')[1].split("</table>")[0]
    return _text(re.search(rf'data-version="{version}">(.*?)</tr>', table, re.S).group(1))


def test_versions_no_longer_serving_say_until_when_and_what_replaced_them(client, member, btc):
    factories.candles_create(asset=btc, count=30, last=factories.last_full_hour())
    day = 24 * factories.HOUR
    start = factories.last_full_hour() - 3 * day
    promoted = "promoted: mean validation skill 0.05"
    factories.version_create(
        asset=btc, version=1, status=Status.VALIDATED, reason=promoted, activated_at=start
    )
    factories.version_create(
        asset=btc, version=2, status=Status.RETIRED, reason=promoted, activated_at=start + day
    )
    factories.version_create(asset=btc, version=3, status=Status.VALIDATED, reason="worse than no change")
    factories.version_create(
        asset=btc,
        version=4,
        status=Status.ACTIVE,
        reason="promoted: mean validation skill 0.08",
        activated_at=start + 2 * day,
    )
    html = _page(client, member)
    ended = start + day
    assert f"was active until {ended.day} {ended:%b %Y %H:%M} UTC, replaced by v2" in _version_row(html, 1)
    assert "replaced by v4" in _version_row(html, 2)
    # Why a former version was put in service, without repeating the word.
    assert "When promoted: mean validation skill 0.05" in _version_row(html, 1)
    assert "promoted: promoted" not in html
    never = _version_row(html, 3)
    assert "was active" not in never and "worse than no change" in never
    # The serving version says why it was put in service.
    assert "promoted: mean validation skill 0.08" in _version_row(html, 4)


BAD_ARTIFACT = (
    "the active model cannot be loaded: artifact 'BTCUSDT/v2-0a1b2c3d.onnx' has sha256 9f86d081884c…, "
    "expected 2c26b46b68ff…; activate another version (the next retrain replaces it)"
)


def test_it_tells_staff_the_forecast_is_stale_because_the_model_cannot_be_loaded(
    client, staff, member, market
):
    Asset.objects.filter(pk=market.asset.pk).update(forecast_problem=BAD_ARTIFACT)

    staff_page = _text(_page(client, staff))
    assert "This forecast may be out of date." in staff_page
    assert (
        "The active model cannot be loaded: artifact &#x27;BTCUSDT/v2-0a1b2c3d.onnx&#x27; has sha256"
        in staff_page
    )

    member_page = _text(_page(client, member))
    assert (
        "The active model cannot be loaded, so no newer forecast is made; the operators see why in the admin"
        in member_page
    )
    assert "sha256" not in member_page and "v2-0a1b2c3d" not in member_page


def test_the_versions_table_marks_a_training_no_worker_runs_any_more(client, member, market):
    factories.version_create(asset=market.asset, version=3, status=ModelVersion.Status.TRAINING)
    factories.lease_hold(asset=market.asset, renewed_ago=timedelta(hours=1))  # expired 20 min ago

    html = _page(client, member)

    row = html.split('data-version="3"')[1].split("</tr>")[0]
    assert "stopped before finishing: no worker is training it" in row
    assert "is training now" not in html


def test_the_versions_table_leaves_a_running_training_alone(client, member, market):
    factories.version_create(asset=market.asset, version=3, status=ModelVersion.Status.TRAINING)
    factories.lease_hold(asset=market.asset)

    html = _page(client, member)

    assert "stopped before finishing" not in html and "Version 3 is training now" in html
