"""REST API for a study's results, exports and snapshots (staff only, session or token)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from studyapp.models import AnalysisSnapshot, Study
from studyapp.results import exports
from studyapp.results.analysis import StudyResults, settings_overrides, study_results
from studyapp.results.report import results_json
from studyapp.results.snapshots import create_snapshot, snapshot_matches_current_data

SETTING_PARAMETERS = [
    OpenApiParameter(
        "procedure",
        str,
        enum=["crossed", "bootstrap"],
        description="One procedure gives the interval, the p-value and the mark; default crossed.",
    ),
    OpenApiParameter(
        "random_factors",
        str,
        description="Comma-separated factors treated as random (rater, subject, prompt, or none); "
        "default: all but the study's fixed_factors.",
    ),
    OpenApiParameter("multiplicity", str, enum=["holm", "bonferroni"], description="Family-wise adjustment."),
    OpenApiParameter("n_resamples", int, description="Resamples, 1 to 20000 (default: RESULTS_BOOTSTRAP_RESAMPLES)."),
    OpenApiParameter("seed", int, description="Resampling seed (default: the study's random seed)."),
    OpenApiParameter("confidence_level", float, description="Default 0.95."),
    OpenApiParameter("alpha", float, description="Family-wise error rate; default 0.05."),
    OpenApiParameter("weights", str, enum=["multinomial", "poisson"], description="Bootstrap weights."),
    OpenApiParameter("ties", str, enum=["half", "davidson"], description="Ties in the Bradley-Terry fit."),
]


def _study_results(study: Study, request) -> StudyResults:
    try:
        return study_results(study, settings_overrides(request.query_params))
    except ValueError as exc:  # SettingsError or RulesError
        raise ValidationError({"detail": str(exc)}) from None


class SnapshotSerializer(serializers.ModelSerializer):
    label = serializers.CharField(max_length=200, required=False, allow_blank=True)

    class Meta:
        model = AnalysisSnapshot
        fields = ["id", "study", "label", "data_hash", "answer_count", "settings", "created"]
        read_only_fields = ["study", "data_hash", "answer_count", "settings", "created"]


class SnapshotDetailSerializer(SnapshotSerializer):
    matches_current_data = serializers.SerializerMethodField()

    class Meta(SnapshotSerializer.Meta):
        fields = [*SnapshotSerializer.Meta.fields, "matches_current_data", "results"]
        read_only_fields = [*SnapshotSerializer.Meta.fields, "results"]

    def get_matches_current_data(self, snapshot) -> bool:
        return snapshot_matches_current_data(snapshot)


class StudyResultsView(APIView):
    """Win rates with intervals, tests, Bradley-Terry, agreement, rater quality and the metrics,
    with and without exclusions, plus the settings and data hash they came from (null for NaN)."""

    required_permissions = {"GET": ["studyapp.view_study"]}

    @extend_schema(parameters=SETTING_PARAMETERS, responses={200: OpenApiTypes.OBJECT})
    def get(self, request, pk: int):
        study = get_object_or_404(Study, pk=pk)
        return Response(results_json(study, _study_results(study, request)))


class IgnoreAcceptHeader(BaseContentNegotiation):
    """Exports choose their own format from the URL, whatever the client accepts."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class StudyExport(APIView):
    """results.csv / results.json (the win-rate table with settings) and answers.csv / answers.json
    (raw answers, pseudonymised raters, streamed)."""

    required_permissions = {"GET": ["studyapp.export_study"]}

    content_negotiation_class = IgnoreAcceptHeader

    @extend_schema(
        parameters=SETTING_PARAMETERS,
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR),
            (200, "text/x-tex"): OpenApiResponse(OpenApiTypes.STR),
            (200, "text/markdown"): OpenApiResponse(OpenApiTypes.STR),
            (200, "application/json"): OpenApiTypes.OBJECT,
        },
    )
    def get(self, request, pk: int, what: str, file_format: str):
        study = get_object_or_404(Study, pk=pk)
        try:
            exports.check_export(what, file_format)
        except ValueError as exc:
            raise NotFound(str(exc)) from None
        if what == "answers":
            return exports.answers_response(study, file_format)
        return exports.results_response(study, _study_results(study, request), file_format)


class SnapshotList(generics.ListCreateAPIView):
    """A study's analysis snapshots; POST freezes the current results (optional "label")."""

    required_permissions = {"GET": ["studyapp.view_study"], "POST": ["studyapp.add_analysissnapshot"]}

    serializer_class = SnapshotSerializer

    def get_queryset(self):
        return AnalysisSnapshot.objects.filter(study_id=self.kwargs["pk"]).defer("results")

    @extend_schema(request=SnapshotSerializer, responses={201: SnapshotDetailSerializer})
    def post(self, request, pk: int):
        study = get_object_or_404(Study, pk=pk)
        serializer = SnapshotSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            snapshot = create_snapshot(
                study,
                label=serializer.validated_data.get("label", ""),
                overrides=settings_overrides(request.query_params),
            )
        except ValueError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(SnapshotDetailSerializer(snapshot).data, status=201)


class SnapshotDetail(generics.RetrieveAPIView):
    """One snapshot exactly as frozen, and whether the study's answers still match its data hash."""

    required_permissions = {"GET": ["studyapp.view_study"]}

    queryset = AnalysisSnapshot.objects.select_related("study")
    serializer_class = SnapshotDetailSerializer
