"""REST API for generation runs, sweeps and fine-tunes (staff only): create, follow, cancel, resume, re-queue."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from studyapp.models import Concept, FineTuneRun, GenerationRun, Method, PromptSet, Sweep
from studyapp.runs.actions import UnknownRunAction, perform, run_action
from studyapp.runs.finetune_launch import FINE_TUNE_ACTIONS, create_fine_tune
from studyapp.runs.finetune_methods import create_methods
from studyapp.runs.launch import create_run
from studyapp.runs.progress import fine_tune_progress, run_progress, runs_progress
from studyapp.runs.sweeps import launch_sweep, presets
from studyapp.runs.workers import in_background
from studyapp.staff import permission_refusal


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
            "id",
            "label",
            "method",
            "prompt_set",
            "concepts",
            "seed_indices",
            "steps",
            "params",
            "sweep",
            "state",
            "error",
            "images_total",
            "created",
            "started",
            "finished",
            "progress",
        ]
        read_only_fields = ["params", "state", "error", "images_total", "created", "started", "finished"]

    def get_progress(self, run) -> dict:
        known = self.context.get("progress", {}).get(run.pk)
        return (known or run_progress(run)).as_dict()

    def create(self, data):
        try:
            with in_background():  # without a broker, generated after the response rather than before it
                return create_run(
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

    required_permissions = {"GET": ["studyapp.view_generationrun"], "POST": ["studyapp.add_generationrun"]}

    queryset = GenerationRun.objects.select_related("method", "prompt_set", "sweep").prefetch_related("concepts")
    serializer_class = RunSerializer

    def get_serializer(self, *args, **kwargs):
        if kwargs.get("many") and args:
            listed = list(args[0])  # the progress of every listed run, in a fixed number of queries
            kwargs["context"] = {**self.get_serializer_context(), "progress": runs_progress(listed)}
            args = (listed, *args[1:])
        return super().get_serializer(*args, **kwargs)


class RunDetail(generics.RetrieveAPIView):
    required_permissions = {"GET": ["studyapp.view_generationrun"]}

    queryset = RunList.queryset
    serializer_class = RunSerializer


class RunAction(APIView):
    """POST cancel, resume or requeue-failed; answers with the run's progress afterwards."""

    required_permissions = {"POST": ["studyapp.change_generationrun"]}

    @extend_schema(
        operation_id="runs_action",
        request=None,
        responses=inline_serializer(
            "RunActionResult", {"queued_batches": serializers.IntegerField(), "progress": serializers.DictField()}
        ),
    )
    def post(self, request, pk: int, action: str):
        run = generics.get_object_or_404(GenerationRun, pk=pk)
        try:
            chosen = run_action(action)
        except UnknownRunAction as exc:
            return Response({"detail": str(exc)}, status=404)
        outcome = perform(chosen, [run])
        if outcome.refused:
            return Response({"detail": outcome.refused[0]}, status=status.HTTP_409_CONFLICT)
        return Response({"queued_batches": outcome.queued_batches, "progress": run_progress(run).as_dict()})


class SweepSerializer(serializers.ModelSerializer):
    prompt_set = serializers.SlugRelatedField(slug_field="slug", queryset=PromptSet.objects.all())
    concepts = serializers.SlugRelatedField(slug_field="slug", queryset=Concept.objects.all(), many=True)
    seed_indices = serializers.JSONField()
    grid = serializers.JSONField(required=False)
    runs = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Sweep
        fields = [
            "id",
            "name",
            "sampler",
            "preset",
            "grid",
            "base_model",
            "personalization",
            "steps",
            "prompt_set",
            "concepts",
            "seed_indices",
            "created",
            "runs",
        ]
        read_only_fields = ["created"]

    def create(self, data):
        concepts = data.pop("concepts")
        try:
            with transaction.atomic(), in_background():
                sweep = Sweep.objects.create(**data)
                sweep.concepts.set(concepts)
                launch_sweep(sweep)
        except DjangoValidationError as exc:
            raise as_api_error(exc) from None
        return sweep


