import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makeusrich.settings")
application = get_wsgi_application()

from makeusrich.startup import require_collected_static  # noqa: E402 (needs the settings loaded)

require_collected_static()
