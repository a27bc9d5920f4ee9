"""Admin for raters, their assignments and answers (answers are evidence: they cannot be edited)."""

from django.contrib import admin
from django.db.models import Count

from studyapp.models import Answer, Assignment, Rater


@admin.register(Rater)
class RaterAdmin(admin.ModelAdmin):
    list_display = ["id", "study", "source", "external_id", "answer_count", "completed", "excluded", "exclusion_reason"]
    list_filter = ["study", "source", "excluded"]
    list_editable = ["excluded"]
    search_fields = ["external_id"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(answer_total=Count("answers"))

    @admin.display(description="answers", ordering="answer_total")
    def answer_count(self, obj):
        return obj.answer_total


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["rater", "pair", "position", "state", "left_is_a", "expires"]
    list_filter = ["state"]
    raw_id_fields = ["rater", "pair"]


@admin.register(Answer)
class AnswerAdmin(admin.ModelAdmin):
    list_display = ["id", "rater", "pair", "text", "image", "overall", "left_is_a", "response_ms", "submitted"]
    list_filter = ["pair__study"]
    raw_id_fields = ["rater", "pair", "assignment"]

    def has_change_permission(self, request, obj=None):
        return False  # answers are evidence: exclude raters instead of editing what they said
