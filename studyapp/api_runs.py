"""REST API for generation runs and sweeps (staff only): create, follow, cancel, resume, re-queue."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from studyapp import runs, sweeps
from studyapp.models import Concept, GenerationRun, Method, PromptSet, Sweep


def as_api_error(exc: DjangoValidationError) -> serializers.ValidationError:
    return serializers.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})


class RunSerializer(serializers.ModelSerializer):
    method = serializers.SlugRelatedField(slug_field="name", queryset=Method.objects.all())
    prompt_set = serializers.SlugRelatedField(slug_field="slug", queryset=PromptSet.objects.all())
    concepts = serializers.SlugRelatedField(slug_field="slug", queryset=Concept.objects.all(), many=True)
    sweep = serializers.SlugRelatedField(slug_field="name", read_only=True)
    steps = serializers.IntegerField(required=False)
    seed_indices = serializers.JSONField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = GenerationRun
        fields = [
            "id", "label", "method", "prompt_set", "concepts", "seed_indices", "steps", "params", "sweep",
            "state", "error", "images_total", "created", "started", "finished", "progress",
        ]  # fmt: skip
        read_only_fields = ["params", "state", "error", "images_total", "created", "started", "finished"]

    def get_progress(self, run) -> dict:
        return runs.progress(run).as_dict()

    def create(self, data):
        try:
            return runs.create_run(
                method=data["method"],
                prompt_set=data["prompt_set"],
                concepts=data["concepts"],
                seed_indices=data["seed_indices"],
                steps=data.get("steps"),
                label=data.get("label", ""),
            )
        except DjangoValidationError as exc:
            raise as_api_error(exc) from None


class RunList(generics.ListCreateAPIView):
    """Runs, newest first; POST validates the run and queues it."""

    queryset = GenerationRun.objects.select_related("method", "prompt_set", "sweep").prefetch_related("concepts")
    serializer_class = RunSerializer


class RunDetail(generics.RetrieveAPIView):
    queryset = RunList.queryset
    serializer_class = RunSerializer


class RunAction(APIView):
    """POST cancel, resume or requeue-failed; answers with the run's progress afterwards."""

    actions = {"cancel": runs.cancel_run, "resume": runs.resume_run, "requeue-failed": runs.requeue_failed}

    @extend_schema(
        operation_id="runs_action",
        request=None,
        responses=inline_serializer("RunActionResult", {"queued_batches": serializers.IntegerField(), "progress": serializers.DictField()}),
    )
    def post(self, request, pk: int, action: str):
        run = generics.get_object_or_404(GenerationRun, pk=pk)
        function = self.actions.get(action)
        if function is None:
            return Response({"detail": f"expected one of {', '.join(self.actions)}, got {action!r}"}, status=404)
        queued = function(run)
        return Response({"queued_batches": queued or 0, "progress": runs.progress(run).as_dict()})


class SweepSerializer(serializers.ModelSerializer):
    prompt_set = serializers.SlugRelatedField(slug_field="slug", queryset=PromptSet.objects.all())
    concepts = serializers.SlugRelatedField(slug_field="slug", queryset=Concept.objects.all(), many=True)
    seed_indices = serializers.JSONField()
    grid = serializers.JSONField(required=False)
    runs = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Sweep
        fields = [
            "id", "name", "sampler", "preset", "grid", "base_model", "personalization", "steps", "prompt_set",
            "concepts", "seed_indices", "created", "runs",
        ]  # fmt: skip
        read_only_fields = ["created"]

    def create(self, data):
        concepts = data.pop("concepts")
        try:
            with transaction.atomic():
                sweep = Sweep.objects.create(**data)
                sweep.concepts.set(concepts)
                sweeps.launch_sweep(sweep)
        except DjangoValidationError as exc:
            raise as_api_error(exc) from None
        return sweep


class SweepList(generics.ListCreateAPIView):
    """Sweeps; POST creates one method and one run per grid point, all validated before anything is queued."""

    queryset = Sweep.objects.select_related("prompt_set").prefetch_related("concepts", "runs")
    serializer_class = SweepSerializer


class SweepDetail(generics.RetrieveAPIView):
    queryset = SweepList.queryset
    serializer_class = SweepSerializer


class Presets(APIView):
    """The named sweep grids, by sampler."""

    @extend_schema(operation_id="runs_sweep_presets", responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response(sweeps.presets(), status=status.HTTP_200_OK)
