"""URLs of the runs pages."""

urlpatterns: list = []
