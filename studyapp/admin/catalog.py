"""Admin for the catalog: concepts with their reference photos, prompt sets, methods."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Count

from studyapp.admin.display import thumbnail
from studyapp.catalog.images import check_image_bytes
from studyapp.catalog.importers import add_reference_image
from studyapp.catalog.methods import sampler_names, validate_method
from studyapp.models import Concept, Method, Prompt, PromptSet, ReferenceImage


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
        return (
            super()
            .get_queryset(request)
            .annotate(photo_total=Count("references", distinct=True), image_total=Count("images", distinct=True))
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
    return [("", "- (external method)"), *((name, name) for name in sampler_names())]


class MethodForm(forms.ModelForm):
    sampler = forms.ChoiceField(choices=sampler_choices, required=False)

    class Meta:
        model = Method
        fields = ["name", "description", "kind", "sampler", "params", "base_model", "personalization", "steps"]
        help_texts = {"params": 'JSON, e.g. {"w_s": 3.5}. Missing values take the paper\'s defaults.'}

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        method = Method(
            kind=data.get("kind"),
            sampler=data.get("sampler") or "",
            params=data.get("params"),
            base_model=data.get("base_model") or "",
            steps=data.get("steps"),
        )
        validate_method(method)  # its ValidationError names the field, so the form shows it there
        data["params"] = method.params
        return data


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
