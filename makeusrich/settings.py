"""Settings for Make Us Rich, read from the environment (see .env.example).

With nothing set the project runs embedded: SQLite under var/, no Redis
(Celery uses kombu's filesystem transport, the cache is per process), the
bundled replay data instead of Binance. Production sets DATABASE_URL,
REDIS_URL, SECRET_KEY, ALLOWED_HOSTS and DEBUG=0.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


# An empty value means the default, for every variable: a copy of .env.example (compose passes
# every line of .env) sets many to nothing, and VAR_DIR="" would be the working directory.
def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name) or default


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false)")


def env_int(name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={value} must be at most {maximum}")
    return value


def env_float(name: str, default: float, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ImproperlyConfigured(f"{name}={raw!r} is not a finite number")
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (given in upper case, read in any case)."""
    raw = env_str(name, default)
    if raw.strip().upper() not in choices:
        raise ImproperlyConfigured(f"{name}={raw!r}: use one of {', '.join(choices)}")
    return raw.strip().upper()


def _var_dir() -> Path:
    path = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(f"VAR_DIR={str(path)!r} cannot be used as a directory: {exc}") from None
    return path


def _database(url: str, conn_max_age: int) -> dict:
    try:
        return dj_database_url.parse(url, conn_max_age=conn_max_age)
    except Exception as exc:  # UnknownSchemeError, ValueError: both mean the URL is wrong
        shown = re.sub(r"//[^@/]*@", "//***@", url)  # no password in logs
        raise ImproperlyConfigured(
            f"DATABASE_URL={shown!r} cannot be read ({exc}); use postgres://user:password@host:port/name"
        ) from None


SSL_CERT_REQS = ("required", "optional", "none")  # what redis-py and Celery's backend both read


def env_redis_url(name: str) -> str:
    """A Redis URL that the cache, the broker and the result backend all read the same way, or ""."""
    raw = env_str(name).strip()
    if not raw:
        return ""
    parts = urlsplit(raw)
    query = parse_qs(parts.query)
    problem = ""
    # unix:// is the cache's (redis-py) socket form and redis+socket:// Celery's: no one URL
    # serves both, and sentinel:// neither.
    if parts.scheme not in {"redis", "rediss"}:
        problem = "use redis://[user:password@]host:port/db or rediss://... (TLS)"
    elif not re.fullmatch(r"/?(\d+)?/?", parts.path):
        problem = f"the database {parts.path.strip('/')!r} is not a number"
    elif parts.scheme == "rediss" and query.get("ssl_cert_reqs", [""])[0] not in SSL_CERT_REQS:
        problem = "a rediss:// URL needs ?ssl_cert_reqs=required (or optional, or none)"
    else:
        try:
            parts.port  # noqa: B018 (raises on a port that is not a number)
        except ValueError:
            problem = "the port is not a number"
    if problem:
        shown = re.sub(r"//[^@/]*@", "//***@", raw)  # no password in logs
        raise ImproperlyConfigured(f"{name}={shown!r}: {problem}")
    return raw


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


VAR_DIR = _var_dir()

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG=0 (local development: DEBUG=1 generates one into var/)"
        )
    # Development only: one random key kept in var/ so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "accounts",
    "markets",
    "forecasting",
]

