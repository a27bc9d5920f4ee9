"""Settings for the Celery workers that the worker tests start: the project's, with short timings."""

from studyapp.settings import *  # noqa: F403

GENERATION_IMAGES_PER_CALL = 1  # store every image as soon as it exists, so a kill lands between images
# Longer than a model load on a loaded machine, so a duplicated message never takes over a live batch;
# the kill test lets the lease lapse with an explicit reconcile(lease=1).
GENERATION_LEASE_SECONDS = 30
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
