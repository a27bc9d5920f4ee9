"""The admin, one module per domain; Django's autodiscovery imports this package, which registers them all."""

from studyapp.admin import catalog, rating, results, runs, studies  # noqa: F401  (each registers its models)
