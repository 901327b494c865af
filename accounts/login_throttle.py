"""Brute-force protection for the login form and auth/token/: failed attempts counted per
username (LOGIN_FAILURE_LIMIT) and per client address over every username (the larger
LOGIN_CLIENT_FAILURE_LIMIT: people behind one NAT or proxy share an address).

Counts live in the cache (Redis in production, shared by every web
process) and expire on their own after the window. When the cache cannot be
reached, logging in still works, unthrottled, and each failure to count is
logged: a Redis outage must not lock every user out.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
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


def _count(key: str) -> tuple[int, int]:
    """Adds one to a counter; returns its new value and the whole seconds left in its window.

    A window opens with the first failure and lasts LOGIN_FAILURE_WINDOW_SECONDS;
    its end is kept beside the count, so later attempts (refused ones too) never
    push it back, and a refused client is told exactly when it may try again.
    The increment is atomic on Redis (INCR).
    """
    length = settings.LOGIN_FAILURE_WINDOW_SECONDS
    if cache.add(key, 1, timeout=length):
        cache.set(f"{key}:until", time.time() + length, timeout=length)
        return 1, length
    try:
        value = cache.incr(key)
    except ValueError:  # expired between add and incr
        return _count(key)
    return value, _keep_window_end(key)


def _uncount(key: str) -> None:
    try:
        cache.decr(key)
    except ValueError:  # the window ended meanwhile: nothing to give back
        return
    _keep_window_end(key)


def _keep_window_end(key: str) -> int:
    """Gives a counter just changed the rest of its window; returns the seconds left.

    Django's file and database caches store an incremented (or decremented)
    value with their default timeout (300 s), which would move the window's end.
    """
    now = time.time()
    until = cache.get(f"{key}:until") or now + settings.LOGIN_FAILURE_WINDOW_SECONDS
    seconds_left = max(1, math.ceil(until - now))
    cache.touch(key, seconds_left)
    return seconds_left


def login_attempt_start(*, username: str, client: str) -> int | None:
    """Counts this attempt as failed before the password is checked.

    Returns None when the attempt may go ahead, or, when it must be refused,
    the seconds until the window that refuses it ends.
    Counting first is what makes the limit hold under parallel attempts: each
    one gets its own number from the counter, so at most LOGIN_FAILURE_LIMIT
    of them (per username; LOGIN_CLIENT_FAILURE_LIMIT per client, over every username)
    reach the password check in a window, however many arrive at
    once (checking first and recording after let every attempt in flight
    through). A success gives its unit back (`login_attempt_succeeded`).
    Refused attempts count for the client only, so a client that has used up
    its attempts cannot lock other people's usernames any further.
    """
    client_key, user_key = _keys(username=username, client=client)

    def count() -> int | None:
        attempts, seconds_left = _count(client_key)
        if attempts > settings.LOGIN_CLIENT_FAILURE_LIMIT:
            return seconds_left
        attempts, seconds_left = _count(user_key)
        if attempts > settings.LOGIN_FAILURE_LIMIT:
            _uncount(client_key)  # refused for the username: not the client's attempt
            return seconds_left
        return None

    return _or_when_unreachable(None, count)


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
