"""URLs of the results pages, the exports, the method pages and the results API (under /api/)."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from studyapp import api, result_views

urlpatterns = [
    path("studies/<int:pk>/results/", result_views.study_results_page, name="study-results"),
    path("studies/<int:pk>/export/<slug:what>.<slug:file_format>", result_views.study_export, name="study-export"),
    path("studies/<int:pk>/snapshots/", result_views.study_snapshot_create, name="study-snapshot-create"),
    path("studies/<int:pk>/snapshots/<int:snapshot_pk>.json", result_views.snapshot_json, name="study-snapshot"),
    path("studies/<int:pk>/pareto.svg", result_views.study_pareto, name="study-pareto"),
    path("methods/<int:pk>/", result_views.method_page, name="method-detail"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/studies/", api.StudyList.as_view(), name="api-study-list"),
    path("api/studies/<int:pk>/", api.StudyDetail.as_view(), name="api-study-detail"),
    path("api/studies/<int:pk>/comparisons/", api.ComparisonList.as_view(), name="api-comparison-list"),
    path("api/studies/<int:pk>/results/", api.StudyResultsView.as_view(), name="api-study-results"),
    path(
        "api/studies/<int:pk>/export/<slug:what>.<slug:file_format>", api.StudyExport.as_view(), name="api-study-export"
    ),
    path("api/studies/<int:pk>/snapshots/", api.SnapshotList.as_view(), name="api-snapshot-list"),
    path("api/snapshots/<int:pk>/", api.SnapshotDetail.as_view(), name="api-snapshot-detail"),
]
