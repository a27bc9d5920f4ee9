"""URLs of the rating pages. Raters only ever see opaque tokens in these paths."""

from django.urls import path

from studyapp.rating import views

urlpatterns = [
    path("s/<str:link_token>/", views.entry, name="rater_entry"),
    path("r/<str:rater_token>/", views.rater_home, name="rater_home"),
    path("r/<str:rater_token>/consent", views.consent, name="rater_consent"),
    path("r/<str:rater_token>/start", views.start, name="rater_start"),
    path("r/<str:rater_token>/answer", views.answer, name="rater_answer"),
    path("r/<str:rater_token>/next.json", views.next_pair, name="rater_next_json"),
    path("r/<str:rater_token>/answer.json", views.answer_json, name="rater_answer_json"),
    path("i/<str:assignment_token>/<int:side>", views.pair_image, name="rater_pair_image"),
    path("p/<str:reference_token>", views.reference_image, name="rater_reference_image"),
]