MIDDLEWARE = [
    "makeusrich.middleware.HeadWithoutBodyMiddleware",  # first: it also empties the probes' HEAD answers
    "django.middleware.security.SecurityMiddleware",
    "makeusrich.middleware.ContentSecurityPolicyMiddleware",
    # Before CommonMiddleware: probers send hosts outside ALLOWED_HOSTS (127.0.0.1, the node's IP).
    "makeusrich.health.ProbeMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "makeusrich.urls"
WSGI_APPLICATION = "makeusrich.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite file under var/ unless DATABASE_URL is set.
DATABASES = {
    "default": _database(
        env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Worker, beat and web processes share the file: wait for locks instead of failing.
    # WAL lets readers (web) work while a writer (worker) holds the lock.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_redis_url("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "mur"),
        }
    }
else:
    # Files under var/, shared by every process of the install (the 2 web workers above all):
    # a per-process cache would let each worker allow its own brute-force attempts.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1)  # per username
# Per client address, over every username (password spraying): larger, as many people can share
# one address (an office's NAT, a proxy), and one of them mistyping must not lock out the others.
LOGIN_CLIENT_FAILURE_LIMIT = env_int("LOGIN_CLIENT_FAILURE_LIMIT", 100, minimum=1)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 900, minimum=1)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# One date format for the pages and the admin ("6 Mar 2022 17:00 UTC"): Django 5 always
# localizes, so DATETIME_FORMAT here would lose to the English locale's; a formats module wins.
FORMAT_MODULE_PATH = ["makeusrich.formats"]

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # vendor/plotly/plotly.min.js, straight from the installed plotly package.
    "forecasting.staticfiles.PlotlyFinder",
]

# Artifacts (ONNX models): filesystem under var/artifacts, or S3-compatible storage.
ARTIFACTS_STORAGE = env_str("ARTIFACTS_STORAGE", "filesystem")
if ARTIFACTS_STORAGE == "filesystem":
    _artifacts = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(Path(env_str("ARTIFACTS_DIR", str(VAR_DIR / "artifacts"))))},
    }
elif ARTIFACTS_STORAGE == "s3":
    if not env_str("ARTIFACTS_S3_BUCKET"):  # or every training runs, then fails to store its model
        raise ImproperlyConfigured("ARTIFACTS_STORAGE=s3 needs ARTIFACTS_S3_BUCKET (the bucket's name)")
    _artifacts = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("ARTIFACTS_S3_BUCKET"),
            "endpoint_url": env_str("ARTIFACTS_S3_ENDPOINT_URL") or None,
            "access_key": env_str("ARTIFACTS_S3_ACCESS_KEY_ID") or None,
            "secret_key": env_str("ARTIFACTS_S3_SECRET_ACCESS_KEY") or None,
            "region_name": env_str("ARTIFACTS_S3_REGION") or None,
            "location": env_str("ARTIFACTS_S3_PREFIX", "artifacts"),
            "file_overwrite": False,
        },
    }
else:
    raise ImproperlyConfigured(f"ARTIFACTS_STORAGE={ARTIFACTS_STORAGE!r}: use 'filesystem' or 's3'")

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
    "artifacts": _artifacts,
}

# Celery: Redis when REDIS_URL is set, otherwise kombu's filesystem transport
# (no server needed; worker and beat are still separate real processes).
CELERY_QUEUE_DIR = VAR_DIR / "celery"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": 2 * 3600}
    CELERY_RESULT_BACKEND = REDIS_URL
