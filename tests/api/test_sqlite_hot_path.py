"""The API's hot path on SQLite, `make run`'s default database (CI's own database is PostgreSQL)."""

from tests.api.fresh_process import run_script

SCRIPT = r"""
from django.contrib.auth import get_user_model
from django.test import Client
from accounts.hotpath import token_lookup
from accounts.selectors import api_token_hash, api_usage_get
from accounts.services import api_quota_set, api_token_create, api_token_revoke

user = get_user_model().objects.create_user("ann", password="pw-for-the-test")
api_quota_set(user=user, monthly_limit=3)
token, key = api_token_create(user=user, name="t")
client = Client(HTTP_AUTHORIZATION=f"Token {key}")
responses = [client.get("/api/v1/assets/btcusdt/forecast/") for _ in range(5)]
found = token_lookup(key_hash=api_token_hash(key))
report = {
    "statuses": [response.status_code for response in responses],
    "remaining": [response["X-Quota-Remaining"] for response in responses],
    "used": api_usage_get(user=user).used,
    "limit": found.user.api_quota.monthly_limit,
    "last_used_at": type(found.last_used_at).__name__,
    "date_joined": type(found.user.date_joined).__name__,
}
api_token_revoke(user=user, token_id=token.pk)
report["after_revoke"] = client.get("/api/v1/usage/").status_code
print(json.dumps(report))
"""


def test_on_sqlite_the_api_counts_exactly_and_refuses_at_the_limit(tmp_path):
    report = run_script(tmp_path, SCRIPT)
    assert report == {
        "statuses": [200, 200, 200, 429, 429],
        "remaining": ["2", "1", "0", "0", "0"],  # the count UPDATE ... RETURNING gave
        "used": 3,
        "limit": 3,
        "last_used_at": "datetime",  # the ORM's converters applied to the raw row
        "date_joined": "datetime",
        "after_revoke": 401,
    }
