"""The project's URLs plus one view that fails, to see the 500 page through the whole stack."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from makeusrich.urls import handler400, handler500
from makeusrich.urls import urlpatterns as project_urlpatterns

__all__ = ["handler400", "handler500", "urlpatterns"]


def fail(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in a page")


urlpatterns = [path("fail/", fail), *project_urlpatterns]
