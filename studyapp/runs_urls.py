"""URLs of the runs pages, the image browser and the runs API."""

from django.urls import path

from studyapp import api_runs, run_views

urlpatterns = [
    path("runs/", run_views.run_list, name="run-list"),
    path("runs/<int:pk>/", run_views.run_detail, name="run-detail"),
    path("runs/<int:pk>/progress.json", run_views.run_progress, name="run-progress"),
    path("runs/<int:pk>/<slug:action>/", run_views.run_action, name="run-action"),
    path("browser/", run_views.browser, name="browser"),
    path("browser/images/<str:token>/", run_views.browser_image, name="browser-image"),
    path("api/runs/", api_runs.RunList.as_view(), name="api-run-list"),
    path("api/runs/presets/", api_runs.Presets.as_view(), name="api-sweep-presets"),
    path("api/runs/sweeps/", api_runs.SweepList.as_view(), name="api-sweep-list"),
    path("api/runs/sweeps/<int:pk>/", api_runs.SweepDetail.as_view(), name="api-sweep-detail"),
    path("api/runs/<int:pk>/", api_runs.RunDetail.as_view(), name="api-run-detail"),
    path("api/runs/<int:pk>/<slug:action>/", api_runs.RunAction.as_view(), name="api-run-action"),
]
