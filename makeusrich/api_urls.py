"""Every route under /api/v1/ (the DESIGN.md HTTP API table)."""

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny

from accounts.apis import TokenCreateApi, UsageApi
from forecasting.apis import ForecastApi, ModelVersionListApi, RetrainApi, TrackRecordApi
from makeusrich.api_errors import READ_METHODS, api_error, method_not_allowed
from markets.apis import AssetDetailApi, AssetListApi, CandleListApi

# The schema and its docs page are public, whatever Authorization header comes along.
PUBLIC = {"authentication_classes": [], "permission_classes": [AllowAny]}


class _ReadOnly:
    """GET and HEAD only; any other method is a JSON 405 (their renderers are YAML and HTML)."""

    http_method_names = ["get", "head"]

    def http_method_not_allowed(self, request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        return method_not_allowed(request, READ_METHODS)


class SchemaView(_ReadOnly, SpectacularAPIView):
    pass


class DocsView(_ReadOnly, SpectacularSwaggerSplitView):
    # drf-spectacular's page with a bar back to the site on top (templates/api/docs.html).
    template_name = "api/docs.html"


@csrf_exempt  # it answers 404 whatever the method: no CSRF page for a mistyped POST
def not_found(request: HttpRequest, rest: str) -> JsonResponse:
    """JSON, not the site's HTML 404, for any other path under /api/v1/."""
    hint = " (API paths end with a slash)" if rest and not rest.endswith("/") else ""
    return api_error(f"No API endpoint at /api/v1/{rest[:100]}{hint}; see /api/v1/docs/.", status=404)


urlpatterns = [
    path("auth/token/", TokenCreateApi.as_view(), name="api-token"),
    path("usage/", UsageApi.as_view(), name="api-usage"),
    path("assets/", AssetListApi.as_view(), name="api-assets"),
    path("assets/<str:symbol>/", AssetDetailApi.as_view(), name="api-asset"),
    path("assets/<str:symbol>/candles/", CandleListApi.as_view(), name="api-candles"),
    path("assets/<str:symbol>/forecast/", ForecastApi.as_view(), name="api-forecast"),
    path("assets/<str:symbol>/models/", ModelVersionListApi.as_view(), name="api-models"),
    path("assets/<str:symbol>/track-record/", TrackRecordApi.as_view(), name="api-track-record"),
    path("assets/<str:symbol>/retrain/", RetrainApi.as_view(), name="api-retrain"),
    path("schema/", SchemaView.as_view(**PUBLIC), name="api-schema"),
    path("docs/", DocsView.as_view(url_name="api-schema", **PUBLIC), name="api-docs"),
    re_path(r"^(?P<rest>.*)$", not_found),
]
