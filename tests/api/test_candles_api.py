from decimal import Decimal

import pytest

from tests.api.conftest import HOUR, iso

URL = "/api/v1/assets/btcusdt/candles/"


@pytest.mark.django_db
def test_it_returns_the_most_recent_candles_oldest_first(member_api, market):
    response = member_api.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["symbol"] == "BTCUSDT" and body["interval"] == "1h" and body["count"] == 48
    times = [candle["open_time"] for candle in body["candles"]]
    assert times == sorted(times) and times[-1] == iso(market["last"])
    last = body["candles"][-1]
    stored = market["candles"][-1]
    # Exchange decimals as strings, exactly, without padding.
    assert Decimal(last["close"]) == stored.close and last["volume"] == "12.5"
    assert last["trades"] == 42
    assert set(last) == {
        "open_time",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "close_time",
        "quote_volume",
        "trades",
        "taker_buy_base_volume",
        "taker_buy_quote_volume",
    }


@pytest.mark.django_db
def test_limit_keeps_the_newest(member_api, market):
    body = member_api.get(URL, {"limit": 5}).json()
    assert [c["open_time"] for c in body["candles"]] == [
        iso(market["last"] - i * HOUR) for i in range(4, -1, -1)
    ]


@pytest.mark.django_db
def test_limit_with_start_keeps_the_first_from_start_so_clients_can_page_forward(member_api, market):
    last = market["last"]
    first_page = member_api.get(URL, {"start": iso(last - 10 * HOUR), "limit": 3}).json()
    times = [c["open_time"] for c in first_page["candles"]]
    assert times == [iso(last - i * HOUR) for i in (10, 9, 8)]
    # The next page starts the hour after the last one received.
    following = member_api.get(URL, {"start": iso(last - 7 * HOUR), "limit": 3}).json()
    assert [c["open_time"] for c in following["candles"]] == [iso(last - i * HOUR) for i in (7, 6, 5)]


@pytest.mark.django_db
def test_start_and_end_bound_the_open_times(member_api, market):
    last = market["last"]
    params = {"start": iso(last - 10 * HOUR), "end": (last - 7 * HOUR).isoformat(), "limit": 1000}
    body = member_api.get(URL, params).json()
    assert [c["open_time"] for c in body["candles"]] == [iso(last - i * HOUR) for i in (10, 9, 8, 7)]


@pytest.mark.django_db
def test_a_time_without_offset_is_utc(member_api, market):
    naive = (market["last"] - 2 * HOUR).strftime("%Y-%m-%dT%H:%M:%S")
    body = member_api.get(URL, {"start": naive}).json()
    assert body["count"] == 3


@pytest.mark.django_db
def test_an_empty_limit_means_the_default(member_api, market):
    assert member_api.get(URL, {"limit": ""}).json()["count"] == 48


@pytest.mark.django_db
def test_an_empty_window_is_an_empty_list(member_api, market):
    body = member_api.get(URL, {"end": "2001-01-01T00:00:00Z"}).json()
    assert body["count"] == 0 and body["candles"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"start": "yesterday"}, "start"),
        ({"end": "2024-13-01T00:00:00Z"}, "end"),
        ({"start": "2024-02-02T00:00:00Z", "end": "2024-02-01T00:00:00Z"}, "start"),
        ({"end": "9999-12-31T23:00:00-05:00"}, "end"),
        ({"start": "0001-01-01T00:00:00+05:00"}, "start"),
        # Integers are ASCII digits: not what Python's int() also reads.
        ({"limit": "1_0"}, "limit"),
        ({"limit": "5.0"}, "limit"),
        ({"limit": "\uff11"}, "limit"),  # full-width 1
        ({"limit": "\u0663"}, "limit"),  # Arabic-Indic 3
        ({"limit": "\n5"}, "limit"),
        ({"start": "1" * 3000}, "start"),
    ],
)
def test_it_rejects_bad_parameters_with_400_naming_the_field(member_api, market, params, field):
    response = member_api.get(URL, params)

    assert response.status_code == 400
    body = response.json()
    assert body["detail"].startswith(f"{field}: ")
    assert field in body


@pytest.mark.django_db
def test_a_repeated_parameter_is_a_400_not_its_last_value(member_api, market):
    response = member_api.get(f"{URL}?limit=1&limit=5")

    assert response.status_code == 400
    assert response.json()["detail"] == "limit: given 2 times; give it once."
    assert member_api.get(f"{URL}?limit=5").json()["count"] == 5


@pytest.mark.django_db
def test_format_is_no_switch_a_real_path_is_answered_in_json(member_api, market):
    for value in ["api", "xml", "json"]:
        response = member_api.get(URL, {"format": value, "limit": 2})
        assert response.status_code == 200 and response.json()["count"] == 2, value


@pytest.mark.django_db
def test_candles_of_an_unknown_asset_are_404(member_api, market):
    assert member_api.get("/api/v1/assets/NOPEUSDT/candles/").status_code == 404


@pytest.mark.django_db
def test_candles_need_a_token(api, market):
    assert api.get(URL).status_code == 401


@pytest.mark.django_db
def test_an_offset_whose_plus_was_not_url_encoded_gets_a_hint(member_api, market):
    # What curl sends for ?start=2022-01-29T00:00:00+02:00: the "+" arrives as a space.
    response = member_api.get(f"{URL}?start=2022-01-29T00:00:00+02:00")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("start: ") and "%2B" in detail
    # Encoded, the same time is accepted.
    assert member_api.get(f"{URL}?start=2022-01-29T00:00:00%2B02:00").status_code == 200
