"""OPTIONS: DRF's generic metadata, behind the token, free, and saying nothing about the data."""

import pytest

from accounts.selectors import api_usage_get
from tests.api.test_quota_api import COUNTED

# SimpleMetadata's keys; "actions" (a serializer's fields) would appear if a view grew get_serializer.
METADATA = {"name", "description", "renders", "parses"}


@pytest.mark.django_db
def test_options_answers_only_the_generic_metadata_and_takes_no_unit(member, member_api, market):
    for url in [*COUNTED, "/api/v1/usage/", "/api/v1/assets/NOSUCH/forecast/"]:
        response = member_api.options(url)

        assert response.status_code == 200, url
        body = response.json()
        assert set(body) == METADATA, url
        assert body["renders"] == ["application/json"]
        assert "X-Quota-Remaining" not in response
        assert response["Allow"] == "GET, HEAD, OPTIONS"
        assert not body["name"].endswith("Api"), body["name"]
    assert api_usage_get(user=member).used == 0


@pytest.mark.django_db
def test_options_needs_a_token_like_every_other_method(api, market):
    for url in [*COUNTED, "/api/v1/usage/"]:
        assert api.options(url).status_code == 401, url
    assert api.options(COUNTED[0], HTTP_AUTHORIZATION="Token mur_nope").status_code == 401


@pytest.mark.django_db
def test_retrain_metadata_is_for_staff_only(member_api, staff_api, market):
    assert member_api.options("/api/v1/assets/BTCUSDT/retrain/").status_code == 403
    assert set(staff_api.options("/api/v1/assets/BTCUSDT/retrain/").json()) == METADATA


@pytest.mark.django_db
def test_options_names_each_endpoint_in_words(member_api, market):
    names = {url: member_api.options(url).json()["name"] for url in COUNTED}
    assert names["/api/v1/assets/"] == "Asset List"
    assert names["/api/v1/assets/BTCUSDT/forecast/"] == "Forecast"
    assert member_api.options("/api/v1/usage/").json()["name"] == "Usage"


@pytest.mark.django_db
def test_the_schema_and_docs_refuse_options(api):
    for url in ("/api/v1/schema/", "/api/v1/docs/"):
        response = api.options(url)
        assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
