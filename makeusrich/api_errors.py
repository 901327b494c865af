"""Every API error body is `{"detail": "..."}`; 400s keep their field errors beside it."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework.response import Response
from rest_framework.views import exception_handler

API_PREFIX = "/api/"
READ_METHODS = ("GET", "HEAD")  # all that the schema, the docs page and the probes answer


def api_error(detail: str, *, status: int, **headers: str) -> JsonResponse:
    """A `{"detail": ...}` body written as DRF writes its own (compact JSON)."""
    return JsonResponse(
        {"detail": detail}, status=status, headers=headers, json_dumps_params={"separators": (",", ":")}
    )


def method_not_allowed(request: HttpRequest, allowed: tuple[str, ...]) -> JsonResponse:
    return api_error(f'Method "{request.method}" not allowed.', status=405, Allow=", ".join(allowed))


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: JSON under /api/ (e.g. a body over DATA_UPLOAD_MAX_MEMORY_SIZE), the page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return api_error(f"Bad request: {exception or 'the request could not be read'}.", status=400)
    return defaults.bad_request(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: JSON under /api/ (e.g. /api/v2/), the page elsewhere; /api/v1/ answers its own."""
    if request.path.startswith(API_PREFIX):
        return api_error("No API here: the API is under /api/v1/ (see /api/v1/docs/).", status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: JSON under /api/, the static page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return api_error("Internal server error; the error has been logged.", status=500)
    return defaults.server_error(request)


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
