"""Settings of the example store: Django's tables and pgwerk's in one PostgreSQL database.

    DATABASE_URL   the database (default postgresql://localhost/store)
    PGWERK_SCHEMA  the schema of pgwerk's tables (default pgwerk)
"""

import os

from psycopg.conninfo import conninfo_to_dict

DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "only-for-the-example-do-not-deploy")
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "store",
    "pgwerk.contrib.django",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]

_db = conninfo_to_dict(os.environ.get("DATABASE_URL", "postgresql://localhost/store"))
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db.pop("dbname", "store"),
        "USER": _db.pop("user", ""),
        "PASSWORD": _db.pop("password", ""),
        "HOST": _db.pop("host", ""),
        "PORT": _db.pop("port", ""),
        "OPTIONS": _db,  # the rest of the URL: sslmode, options ...
    }
}

# No DSN: pgwerk uses DATABASES["default"] and, by default, enqueues through Django's
# connection, so a job commits or rolls back with the transaction around it.
PGWERK = {"OPTIONS": {"schema": os.environ.get("PGWERK_SCHEMA", "pgwerk")}}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "static/"
