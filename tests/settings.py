"""Settings of the test run: the project's, with a key of its own when the environment sets none.

Production settings refuse to load without SECRET_KEY unless DEBUG=1. The key is put into the
environment, so the servers and workers the tests start inherit it.
"""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-not-a-deployment-key-" + "t" * 32)

from studyapp.settings import *  # noqa: F403
