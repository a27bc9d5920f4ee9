"""URLs of the rating pages. Raters only ever see opaque tokens in these paths."""

from django.urls import path

from studyapp import rater_views

urlpatterns = [
    path("s/<str:link_token>/", rater_views.entry, name="rater_entry"),
    path("r/<str:rater_token>/", rater_views.rater_home, name="rater_home"),
    path("r/<str:rater_token>/consent", rater_views.consent, name="rater_consent"),
    path("r/<str:rater_token>/start", rater_views.start, name="rater_start"),
    path("r/<str:rater_token>/answer", rater_views.answer, name="rater_answer"),
    path("i/<str:assignment_token>/<int:side>", rater_views.pair_image, name="rater_pair_image"),
    path("p/<str:reference_token>", rater_views.reference_image, name="rater_reference_image"),
]
