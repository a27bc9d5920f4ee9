"""Settings, read from the environment (twelve-factor). See docs/configuration.md."""

from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from studyapp.config import database_from_url, env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        # A public constant key would let anyone forge rater cookies and sessions.
        raise ImproperlyConfigured(
            "SECRET_KEY: required when DEBUG=0. Set it to a long random value, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`, or set DEBUG=1 for local use."
        )
    SECRET_KEY = "django-insecure-local-only-do-not-deploy-0123456789abcdef"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc as static files: the API docs work offline
    "axes",
    "studyapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "studyapp.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "studyapp.middleware.RequestGuardMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "studyapp.urls"
WSGI_APPLICATION = "studyapp.wsgi.application"

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

DATABASES = {"default": database_from_url(env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # An unreachable database answers raters with the 503 page within seconds, not a worker timeout.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int(
        "DATABASE_CONNECT_TIMEOUT", 5, minimum=1
    )

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses a locked-out login before the password is checked
    "django.contrib.auth.backends.ModelBackend",
]
# Admin login throttling (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one username from
# one address, that pair is refused (429) for the cool-off time; a success resets the count.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "studyapp.middleware.client_address"
AXES_LOCKOUT_TEMPLATE = "429.html"

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
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Uploads: reference photos are validated in studyapp.catalog.images; these bound the request itself.
# Form fields other than files, and JSON bodies, are held in memory up to this size.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# A file part above this size streams to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 20 * 1024 * 1024, minimum=1)
# A whole upload request (several photos at once); refused from its Content-Length before it is read.
MAX_UPLOAD_REQUEST_BYTES = env_int("MAX_UPLOAD_REQUEST_BYTES", 10 * MAX_UPLOAD_BYTES, minimum=1)
FILE_UPLOAD_HANDLERS = [
    "studyapp.uploads.SizeCapUploadHandler",  # counts bytes as they arrive; first, so it sees every chunk
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 40_000_000, minimum=1)

# Security. HTTPS=1 in a deployment turns on redirects, secure cookies and HSTS (see docs/deployment.md).
HTTPS = env_bool("HTTPS", default=False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=HTTPS)
# BEHIND_PROXY=1: our reverse proxy sets X-Forwarded-Proto and overwrites X-Forwarded-For.
BEHIND_PROXY = env_bool("BEHIND_PROXY")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Celery: without a broker, tasks run eagerly in-process (demo, single-machine use).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_TASK_ROUTES = {"studyapp.tasks.generate_*": {"queue": "gpu"}, "studyapp.tasks.fine_tune": {"queue": "gpu"}}
# Longer than the longest generation batch, or Redis redelivers a task still running.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 6 * 3600, minimum=60)}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Generation: a hub id or a local folder in diffusers layout. Empty means the offline models that
# OFFLINE_MODELS names: "world" (the default: the procedural world's trained models that ship in
# generation/world/models, with real pictures) or "tiny" (random weights that `python -m generation
# make-tiny` writes under var/tiny; fast, noise-like images, what most tests use).
GENERATION_MODEL = env_str("GENERATION_MODEL")
OFFLINE_MODELS = env_str("OFFLINE_MODELS", "world")
if OFFLINE_MODELS not in ("world", "tiny"):
    raise ImproperlyConfigured(f"OFFLINE_MODELS: expected world or tiny, got {OFFLINE_MODELS!r}")
GENERATION_DEVICE = env_str("GENERATION_DEVICE", "auto")
# GPU speed paths (docs/generation.md): precision (empty: float16 on GPU, float32 on CPU), a compiled
# denoiser with its kernel cache, CUDA graphs for small calls. All off unless set.
GENERATION_DTYPE = env_str("GENERATION_DTYPE") or None
GENERATION_COMPILE = env_bool("GENERATION_COMPILE", default=False)
GENERATION_COMPILE_CACHE_DIR = env_str("GENERATION_COMPILE_CACHE_DIR") or None
GENERATION_CUDA_GRAPHS = env_bool("GENERATION_CUDA_GRAPHS", default=False)
TINY_MODEL_DIR = Path(env_str("TINY_MODEL_DIR", str(BASE_DIR / "var" / "tiny")))
# Generation batches: how long a worker's heartbeat may be silent before the batch is re-queued,
# how often a batch may lose its worker before it fails, and images per UNet batch.
GENERATION_LEASE_SECONDS = env_int("GENERATION_LEASE_SECONDS", 600, minimum=10)
GENERATION_MAX_ATTEMPTS = env_int("GENERATION_MAX_ATTEMPTS", 3, minimum=1)
GENERATION_IMAGES_PER_CALL = env_int("GENERATION_IMAGES_PER_CALL", 4, minimum=1)
# Packing (GPU workers): 0 is off; N puts up to N of a batch's images into each denoiser call, fewer
# where GENERATION_MEMORY_BUDGET_GIB (GiB of activations, CUDA only) holds fewer.
GENERATION_PACK_IMAGES = env_int("GENERATION_PACK_IMAGES", 0, minimum=0)
GENERATION_MEMORY_BUDGET_GIB = env_float("GENERATION_MEMORY_BUDGET_GIB", above=0)
GENERATION_RECONCILE_SECONDS = env_int("GENERATION_RECONCILE_SECONDS", 60, minimum=5)
# Score a run's images (cpu queue) as soon as it is done.
SCORE_FINISHED_RUNS = env_bool("SCORE_FINISHED_RUNS", default=True)
RESULTS_BOOTSTRAP_RESAMPLES = env_int("RESULTS_BOOTSTRAP_RESAMPLES", 2000, minimum=100)
RESULTS_CACHE_SECONDS = env_int("RESULTS_CACHE_SECONDS", 3600, minimum=0)
CLIP_MODEL = env_str("CLIP_MODEL")
DINO_MODEL = env_str("DINO_MODEL")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["studyapp.api.permissions.StaffModelPermissions"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Personalized generation human-evaluation API",
    "VERSION": "1.0.0",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAdminUser"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# Serve MEDIA_ROOT from Django itself (local runs and the demo; rater pages never use these URLs).
SERVE_MEDIA = env_bool("SERVE_MEDIA", default=DEBUG)

# Rater admission and leases (docs/rating.md): new raters per client address and minute, raters active
# at once per study (0 means no limit), and how long a silent rater keeps their leases.
RATER_NEW_PER_ADDRESS_PER_MINUTE = env_int("RATER_NEW_PER_ADDRESS_PER_MINUTE", 20, minimum=0)
RATER_MAX_ACTIVE = env_int("RATER_MAX_ACTIVE", 500, minimum=0)
RATER_IDLE_SECONDS = env_int("RATER_IDLE_SECONDS", 300, minimum=1)
