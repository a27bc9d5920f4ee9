"""URLs of the run pages and the image browser (the runs API is in studyapp.api.urls)."""

from django.urls import path

from studyapp.runs import browser, views

urlpatterns = [
    path("runs/", views.run_list, name="run-list"),
    path("runs/<int:pk>/", views.run_detail, name="run-detail"),
    path("runs/<int:pk>/progress.json", views.run_progress_json, name="run-progress"),
    path("runs/<int:pk>/<slug:action>/", views.run_action_view, name="run-action"),
    path("browser/", browser.browser, name="browser"),
    path("browser/images/<str:token>/", browser.browser_image, name="browser-image"),
]
