"""Liveness and readiness probes (JSON, no login, not counted)."""

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from makeusrich.api_errors import READ_METHODS, method_not_allowed
from makeusrich.celery import app as celery_app


def _database_ok() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not ready"; say which
        return f"{type(exc).__name__}: {exc}"
    return None


def _broker_ok() -> str | None:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@csrf_exempt  # probes answer 405, not a CSRF page, to other methods
def healthz(request: HttpRequest) -> JsonResponse:
    if request.method not in READ_METHODS:
        return method_not_allowed(request, READ_METHODS)
    return JsonResponse({"status": "ok"})


@csrf_exempt
def readyz(request: HttpRequest) -> JsonResponse:
    if request.method not in READ_METHODS:
        return method_not_allowed(request, READ_METHODS)
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    failed = {name: error for name, error in checks.items() if error}
    body = {
        "status": "ok" if not failed else "unavailable",
        "checks": {name: ("ok" if not error else error) for name, error in checks.items()},
    }
    return JsonResponse(body, status=200 if not failed else 503)
