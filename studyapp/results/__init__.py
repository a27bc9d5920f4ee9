"""A study's results: the answer table from the database, the cached analysis, metrics beside it,
the results pages, exports and snapshots. The statistics themselves are in studyapp.stats."""
