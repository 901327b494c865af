"""Every API error body is `{"detail": "..."}`; 400s keep their field errors beside it."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler


def _first_message(errors: Any) -> str:
    if isinstance(errors, dict):
        field, value = next(iter(errors.items()))
        return f"{field}: {_first_message(value)}"
    if isinstance(errors, list) and errors:
        return _first_message(errors[0])
    return str(errors)


def _summary(errors: dict[str, Any]) -> str:
    parts = []
    for field, value in errors.items():
        message = _first_message(value)
        parts.append(message if field == "non_field_errors" else f"{field}: {message}")
    return " ".join(parts)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and "detail" not in data:
        response.data = {"detail": _summary(data), **data}
    elif isinstance(data, list):
        response.data = {"detail": _first_message(data)}
    return response
