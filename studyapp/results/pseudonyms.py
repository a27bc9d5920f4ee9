"""Raters appear outside the database only as pseudonyms: stable within a deployment, not reversible."""

from django.utils.crypto import salted_hmac


def pseudonym(rater_id: int) -> str:
    """A stable, non-reversible rater id for exports (HMAC of the id with SECRET_KEY)."""
    return salted_hmac("studyapp.results.rater", str(int(rater_id))).hexdigest()[:16]
