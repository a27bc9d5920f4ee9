"""Settings for the Celery workers that the worker tests start: the project's, with short timings."""

from studyapp.settings import *  # noqa: F403

GENERATION_IMAGES_PER_CALL = 1  # store every image as soon as it exists, so a kill lands between images
GENERATION_LEASE_SECONDS = 3
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
