"""URLs of the run and fine-tune pages and the image browser (the runs API is in studyapp.api.urls)."""

from django.urls import path

from studyapp.runs import browser, finetune_views, views

urlpatterns = [
    path("runs/", views.run_list, name="run-list"),
    path("runs/<int:pk>/", views.run_detail, name="run-detail"),
    path("runs/<int:pk>/progress.json", views.run_progress_json, name="run-progress"),
    path("runs/<int:pk>/<slug:action>/", views.run_action_view, name="run-action"),
    path("runs/fine-tunes/<int:pk>/", finetune_views.fine_tune_detail, name="fine-tune-detail"),
    path("runs/fine-tunes/<int:pk>/progress.json", finetune_views.fine_tune_progress_json, name="fine-tune-progress"),
    path("runs/fine-tunes/<int:pk>/methods/", finetune_views.fine_tune_methods, name="fine-tune-methods"),
    path("runs/fine-tunes/<int:pk>/<slug:action>/", finetune_views.fine_tune_action, name="fine-tune-action"),
    path("browser/", browser.browser, name="browser"),
    path("browser/images/<str:token>/", browser.browser_image, name="browser-image"),
]
