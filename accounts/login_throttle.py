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


def _count(key: str) -> int:
    """Adds one to a counter and returns its new value (atomic on Redis: INCR)."""
    if cache.add(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)
        return 1


def _uncount(key: str) -> None:
    try:
        cache.decr(key)
    except ValueError:  # the window ended meanwhile: nothing to give back
        pass


def login_attempt_start(*, username: str, client: str) -> bool:
    """Counts this attempt as failed before the password is checked; False when it must be refused.

    Counting first is what makes the limit hold under parallel attempts: each
    one gets its own number from the counter, so at most LOGIN_FAILURE_LIMIT
    of them reach the password check in a window, however many arrive at
    once (checking first and recording after let every attempt in flight
    through). A success gives its unit back (`login_attempt_succeeded`).
    Refused attempts count for the client only, so a client that has used up
    its attempts cannot lock other people's usernames any further.
    """
    client_key, user_key = _keys(username=username, client=client)

    def count() -> bool:
        limit = settings.LOGIN_FAILURE_LIMIT
        if _count(client_key) > limit:
            return False
        if _count(user_key) > limit:
            _uncount(client_key)  # refused for the username: not the client's attempt
            return False
        return True

    return _or_when_unreachable(True, count)


def login_attempt_succeeded(*, username: str, client: str) -> None:
    """Clears the username's failures and gives back the client's unit for this attempt."""
    client_key, user_key = _keys(username=username, client=client)

    def clear() -> None:
        cache.delete(user_key)
        _uncount(client_key)

    _or_when_unreachable(None, clear)


class LoginRateThrottle(ScopedRateThrottle):
    """DRF's per-client rate limit of auth/token/, letting requests through when the cache is down."""

    def allow_request(self, request: HttpRequest, view: object) -> bool:
        return _or_when_unreachable(True, lambda: super(LoginRateThrottle, self).allow_request(request, view))
