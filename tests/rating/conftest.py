"""Fixtures of the rating tests."""

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def empty_cache():
    """Rater pages cache reference-photo URLs per concept; ids repeat across tests, so start empty."""
    cache.clear()
    yield
    cache.clear()
