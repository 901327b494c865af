"""Checks a web server makes once, before it takes a request."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles.storage import ManifestFilesMixin
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import storages


def require_collected_static() -> None:
    """With DEBUG=0 every page links its CSS and JS through collectstatic's manifest.

    Without the manifest each page would answer 500 ("Missing staticfiles
    manifest entry"); refusing to start says what to run instead. `make run`
    and the Docker image collect the files themselves.
    """
    storage = storages["staticfiles"]
    if isinstance(storage, ManifestFilesMixin) and not storage.manifest_storage.exists(storage.manifest_name):
        root = Path(settings.STATIC_ROOT)
        if root.is_dir() and any(root.iterdir()):
            # manage.py turns DEBUG on when neither DEBUG nor SECRET_KEY is set, and collectstatic
            # with DEBUG on copies the files without the manifest.
            found = f"has files but no {storage.manifest_name} (collectstatic ran with DEBUG on)"
        else:
            found = "has none yet"
        raise ImproperlyConfigured(
            f"DEBUG=0 serves the static files collected in STATIC_ROOT ({root}) through their manifest; "
            f"STATIC_ROOT {found}: run `DEBUG=0 python manage.py collectstatic --noinput` with the same "
            "VAR_DIR and SECRET_KEY, then start again"
        )
