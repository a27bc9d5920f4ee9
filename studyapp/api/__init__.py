"""The REST API (staff only, session or token): one module per domain, its routes in studyapp.api.urls."""
