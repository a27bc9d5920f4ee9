"""The live server the integrity tests attack runs production settings."""

from urllib.error import HTTPError
from urllib.request import urlopen

import pytest

pytestmark = pytest.mark.services


def test_the_live_server_answers_with_production_settings(live_server_url):
    with pytest.raises(HTTPError) as missing:
        urlopen(live_server_url + "/no-such-page/")
    assert missing.value.code == 404
    body = missing.value.read().decode()
    assert "Traceback" not in body and "SECRET_KEY" not in body
