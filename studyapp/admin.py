"""The admin: where a researcher sets up concepts, prompts, methods, runs and studies."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.utils.html import format_html

from studyapp.images import check_image_bytes
from studyapp.importers import add_reference_image
from studyapp.models import (
    AnalysisSnapshot,
    Answer,
    Assignment,
    Comparison,
    Concept,
    GeneratedImage,
    GenerationRun,
    MetricScore,
    Method,
    Pair,
    Prompt,
    PromptSet,
    Rater,
    ReferenceImage,
    Study,
)


def thumbnail(file_field, size: int = 96) -> str:
    if not file_field:
        return "-"
    return format_html('<img src="{}" style="max-width:{}px;max-height:{}px" alt="">', file_field.url, size, size)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultiplePhotoField(forms.FileField):
    """Several photos at once; each is decoded and checked before anything is saved."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, (list, tuple)) else ([data] if data else [])
        checked, errors = [], []
        for upload in files:
            try:
                checked.append((upload.name, check_image_bytes(upload.read(), name=upload.name)))
            except ValidationError as exc:
                errors.extend(exc.messages)
        if errors:
            raise ValidationError(errors)
        if self.required and not checked:
            raise ValidationError("Choose at least one photo.")
        return checked


class ConceptForm(forms.ModelForm):
    photos = MultiplePhotoField(
        required=False,
        help_text="Reference photos (JPEG, PNG or WebP). Checked for damage and size; EXIF rotation is applied.",
    )

    class Meta:
        model = Concept
        fields = ["slug", "concept_token", "superclass", "kind"]


class ReferenceImageInline(admin.TabularInline):
    model = ReferenceImage
    fields = ["preview", "original_name", "width", "height"]
    readonly_fields = fields
    extra = 0
    can_delete = True
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="photo")
    def preview(self, obj):
        return thumbnail(obj.image)


@admin.register(Concept)
class ConceptAdmin(admin.ModelAdmin):
    form = ConceptForm
    list_display = ["slug", "concept_token", "superclass", "kind", "photo_count", "image_count"]
    list_filter = ["kind", "superclass"]
    search_fields = ["slug", "superclass"]
    inlines = [ReferenceImageInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            photo_total=Count("references", distinct=True), image_total=Count("images", distinct=True)
        )

    @admin.display(description="photos", ordering="photo_total")
    def photo_count(self, obj):
        return obj.photo_total

    @admin.display(description="generated images", ordering="image_total")
    def image_count(self, obj):
        return obj.image_total

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        added = [add_reference_image(form.instance, name, checked) for name, checked in form.cleaned_data["photos"]]
        skipped = added.count(None)
        if skipped:
            self.message_user(request, f"{skipped} photo(s) were already there and were skipped.")


class PromptInline(admin.TabularInline):
    model = Prompt
    extra = 1
    fields = ["position", "template"]


@admin.register(PromptSet)
class PromptSetAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "concept_kind", "prompt_count"]
    inlines = [PromptInline]
    prepopulated_fields = {"slug": ["name"]}

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(prompt_total=Count("prompts"))

    @admin.display(description="prompts", ordering="prompt_total")
    def prompt_count(self, obj):
        return obj.prompt_total


def sampler_choices():
    from generation.samplers import SAMPLER_NAMES

    return [("", "- (external method)")] + [(name, name) for name in SAMPLER_NAMES]


class MethodForm(forms.ModelForm):
    sampler = forms.ChoiceField(choices=sampler_choices, required=False)

    class Meta:
        model = Method
        fields = ["name", "description", "kind", "sampler", "params", "base_model", "personalization", "steps"]
        help_texts = {"params": "JSON, e.g. {\"w_s\": 3.5}. Missing values take the paper's defaults."}


@admin.register(Method)
class MethodAdmin(admin.ModelAdmin):
    form = MethodForm
    list_display = ["name", "kind", "sampler", "params", "image_count"]
    list_filter = ["kind", "sampler"]
    search_fields = ["name", "description"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(image_total=Count("images"))

    @admin.display(description="images", ordering="image_total")
    def image_count(self, obj):
        return obj.image_total


@admin.register(GenerationRun)
class GenerationRunAdmin(admin.ModelAdmin):
    list_display = ["__str__", "method", "prompt_set", "state", "images_done", "images_total", "created"]
    list_filter = ["state", "method"]
    filter_horizontal = ["concepts"]
    readonly_fields = ["error", "started", "finished"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("method", "prompt_set").annotate(done=Count("images"))

    @admin.display(description="done", ordering="done")
    def images_done(self, obj):
        return obj.done


@admin.register(GeneratedImage)
class GeneratedImageAdmin(admin.ModelAdmin):
    list_display = ["preview", "method", "concept", "prompt", "seed_index", "seed", "unet_evaluations", "wall_time"]
    list_filter = ["method", "concept"]
    list_select_related = ["method", "concept", "prompt"]
    readonly_fields = [f.name for f in GeneratedImage._meta.fields] + ["preview"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="image")
    def preview(self, obj):
        return thumbnail(obj.file, 64)


@admin.register(MetricScore)
class MetricScoreAdmin(admin.ModelAdmin):
    list_display = ["image", "metric", "value", "model_id"]
    list_filter = ["metric"]
    list_select_related = ["image__method", "image__concept", "image__prompt"]


class ComparisonInline(admin.TabularInline):
    model = Comparison
    extra = 1
    fields = ["position", "method_a", "method_b"]


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "version", "state", "pair_count", "rater_count", "answer_count"]
    list_filter = ["state"]
    prepopulated_fields = {"slug": ["title"]}
    inlines = [ComparisonInline]
    readonly_fields = ["open_link_token", "published"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            pair_total=Count("pairs", distinct=True),
            rater_total=Count("raters", distinct=True),
            answer_total=Count("pairs__answers", distinct=True),
        )

    @admin.display(description="pairs", ordering="pair_total")
    def pair_count(self, obj):
        return obj.pair_total

    @admin.display(description="raters", ordering="rater_total")
    def rater_count(self, obj):
        return obj.rater_total

    @admin.display(description="answers", ordering="answer_total")
    def answer_count(self, obj):
        return obj.answer_total


@admin.register(Pair)
class PairAdmin(admin.ModelAdmin):
    list_display = ["id", "study", "kind", "comparison", "concept", "seed_index", "ratings_count", "target_ratings", "in_overlap"]
    list_filter = ["study", "kind", "in_overlap"]
    list_select_related = ["study", "comparison__method_a", "comparison__method_b", "concept"]
    raw_id_fields = ["image_a", "image_b"]


@admin.register(Rater)
class RaterAdmin(admin.ModelAdmin):
    list_display = ["id", "study", "source", "external_id", "answer_count", "completed", "excluded"]
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


@admin.register(AnalysisSnapshot)
class AnalysisSnapshotAdmin(admin.ModelAdmin):
    list_display = ["study", "label", "answer_count", "data_hash", "created"]
    readonly_fields = ["data_hash", "settings", "results", "answer_count", "created"]
