"""plotly.js is served from the installed plotly package, by the app itself."""

from __future__ import annotations

from pathlib import Path

import plotly
from django.contrib.staticfiles import finders
from django.core.management import call_command

from forecasting.staticfiles import STATIC_PATH

PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def test_the_finder_serves_the_packages_plotly_min_js():
    assert STATIC_PATH == "vendor/plotly/plotly.min.js"
    assert Path(finders.find(STATIC_PATH)) == PLOTLY_JS
    assert finders.find("vendor/plotly/widgetbundle.js") is None


def test_collectstatic_copies_plotly_and_nothing_else_from_the_package(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", interactive=False, verbosity=0)
    assert sorted(path.name for path in (tmp_path / "vendor" / "plotly").iterdir()) == ["plotly.min.js"]
    assert (tmp_path / STATIC_PATH).read_bytes() == PLOTLY_JS.read_bytes()
    assert (tmp_path / "js" / "app.js").exists() and (tmp_path / "css" / "site.css").exists()
