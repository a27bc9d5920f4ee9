"""Start-up checks for what only the running configuration can tell (ids studyapp.E001...)."""

import os

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def media_root_writable(app_configs, **kwargs):
    root = settings.MEDIA_ROOT
    probe = root if os.path.exists(root) else os.path.dirname(os.path.abspath(root))
    if not os.access(probe, os.W_OK):
        return [
            Error(
                f"MEDIA_ROOT {root} is not writable", hint="Point MEDIA_ROOT at a writable folder.", id="studyapp.E001"
            )
        ]
    return []


@register()
def generation_model_exists(app_configs, **kwargs):
    model = settings.GENERATION_MODEL
    looks_local = model.startswith(("/", ".", "~")) or (os.sep in model and not _looks_like_hub_id(model))
    if model and looks_local and not os.path.isdir(os.path.expanduser(model)):
        return [
            Error(
                f"GENERATION_MODEL {model!r} is not a folder",
                hint="Use a hub id such as 'stabilityai/stable-diffusion-2-base' or a local folder in diffusers "
                "layout.",
                id="studyapp.E002",
            )
        ]
    return []


def _looks_like_hub_id(value: str) -> bool:
    parts = value.split("/")
    return len(parts) == 2 and all(parts) and not value.startswith((".", "/"))


@register()
def broker_reachable(app_configs, **kwargs):
    url = settings.CELERY_BROKER_URL
    if not url or not url.startswith(("redis://", "rediss://")):
        return []
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:  # any failure to reach it is worth a warning, not a crash
        return [Warning(f"CELERY_BROKER_URL {url} is not reachable: {exc}", id="studyapp.W001")]
    return []
