import pytest
from django.conf import settings
from django.test.utils import override_settings


@pytest.fixture(scope="package", autouse=True)
def plain_http_test_server():
    """The test client speaks plain http: no https redirect; static files through the finders."""
    with override_settings(
        SECURE_SSL_REDIRECT=False,
        STORAGES={
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    ):
        yield
