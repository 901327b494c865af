"""The request path reads rows: serving every endpoint imports no torch, onnxruntime, pandas or Binance client."""

from tests.api.fresh_process import run_script

# pandas too: ~40 MB per web worker, needed only where training frames are built.
HEAVY = ("torch", "onnxruntime", "onnx", "binance", "pandas")

SCRIPT = r"""
from django.contrib.auth import get_user_model
from django.test import Client
from accounts.services import api_token_create

staff = get_user_model().objects.create_user("root", password="pw-for-the-test", is_staff=True)
_, key = api_token_create(user=staff, name="t")
client = Client(HTTP_AUTHORIZATION=f"Token {key}", HTTP_X_FORWARDED_PROTO="https")
statuses = {}
for path in ["assets/", "assets/btcusdt/", "assets/btcusdt/candles/", "assets/btcusdt/forecast/",
             "assets/btcusdt/models/", "assets/btcusdt/track-record/", "usage/", "schema/", "docs/"]:
    statuses[path] = client.get("/api/v1/" + path).status_code
statuses["retrain"] = client.post("/api/v1/assets/btcusdt/retrain/").status_code
statuses["token"] = Client(HTTP_X_FORWARDED_PROTO="https").post(
    "/api/v1/auth/token/", {"username": "root", "password": "pw-for-the-test"}).status_code
heavy = sorted(name for name in sys.modules if name.split(".")[0] in HEAVY)
print(json.dumps({"statuses": statuses, "heavy": heavy}))
"""


def test_serving_every_endpoint_imports_no_ml_runtime_and_no_binance(tmp_path):
    report = run_script(tmp_path, f"HEAVY = {HEAVY!r}\n" + SCRIPT)
    assert report["statuses"] == {
        "assets/": 200,
        "assets/btcusdt/": 200,
        "assets/btcusdt/candles/": 200,
        "assets/btcusdt/forecast/": 200,
        "assets/btcusdt/models/": 200,
        "assets/btcusdt/track-record/": 200,
        "usage/": 200,
        "schema/": 200,
        "docs/": 200,
        "retrain": 202,
        "token": 201,
    }
    assert report["heavy"] == []