else:
    for _sub in ("out", "processed", "control"):
        (CELERY_QUEUE_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://localhost//"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_QUEUE_DIR / "out"),
        "data_folder_out": str(CELERY_QUEUE_DIR / "out"),
        "processed_folder": str(CELERY_QUEUE_DIR / "processed"),
        "control_folder": str(CELERY_QUEUE_DIR / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Market data.
MARKET_DATA_SOURCE = env_str("MARKET_DATA_SOURCE", "replay")
if MARKET_DATA_SOURCE not in {"replay", "binance"}:
    raise ImproperlyConfigured(f"MARKET_DATA_SOURCE={MARKET_DATA_SOURCE!r}: use 'replay' or 'binance'")
BINANCE_API_KEY = env_str("BINANCE_API_KEY") or None
BINANCE_API_SECRET = env_str("BINANCE_API_SECRET") or None
# Only tests and self-hosted mirrors change this (python-binance's API_URL).
BINANCE_API_URL = env_str("BINANCE_API_URL") or None
BINANCE_BACKFILL_DAYS = env_int("BINANCE_BACKFILL_DAYS", 365, minimum=1)
BINANCE_TIMEOUT_SECONDS = env_float("BINANCE_TIMEOUT_SECONDS", 10.0, minimum=0.1)
BINANCE_MAX_RETRIES = env_int("BINANCE_MAX_RETRIES", 4, minimum=0)
BINANCE_RETRY_BASE_SECONDS = env_float("BINANCE_RETRY_BASE_SECONDS", 1.0, minimum=0)
REPLAY_HOURS_PER_SYNC = env_int("REPLAY_HOURS_PER_SYNC", 1, minimum=1)
# Requests (of up to 1000 hours each) one sync of one asset may make to fill holes
# in its stored history; the rest waits for the next sync. 0 turns hole filling off.
SYNC_GAP_REQUESTS = env_int("SYNC_GAP_REQUESTS", 4, minimum=0)
BUNDLED_DATA_FILE = BASE_DIR / "markets" / "data" / "btcusdt_1h_2021-03-06_2022-03-06.csv.gz"

# Forecasting.
# At most a week, as the asset's Horizon field and the training's bound (forecasting.ml.config).
FORECAST_HORIZON = env_int("FORECAST_HORIZON", 24, minimum=1, maximum=168)
# How much skill (1 - rmse / no change's rmse) a new version may lose against the active one, in
# the mean over the horizon and at each step, on its held-out gate windows, and still be promoted.
PROMOTION_TOLERANCE = env_float("PROMOTION_TOLERANCE", 0.02)
TRAINING_TIME_LIMIT_SECONDS = env_int("TRAINING_TIME_LIMIT_SECONDS", 1800, minimum=60)
TRAINING_LOCK_SECONDS = env_int("TRAINING_LOCK_SECONDS", 2400, minimum=60)
MODEL_RETENTION = env_int("MODEL_RETENTION", 5, minimum=0)
FORECAST_RETENTION_DAYS = env_int("FORECAST_RETENTION_DAYS", 90, minimum=1)
STALE_DATA_HOURS = env_int("STALE_DATA_HOURS", 3, minimum=1)
STALE_MODEL_HOURS = env_int("STALE_MODEL_HOURS", 48, minimum=1)

# API.
API_MONTHLY_QUOTA = env_int("API_MONTHLY_QUOTA", 1000, minimum=0)
# Each web process keeps a forecast response body this long; 0 turns it off.
API_CACHE_SECONDS = env_float("API_CACHE_SECONDS", 2.0, minimum=0)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.HashedTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["makeusrich.api_json.ApiJSONRenderer"],  # floats: api_float
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"login": env_str("LOGIN_THROTTLE_RATE", "10/min")},
    # Reverse proxies in front of gunicorn that append to X-Forwarded-For; with 0 the header
    # is ignored, so a client cannot dodge the brute-force throttles by inventing addresses.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0, minimum=0),
    "EXCEPTION_HANDLER": "makeusrich.api_errors.api_exception_handler",
    "VIEW_NAME_FUNCTION": "makeusrich.api_schema.view_name",  # OPTIONS: "Asset List", not "Asset List Api"
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # JSON is the only format: `?format=` is not a switch that turns a real path into a 404.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Make Us Rich API",
    "DESCRIPTION": "Crypto price forecasts with honest accuracy figures.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Swagger UI's default badge asks validator.swagger.io about the schema on any public host.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "REDOC_DIST": "SIDECAR",
}

# Security (production: DEBUG=0).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_choice("LOG_LEVEL", "INFO", LOG_LEVELS)},
    # Django's defaults give "django" a console handler of its own when DEBUG is on (as under
    # `make run`), so each of its records (every 4xx) was printed twice: once there, once by root.
    # Its other default handler mails ADMINS, which is never set here.
    "loggers": {"django": {"handlers": [], "propagate": True}},
}