class SweepList(generics.ListCreateAPIView):
    """Sweeps; POST creates one method and one run per grid point, all validated before anything is queued."""

    required_permissions = {"GET": ["studyapp.view_sweep"], "POST": ["studyapp.add_sweep"]}

    queryset = Sweep.objects.select_related("prompt_set").prefetch_related("concepts", "runs")
    serializer_class = SweepSerializer


class SweepDetail(generics.RetrieveAPIView):
    required_permissions = {"GET": ["studyapp.view_sweep"]}

    queryset = SweepList.queryset
    serializer_class = SweepSerializer


class Presets(APIView):
    """The named sweep grids, by sampler."""

    required_permissions = {"GET": ["studyapp.view_generationrun"]}

    @extend_schema(operation_id="runs_sweep_presets", responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response(presets(), status=status.HTTP_200_OK)


class FineTuneSerializer(serializers.ModelSerializer):
    concept = serializers.SlugRelatedField(slug_field="slug", queryset=Concept.objects.all())
    method = serializers.CharField()  # checked with the hyper-parameters, so an unknown one names the choices
    hyperparameters = serializers.JSONField(required=False)
    seed = serializers.IntegerField(required=False)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = FineTuneRun
        fields = [
            "id",
            "label",
            "concept",
            "base_model",
            "method",
            "hyperparameters",
            "seed",
            "prior_preservation",
            "state",
            "error",
            "output_path",
            "output_format",
            "manifest",
            "created",
            "started",
            "finished",
            "progress",
        ]
        read_only_fields = [
            "state",
            "error",
            "output_path",
            "output_format",
            "manifest",
            "created",
            "started",
            "finished",
        ]

    def get_progress(self, run) -> dict:
        return fine_tune_progress(run)

    def create(self, data):
        try:
            with in_background():  # without a broker, trained after the response rather than before it
                return create_fine_tune(**data)
        except DjangoValidationError as exc:
            raise as_api_error(exc) from None


class FineTuneList(generics.ListCreateAPIView):
    """Fine-tunes, newest first; POST validates one (settings, photos, base model) and queues it."""

    required_permissions = {"GET": ["studyapp.view_finetunerun"], "POST": ["studyapp.add_finetunerun"]}

    queryset = FineTuneRun.objects.select_related("concept")
    serializer_class = FineTuneSerializer


class FineTuneDetail(generics.RetrieveAPIView):
    required_permissions = {"GET": ["studyapp.view_finetunerun"]}

    queryset = FineTuneList.queryset
    serializer_class = FineTuneSerializer


class FineTuneAction(APIView):
    """POST cancel or resume, or methods (one per sampler over the finished result)."""

    required_permissions = {"POST": ["studyapp.change_finetunerun"]}

    @extend_schema(
        operation_id="fine_tunes_action",
        request=None,
        responses=inline_serializer(
            "FineTuneActionResult", {"methods": serializers.ListField(), "progress": serializers.DictField()}
        ),
    )
    def post(self, request, pk: int, action: str):
        run = generics.get_object_or_404(FineTuneRun.objects.select_related("concept"), pk=pk)
        if action == "methods":
            return self.make_methods(request, run)
        try:
            chosen = run_action(action, FINE_TUNE_ACTIONS)
        except UnknownRunAction as exc:
            return Response({"detail": f"{exc} (or methods)"}, status=404)
        outcome = perform(chosen, [run])
        if outcome.refused:
            return Response({"detail": outcome.refused[0]}, status=status.HTTP_409_CONFLICT)
        return Response({"methods": [], "progress": fine_tune_progress(run)})

    def make_methods(self, request, run):
        if not request.user.has_perm("studyapp.add_method"):
            return Response({"detail": permission_refusal(["studyapp.add_method"])}, status=403)
        try:
            made = create_methods(run)
        except DjangoValidationError as exc:
            return Response({"detail": " ".join(exc.messages)}, status=status.HTTP_409_CONFLICT)
        names = [method.name for method in made.created + made.existing]
        return Response({"methods": names, "progress": fine_tune_progress(run)})
