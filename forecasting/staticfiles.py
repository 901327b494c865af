"""A static files finder that serves plotly.js from the installed plotly package.

Pages load `vendor/plotly/plotly.min.js` from our own host (whitenoise in
production, the finders in development and tests), so the JS always matches
the Python package that builds the figures and no CDN is involved. Only that
one file is exposed: the package directory also holds datasets and a widget
bundle that have no business in STATIC_ROOT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PACKAGE_DATA = Path(plotly.__file__).resolve().parent / "package_data"
PREFIX = "vendor/plotly"
FILENAME = "plotly.min.js"
STATIC_PATH = f"{PREFIX}/{FILENAME}"


class PlotlyFinder(BaseFinder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=str(PACKAGE_DATA))
        # collectstatic copies each listed file to storage.prefix + its relative path.
        self.storage.prefix = PREFIX

    def check(self, **kwargs: Any) -> list:
        from django.core.checks import Error

        if not (PACKAGE_DATA / FILENAME).is_file():
            return [Error(f"{PACKAGE_DATA / FILENAME} is missing: reinstall plotly", id="forecasting.E001")]
        return []

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> str | list[str]:
        if kwargs:  # Django 5.2 still accepts the deprecated `all=` spelling.
            find_all = self._check_deprecated_find_param(find_all=find_all, **kwargs)
        if path == STATIC_PATH:
            found = str(PACKAGE_DATA / FILENAME)
            return [found] if find_all else found
        return []

    def list(self, ignore_patterns: Any):
        yield FILENAME, self.storage
