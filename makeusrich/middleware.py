from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

# Everything is served by the app itself. Plotly needs inline styles and
# 'unsafe-eval'-free scripts; Swagger UI needs inline styles too.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


class HeadWithoutBodyMiddleware:
    """A HEAD answer keeps GET's headers, Content-Length included, and drops the body (RFC 9110, 9.3.2).

    Django leaves the body in (only its test client and runserver take it out);
    gunicorn then drops it itself and logs a warning for every HEAD request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.method == "HEAD" and not response.streaming and response.content:
            response.headers.setdefault("Content-Length", str(len(response.content)))
            response.content = b""
        return response
