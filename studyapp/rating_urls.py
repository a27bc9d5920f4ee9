"""URLs of the rating pages."""

urlpatterns: list = []
