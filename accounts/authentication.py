"""DRF authentication by hashed API token: `Authorization: Token <key>`, nothing else.

A key in a query string is never accepted (it would end up in access logs
and browser history); a request that tries one is told where the key goes.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from accounts.models import ApiToken
from accounts.selectors import TOKEN_KEYWORD
from accounts.services import KEY_PREFIX, api_token_authenticate, api_token_touch

# What reads data; anything else on a counted endpoint is a 405 (or OPTIONS' metadata) and free.
COUNTED_METHODS = frozenset({"GET", "HEAD"})


def counts_quota(request: Request, view: Any) -> bool:
    """Whether this request takes a unit: a read of an endpoint that DESIGN.md counts."""
    return bool(getattr(view, "counts_quota", False)) and request.method in COUNTED_METHODS


# Real keys are ~47 characters; anything much longer is not worth hashing.
MAX_KEY_LENGTH = 200

# Query parameters (any case) that clients, used to other APIs, put a key in; never accepted.
QUERY_TOKEN_NAMES = frozenset({"token", "key", "auth_token", "api_key", "apikey", "access_token"})
KEY_IN_URL_DETAIL = (
    "Tokens are accepted only in the 'Authorization: Token <key>' header, never in a URL "
    "(URLs end up in logs and browser history)."
)


class HashedTokenAuthentication(BaseAuthentication):
    keyword = TOKEN_KEYWORD

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        # A key in the URL is refused even beside a good header: it has leaked into logs already,
        # and the client should hear so. Most calls have no query string and skip the parse.
        if request.META.get("QUERY_STRING") and any(
            name.lower() in QUERY_TOKEN_NAMES for name in request.query_params
        ):
            raise exceptions.AuthenticationFailed(KEY_IN_URL_DETAIL)
        parts = get_authorization_header(request).split()
        if not parts:
            # No credentials: the permission check then answers 401 with WWW-Authenticate.
            return None
        if parts[0].lower() != self.keyword.lower().encode():
            raise exceptions.AuthenticationFailed(_scheme_refused(parts[0]))
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: use 'Authorization: Token <key>'.")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token header: the key must be ASCII.") from None
        if len(key) > MAX_KEY_LENGTH:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        # On a counted endpoint the lookup also takes the call's quota unit
        # (one statement); MonthlyQuotaThrottle settles what it could not take.
        view = (request.parser_context or {}).get("view")
        token = api_token_authenticate(key=key, count=counts_quota(request, view))
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("This account is disabled.")
        api_token_touch(token=token)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


def _scheme_refused(first: bytes) -> str:
    """Why a header of another kind is refused, without echoing anything that may be a secret."""
    if first.startswith(KEY_PREFIX.encode()):  # a bare key, e.g. pasted into Swagger's Authorize box
        return "The key needs the word Token before it: 'Authorization: Token <key>'."
    if first.isalpha() and len(first) <= 20:  # Bearer, Basic...: say which kind works
        return (
            f"Unsupported authorization scheme {first.decode('ascii')!r}: use 'Authorization: Token <key>'."
        )
    return "Unsupported authorization header: use 'Authorization: Token <key>'."
