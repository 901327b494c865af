"""The API's JSON renderer: every float in every response is written by `api_float`.

One place for the whole API, serializers' own fields and passed-through JSON
(metrics, forecast points, scores) alike; the forecast endpoint renders its
cached body with it too. settings.REST_FRAMEWORK names it as the renderer.
"""

from __future__ import annotations

from typing import Any

from rest_framework.renderers import JSONRenderer

from makeusrich.formats import api_floats


class ApiJSONRenderer(JSONRenderer):
    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: dict | None = None
    ) -> bytes:
        return super().render(api_floats(data), accepted_media_type, renderer_context)
