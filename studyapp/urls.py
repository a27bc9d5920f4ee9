from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

from studyapp import views

handler400 = "studyapp.middleware.bad_request_page"
handler500 = "studyapp.middleware.server_error"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/", include("studyapp.api.urls")),
    path("", include("studyapp.rating.urls")),
    path("", include("studyapp.runs.urls")),
    path("", include("studyapp.results.urls")),
]

if settings.SERVE_MEDIA:
    # Local and demo use only; a deployment serves MEDIA_ROOT from its web server or object storage.
    urlpatterns.append(re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}))
