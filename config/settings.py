"""Django settings for Ratify, driven by environment variables.

- ``DJANGO_DEBUG``: "1"/"true"/"yes"/"on" or "0"/"false"/"no"/"off" (default: true).
- ``DJANGO_SECRET_KEY``: required when DEBUG is off; a fixed development key is used otherwise.
- ``DJANGO_ALLOWED_HOSTS``: comma-separated (default: 127.0.0.1,localhost,testserver,[::1]).
- ``DJANGO_CSRF_TRUSTED_ORIGINS``: comma-separated origins, e.g. https://ratify.example.org.
- HTTPS, each defaulting to on when DEBUG is off and to off when it is on (README, Deployment):
  ``DJANGO_SECURE_SSL_REDIRECT`` (redirect plain HTTP to HTTPS), ``DJANGO_SECURE_COOKIES``
  (session and CSRF cookies only over HTTPS), ``DJANGO_SECURE_PROXY_SSL_HEADER`` (trust the
  proxy's ``X-Forwarded-Proto: https``), ``DJANGO_SECURE_HSTS_SECONDS`` (HSTS max-age: one year
  when DEBUG is off, 0 otherwise), ``DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS``; and
  ``DJANGO_SECURE_HSTS_PRELOAD`` (default off: it asks browsers to hard-code HTTPS for the
  domain, a commitment for the domain's owner to make).
- ``DATABASE_URL``: any URL dj-database-url understands (default: SQLite in the project root).
- ``DJANGO_CONN_MAX_AGE``: seconds a database connection is kept for reuse (default 600).
- ``REDIS_URL``: when set, Channels uses the Redis pub/sub layer; otherwise an in-memory layer.
- ``RATIFY_CHANNEL_PREFIX``: prefix of the Redis channel names (default "ratify").
- ``DJANGO_EMAIL_BACKEND``, ``DJANGO_EMAIL_HOST``, ``DJANGO_EMAIL_PORT``,
  ``DJANGO_EMAIL_HOST_USER``, ``DJANGO_EMAIL_HOST_PASSWORD``, ``DJANGO_EMAIL_USE_TLS``,
  ``DJANGO_DEFAULT_FROM_EMAIL``: mail for password resets (default: printed to the console).
- ``RATIFY_BOT_DELAY``: seconds a bot waits before each move (default 1.0; 0 in tests).
- ``RATIFY_GRACE_SECONDS``: seconds a remote match keeps a dropped player's seat before a bot
  takes over (default 60).
- ``RATIFY_WRITE_LANES``: command batches a server process writes at once with PostgreSQL
  (default 1; always 1 with SQLite; see ``negotiation.writer``).
- ``DJANGO_LOG_LEVEL``: level of the root logger (default INFO).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    """A boolean environment variable; raises ImproperlyConfigured for anything unrecognised."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false)")


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated environment variable, blanks dropped."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)

_DEV_SECRET_KEY = "django-insecure-ratify-development-key-never-use-in-production"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false")
    SECRET_KEY = _DEV_SECRET_KEY

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "negotiation",
    "accounts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES: list[dict[str, Any]] = [
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

ASGI_APPLICATION = "config.asgi.application"

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        # Keep each worker thread's connection: opening one per command (Django's default
        # for requests) costs more than the command, and with SQLite's write-ahead log the
        # last connection to close also checkpoints the log to disk.
        conn_max_age=int(os.environ.get("DJANGO_CONN_MAX_AGE", "600")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's backend, rewriting each statement's placeholders once (``config/sqlite3``).
    DATABASES["default"]["ENGINE"] = "config.sqlite3"
    # Several server processes may share the file: take the write lock when a transaction
    # begins (SQLite has no row locks) and wait for it rather than fail.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            # Write-ahead log: readers never wait for the writer, and a commit is an append
            # without fsync (synchronous=NORMAL). A committed command survives the server
            # process being killed; only a power cut may lose the last commits.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

REDIS_URL = os.environ.get("REDIS_URL", "")
CHANNEL_LAYERS: dict[str, dict[str, Any]]
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # Redis pub/sub channels are shared by every database number: installations
            # sharing one Redis need their own prefix.
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": os.environ.get("RATIFY_CHANNEL_PREFIX", "ratify"),
            },
        }
    }
else:
    # Channels' in-memory layer with a cost per message that does not grow with the sockets.
    CHANNEL_LAYERS = {"default": {"BACKEND": "negotiation.layers.ProcessChannelLayer"}}

#: Seconds a bot waits before each of its moves, so people can follow what it does.
RATIFY_BOT_DELAY = float(os.environ.get("RATIFY_BOT_DELAY", "1.0"))
#: Seconds a remote match keeps the seat of a player who dropped before a bot stands in.
RATIFY_GRACE_SECONDS = float(os.environ.get("RATIFY_GRACE_SECONDS", "60"))
#: Command batches a process writes at once with PostgreSQL (always 1 with SQLite).
RATIFY_WRITE_LANES = int(os.environ.get("RATIFY_WRITE_LANES", "1"))

# A player's seat is bound to the session cookie: keep it for a whole course.
SESSION_COOKIE_AGE = 60 * 60 * 24 * 120

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Password-reset mail: printed to the console unless an SMTP server is configured.
EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
EMAIL_HOST = os.environ.get("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("DJANGO_EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "ratify@localhost")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# HTTPS. Production defaults when DEBUG is off, development defaults (plain HTTP on loopback)
# when it is on; each can be set on its own, e.g. off for a production-like server on plain HTTP
# on loopback (the load benchmark).
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
# Behind a TLS-terminating proxy, which must set X-Forwarded-Proto itself (never pass on a
# client's): without it every request would look like plain HTTP and be redirected forever.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https")
    if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", not DEBUG)
    else None
)
SECURE_HSTS_SECONDS = int(
    os.environ.get("DJANGO_SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000")
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

#: The Content-Security-Policy of every response (``config.csp``): scripts only from the site's
#: own files, never inline. Style attributes (not style elements) are allowed: the briefing's
#: heat map and the replay's timeline marks place and shade elements with them, per value.
RATIFY_CONTENT_SECURITY_POLICY: dict[str, list[str]] = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "style-src-attr": ["'unsafe-inline'"],
    "img-src": ["'self'", "data:", "blob:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
}
