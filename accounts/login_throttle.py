"""Brute-force protection for the login form and auth/token/: failed attempts counted per
client and per username.

Counts live in the cache (Redis in production, shared by every web
process) and expire on their own after the window. When the cache cannot be
reached, logging in still works, unthrottled, and each failure to count is
logged: a Redis outage must not lock every user out.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _or_when_unreachable(fallback: T, action: Callable[[], T]) -> T:
    try:
        return action()
    except Exception:  # the cache's client errors (redis.ConnectionError, OSError...) vary by backend
        logger.warning("login throttle: the cache is unreachable; not counting this attempt", exc_info=True)
        return fallback


def client_address(request: HttpRequest) -> str:
    """The client's IP address, trusting X-Forwarded-For only as far as NUM_PROXIES says.

    With no proxy in front (NUM_PROXIES=0, the default) the header is the
    client's own words, so anyone could pick a fresh address per attempt: the
    socket's address is used. Behind N proxies, the Nth address from the right
    is the one the outermost trusted proxy saw. DRF's throttles use the same rule.
    """
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    proxies = api_settings.NUM_PROXIES or 0
    if proxies and forwarded:
        addresses = [address.strip() for address in forwarded.split(",")]
        return addresses[-min(proxies, len(addresses))]
    return request.META.get("REMOTE_ADDR", "")


def _keys(*, username: str, client: str) -> list[str]:
    # Hashed so that user input never becomes part of a cache key verbatim.
    user = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [f"login-fail:client:{client}", f"login-fail:user:{user}"]


def login_blocked(*, username: str, client: str) -> bool:
    """True when the client or the username has used up its failed attempts."""
    counts = _or_when_unreachable({}, lambda: cache.get_many(_keys(username=username, client=client)))
    return any(count >= settings.LOGIN_FAILURE_LIMIT for count in counts.values())


def login_failure_record(*, username: str, client: str) -> None:
    def record() -> None:
        for key in _keys(username=username, client=client):
            if not cache.add(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS):
                try:
                    cache.incr(key)
                except ValueError:  # expired between add and incr
                    cache.add(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)

    _or_when_unreachable(None, record)


def login_failures_clear(*, username: str, client: str) -> None:
    _or_when_unreachable(None, lambda: cache.delete(_keys(username=username, client=client)[1]))


class LoginRateThrottle(ScopedRateThrottle):
    """DRF's per-client rate limit of auth/token/, letting requests through when the cache is down."""

    def allow_request(self, request: HttpRequest, view: object) -> bool:
        return _or_when_unreachable(True, lambda: super(LoginRateThrottle, self).allow_request(request, view))
