"""URLs of the results pages."""

urlpatterns: list = []
