"""Staff pages for generation runs: the list, one run's page with live progress, and the run actions."""

from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from studyapp.models import GenerationRun
from studyapp.runs.actions import UnknownRunAction, perform, run_action
from studyapp.runs.progress import run_progress, runs_progress
from studyapp.runs.workers import gpu_worker_status, in_background
from studyapp.staff import staff_permission_required

RUNS_PER_PAGE = 100


@staff_permission_required("studyapp.view_generationrun")
def run_list(request):
    recent = list(GenerationRun.objects.select_related("method", "prompt_set", "sweep")[:RUNS_PER_PAGE])
    progress = runs_progress(recent)
    rows = [(run, progress[run.pk]) for run in recent]
    context = {"rows": rows, "workers": gpu_worker_status()}
    return render(request, "studyapp/runs/run_list.html", context)


@staff_permission_required("studyapp.view_generationrun")
def run_detail(request, pk: int):
    run = get_object_or_404(GenerationRun.objects.select_related("method", "prompt_set", "sweep"), pk=pk)
    batches = _batches(run)
    context = {
        "run": run,
        "progress": run_progress(run),
        "batches": batches,
        "concepts": run.concepts.all(),
        "workers": gpu_worker_status(),
    }
    return render(request, "studyapp/runs/run_detail.html", context)


@staff_permission_required("studyapp.view_generationrun")
def run_progress_json(request, pk: int):
    """The run's progress, and with ?batches=1 its batch table as the run page shows it."""
    run = get_object_or_404(GenerationRun, pk=pk)
    data = run_progress(run).as_dict()
    if request.GET.get("batches"):
        data["batch_rows"] = [_batch_row(batch) for batch in _batches(run)]
    return JsonResponse(data)


def _batches(run: GenerationRun):
    return run.batches.select_related("concept", "prompt").order_by("concept__slug", "prompt__position")


def _batch_row(batch) -> dict:
    heartbeat = timezone.localtime(batch.heartbeat).strftime("%H:%M:%S") if batch.heartbeat else ""
    return {
        "id": batch.pk,
        "state": batch.state,
        "attempts": batch.attempts,
        "worker": batch.worker,
        "heartbeat": heartbeat,
        "error": batch.error,
    }


@staff_permission_required("studyapp.change_generationrun")
@require_POST
def run_action_view(request, pk: int, action: str):
    run = get_object_or_404(GenerationRun, pk=pk)
    try:
        chosen = run_action(action)
    except UnknownRunAction as exc:
        return JsonResponse({"detail": str(exc)}, status=404)
    with in_background():
        outcome = perform(chosen, [run])
    if outcome.refused:
        return JsonResponse({"detail": outcome.refused[0]}, status=409)
    messages.success(request, outcome.message)
    return redirect("run-detail", pk=run.pk)
