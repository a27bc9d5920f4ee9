"""Settings of the test run: the project's, with a key of its own when the environment sets none.

Production settings refuse to load without SECRET_KEY unless DEBUG=1. The key (and OFFLINE_MODELS) is
put into the environment, so the servers and workers the tests start inherit it.
"""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-not-a-deployment-key-" + "t" * 32)
# Most tests run the fast random tiny models; the world's tests ask for the world's models by path.
os.environ.setdefault("OFFLINE_MODELS", "tiny")

from studyapp.settings import *  # noqa: F403
