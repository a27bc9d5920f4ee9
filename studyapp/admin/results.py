"""The results side of the admin: analysis snapshots, and the study actions that exclude raters by rule,
freeze a snapshot or export the results."""

from django.contrib import admin, messages

from studyapp.models import AnalysisSnapshot
from studyapp.results import exports
from studyapp.results.analysis import study_results
from studyapp.results.exclusions import RulesError, apply_study_rules
from studyapp.results.snapshots import create_snapshot

RESULTS_ACTIONS = [
    "apply_exclusion_rules_action",
    "snapshot_action",
    "export_results_csv",
    "export_results_json",
    "export_answers_csv",
    "export_answers_json",
]


class StudyResultsActions:
    """Mixed into the study admin: the actions of RESULTS_ACTIONS."""

    @admin.action(description="Exclude raters that break the study's exclusion rules")
    def apply_exclusion_rules_action(self, request, queryset):
        for study in queryset:
            try:
                flagged = apply_study_rules(study)
            except RulesError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self.message_user(request, f"{study.slug}: {len(flagged)} rater(s) excluded by the rules", messages.SUCCESS)

    @admin.action(description="Freeze an analysis snapshot of the selected studies")
    def snapshot_action(self, request, queryset):
        for study in queryset:
            try:
                snapshot = create_snapshot(study, label="admin")
            except RulesError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self.message_user(request, f"{study.slug}: snapshot {snapshot.pk} ({snapshot.answer_count} answers)")

    def _export(self, request, queryset, what: str, file_format: str):
        if queryset.count() != 1:
            self.message_user(request, f"Export: expected one study, got {queryset.count()}", messages.ERROR)
            return None
        study = queryset.get()
        if what == "answers":
            return exports.answers_response(study, file_format)
        try:
            return exports.results_response(study, study_results(study), file_format)
        except RulesError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None

    @admin.action(description="Export the win-rate table as CSV (one study)")
    def export_results_csv(self, request, queryset):
        return self._export(request, queryset, "results", "csv")

    @admin.action(description="Export the results as JSON (one study)")
    def export_results_json(self, request, queryset):
        return self._export(request, queryset, "results", "json")

    @admin.action(description="Export the raw answers as CSV (one study)")
    def export_answers_csv(self, request, queryset):
        return self._export(request, queryset, "answers", "csv")

    @admin.action(description="Export the raw answers as JSON (one study)")
    def export_answers_json(self, request, queryset):
        return self._export(request, queryset, "answers", "json")


@admin.register(AnalysisSnapshot)
class AnalysisSnapshotAdmin(admin.ModelAdmin):
    list_display = ["study", "label", "answer_count", "data_hash", "created"]
    readonly_fields = ["data_hash", "settings", "results", "answer_count", "created"]
