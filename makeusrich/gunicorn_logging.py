"""gunicorn's access log without credentials in it.

The API refuses a token sent in a URL (`?token=...`), but gunicorn would
still write that URL to its access log. `SecretMaskingLogger`, given to
gunicorn as `--logger-class makeusrich.gunicorn_logging.SecretMaskingLogger`,
masks the values of query parameters whose name looks like a credential, in
the request line, the query string and the Referer, and the values of such
headers (and Authorization, Cookie) should a custom log format include them.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus

from gunicorn.glogging import Logger

MASK = "***"
# A name containing one of these, in any case (api_key, X-Auth-Token, password...), holds a credential.
SECRET_NAME_PARTS = ("token", "key", "password", "secret")
_SECRET_NAME = re.compile("|".join(SECRET_NAME_PARTS), re.IGNORECASE)
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
# "&" is the separator; ";" too, for servers that take it, so that "a=1;token=x" is masked as well.
_SEPARATOR = re.compile(r"([&;])")


def name_is_secret(name: str) -> bool:
    if "%" in name or "+" in name:  # "%74oken" is "token" to the application
        name = unquote_plus(name)
    return _SECRET_NAME.search(name) is not None


def query_mask(query: str) -> str:
    """`query` with the value of each parameter whose name looks like a credential replaced by ***."""
    if "=" not in query:
        return query
    pieces = _SEPARATOR.split(query)
    for index in range(0, len(pieces), 2):  # separators sit at the odd indexes
        name, equals, value = pieces[index].partition("=")
        if value and name_is_secret(name):
            pieces[index] = f"{name}{equals}{MASK}"
    return "".join(pieces)


def uri_mask(uri: str) -> str:
    """`uri` (a path or a whole URL) with its query string masked by `query_mask`."""
    path, question, query = uri.partition("?")
    return f"{path}?{query_mask(query)}" if question else uri


class SecretMaskingLogger(Logger):
    """gunicorn's Logger, with credentials masked in every access log atom that can carry them."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        raw_uri = environ.get("RAW_URI") or ""
        if "?" in raw_uri:
            masked = uri_mask(raw_uri)
            atoms["r"] = f"{environ['REQUEST_METHOD']} {masked} {environ['SERVER_PROTOCOL']}"
            atoms["{raw_uri}e"] = masked
        if environ.get("QUERY_STRING"):
            atoms["q"] = atoms["{query_string}e"] = query_mask(environ["QUERY_STRING"])
        referer = environ.get("HTTP_REFERER")
        if referer and "?" in referer:
            atoms["f"] = atoms["{referer}i"] = atoms["{http_referer}e"] = uri_mask(referer)
        # Request and response headers ({name}i, {name}o) and environ entries ({http_name}e):
        # only a custom access_log_format shows them, but then not a key or a session cookie.
        if any(kind in self.cfg.access_log_format for kind in ("}i)", "}o)", "}e)")):
            self._headers_mask(atoms)
        return atoms

    @staticmethod
    def _headers_mask(atoms: dict[str, Any]) -> None:
        for atom in atoms:
            if atom.startswith("{") and atom[-2:] in ("}i", "}o", "}e"):
                name = atom[1:-2].removeprefix("http_").replace("_", "-")
                if name in SECRET_HEADERS or name_is_secret(name):
                    atoms[atom] = MASK
