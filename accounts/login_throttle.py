"""Brute-force protection for the login form: failed attempts counted per client and per username.

Counts live in the cache (Redis in production, shared by every web
process) and expire on their own after the window.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache


def _keys(*, username: str, client: str) -> list[str]:
    # Hashed so that user input never becomes part of a cache key verbatim.
    user = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [f"login-fail:client:{client}", f"login-fail:user:{user}"]


def login_blocked(*, username: str, client: str) -> bool:
    """True when the client or the username has used up its failed attempts."""
    counts = cache.get_many(_keys(username=username, client=client))
    return any(count >= settings.LOGIN_FAILURE_LIMIT for count in counts.values())


def login_failure_record(*, username: str, client: str) -> None:
    for key in _keys(username=username, client=client):
        if not cache.add(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)


def login_failures_clear(*, username: str, client: str) -> None:
    cache.delete(_keys(username=username, client=client)[1])
