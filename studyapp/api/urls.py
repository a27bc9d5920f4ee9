"""URLs of the REST API, mounted under /api/: a root listing them, the schema and its docs, the endpoints."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from studyapp.api import results, runs, studies
from studyapp.api.root import ApiRoot

urlpatterns = [
    path("", ApiRoot.as_view(), name="api-root"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("studies/", studies.StudyList.as_view(), name="api-study-list"),
    path("studies/<int:pk>/", studies.StudyDetail.as_view(), name="api-study-detail"),
    path("studies/<int:pk>/comparisons/", studies.ComparisonList.as_view(), name="api-comparison-list"),
    path("studies/<int:pk>/results/", results.StudyResultsView.as_view(), name="api-study-results"),
    path(
        "studies/<int:pk>/export/<slug:what>.<slug:file_format>",
        results.StudyExport.as_view(),
        name="api-study-export",
    ),
    path("studies/<int:pk>/snapshots/", results.SnapshotList.as_view(), name="api-snapshot-list"),
    path("snapshots/<int:pk>/", results.SnapshotDetail.as_view(), name="api-snapshot-detail"),
    path("runs/", runs.RunList.as_view(), name="api-run-list"),
    path("runs/presets/", runs.Presets.as_view(), name="api-sweep-presets"),
    path("runs/sweeps/", runs.SweepList.as_view(), name="api-sweep-list"),
    path("runs/sweeps/<int:pk>/", runs.SweepDetail.as_view(), name="api-sweep-detail"),
    path("runs/fine-tunes/", runs.FineTuneList.as_view(), name="api-fine-tune-list"),
    path("runs/fine-tunes/<int:pk>/", runs.FineTuneDetail.as_view(), name="api-fine-tune-detail"),
    path("runs/fine-tunes/<int:pk>/<slug:action>/", runs.FineTuneAction.as_view(), name="api-fine-tune-action"),
    path("runs/<int:pk>/", runs.RunDetail.as_view(), name="api-run-detail"),
    path("runs/<int:pk>/<slug:action>/", runs.RunAction.as_view(), name="api-run-action"),
]
