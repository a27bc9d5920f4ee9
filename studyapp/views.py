from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render

from studyapp.models import Study


def home(request):
    studies = Study.objects.order_by("-created")[:50] if request.user.is_staff else []
    return render(request, "studyapp/home.html", {"studies": studies})


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})
