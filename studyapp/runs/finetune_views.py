"""Staff pages for fine-tunes: one run's page with live progress, its actions, and methods over its result."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from studyapp.models import FineTuneRun, Method
from studyapp.runs.actions import UnknownRunAction, perform, run_action
from studyapp.runs.finetune import output_location
from studyapp.runs.finetune_launch import FINE_TUNE_ACTIONS
from studyapp.runs.finetune_methods import create_methods, method_prefix, sweep_initial
from studyapp.runs.progress import fine_tune_progress
from studyapp.runs.workers import gpu_worker_status, in_background
from studyapp.staff import staff_permission_required


@staff_permission_required("studyapp.view_finetunerun")
def fine_tune_detail(request, pk: int):
    run = get_object_or_404(FineTuneRun.objects.select_related("concept"), pk=pk)
    made = (
        Method.objects.filter(personalization=str(output_location(run))) if run.output_path else Method.objects.none()
    )
    context = {
        "run": run,
        "progress": fine_tune_progress(run),
        "workers": gpu_worker_status(),
        "methods": made.order_by("name"),
        "prefix": method_prefix(run),
        "sweep_url": _sweep_url(run) if run.state == FineTuneRun.State.DONE else "",
    }
    return render(request, "studyapp/runs/fine_tune_detail.html", context)


def _sweep_url(run: FineTuneRun) -> str:
    return f"{reverse('admin:studyapp_sweep_add')}?{urlencode(sweep_initial(run))}"


@staff_permission_required("studyapp.view_finetunerun")
def fine_tune_progress_json(request, pk: int):
    run = get_object_or_404(FineTuneRun, pk=pk)
    return JsonResponse(fine_tune_progress(run))


@staff_permission_required("studyapp.change_finetunerun")
@require_POST
def fine_tune_action(request, pk: int, action: str):
    run = get_object_or_404(FineTuneRun, pk=pk)
    try:
        chosen = run_action(action, FINE_TUNE_ACTIONS)
    except UnknownRunAction as exc:
        return JsonResponse({"detail": str(exc)}, status=404)
    with in_background():
        outcome = perform(chosen, [run])
    if outcome.refused:
        return JsonResponse({"detail": outcome.refused[0]}, status=409)
    messages.success(request, outcome.message)
    return redirect("fine-tune-detail", pk=run.pk)


@staff_permission_required("studyapp.view_finetunerun", "studyapp.add_method")
@require_POST
def fine_tune_methods(request, pk: int):
    """One method per sampler, with its defaults, over the finished fine-tune's result."""
    run = get_object_or_404(FineTuneRun.objects.select_related("concept"), pk=pk)
    try:
        made = create_methods(run)
    except ValidationError as exc:
        return JsonResponse({"detail": " ".join(exc.messages)}, status=409)
    names = ", ".join(method.name for method in made.created) or "none"
    kept = f"; {len(made.existing)} existed already" if made.existing else ""
    messages.success(request, f"{len(made.created)} method(s) created: {names}{kept}.")
    return redirect("fine-tune-detail", pk=run.pk)
