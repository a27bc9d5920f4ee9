"""URLs of the results pages, the exports, snapshots, the Pareto plot and the method pages."""

from django.urls import path

from studyapp.results import views

urlpatterns = [
    path("studies/<int:pk>/results/", views.study_results_page, name="study-results"),
    path("studies/<int:pk>/results/by-<slug:by>/", views.study_breakdown, name="study-breakdown"),
    path("studies/<int:pk>/export/<slug:what>.<slug:file_format>", views.study_export, name="study-export"),
    path("studies/<int:pk>/snapshots/", views.study_snapshot_create, name="study-snapshot-create"),
    path("studies/<int:pk>/snapshots/<int:snapshot_pk>.json", views.snapshot_json, name="study-snapshot"),
    path("studies/<int:pk>/pareto.svg", views.study_pareto, name="study-pareto"),
    path("studies/<int:pk>/figures/<slug:name>.<slug:file_format>", views.study_figure, name="study-figure"),
    path("methods/<int:pk>/", views.method_page, name="method-detail"),
]
