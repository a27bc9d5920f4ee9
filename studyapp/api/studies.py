"""REST API for studies and their comparisons (staff only, session or token).

Authentication comes from REST_FRAMEWORK in settings (session and token); so does the permission
check: staff with the model permissions each view lists in required_permissions. Raters are
anonymous and never reach these views.
"""

from django.shortcuts import get_object_or_404
from rest_framework import generics, serializers

from studyapp.models import Comparison, Study


class ComparisonSerializer(serializers.ModelSerializer):
    method_a = serializers.SlugRelatedField(slug_field="name", read_only=True)
    method_b = serializers.SlugRelatedField(slug_field="name", read_only=True)
    method_a_id = serializers.IntegerField(read_only=True)
    method_b_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Comparison
        fields = ["id", "position", "method_a", "method_a_id", "method_b", "method_b_id"]


class StudySerializer(serializers.ModelSerializer):
    comparisons = ComparisonSerializer(many=True, read_only=True)

    class Meta:
        model = Study
        fields = [
            "id",
            "slug",
            "title",
            "state",
            "version",
            "previous_version",
            "ratings_per_pair",
            "pairs_per_rater",
            "exclusion_rules",
            "fixed_factors",
            "random_seed",
            "created",
            "published",
            "comparisons",
        ]


_studies = Study.objects.prefetch_related("comparisons__method_a", "comparisons__method_b")


class StudyList(generics.ListAPIView):
    """Studies, newest first, with their comparisons."""

    required_permissions = {"GET": ["studyapp.view_study"]}

    queryset = _studies
    serializer_class = StudySerializer


class StudyDetail(generics.RetrieveAPIView):
    required_permissions = {"GET": ["studyapp.view_study"]}

    queryset = _studies
    serializer_class = StudySerializer


class ComparisonList(generics.ListAPIView):
    """The declared comparisons of a study (method A against method B; A's wins are counted)."""

    required_permissions = {"GET": ["studyapp.view_study"]}

    serializer_class = ComparisonSerializer

    def get_queryset(self):
        study = get_object_or_404(Study, pk=self.kwargs["pk"])
        return study.comparisons.select_related("method_a", "method_b").order_by("position", "id")
