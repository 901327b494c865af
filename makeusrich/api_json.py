"""The API's JSON renderer: every float in every response is written by `api_float`.

One place for the whole API, serializers' own fields and passed-through JSON
(metrics, forecast points, scores) alike; the forecast endpoint renders its
cached body with it too. settings.REST_FRAMEWORK names it as the renderer.
"""

from __future__ import annotations

from typing import Any

from rest_framework.renderers import JSONRenderer

from makeusrich.formats import api_float

# What cannot hold a float: kept without a call (a page of candles is mostly strings).
_LEAVES = frozenset({str, int, bool, type(None)})


def api_floats(data: Any) -> Any:
    """`data` with every float rounded by `api_float`; dicts, lists and tuples are rebuilt, in order."""
    if isinstance(data, float):
        return api_float(data)
    if isinstance(data, dict):
        return {key: value if type(value) in _LEAVES else api_floats(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [value if type(value) in _LEAVES else api_floats(value) for value in data]
    return data


class ApiJSONRenderer(JSONRenderer):
    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: dict | None = None
    ) -> bytes:
        return super().render(api_floats(data), accepted_media_type, renderer_context)
