"""Admin for generation runs, sweeps, fine-tunes, their images and scores: validated before anything is
queued, with progress and the run actions of studyapp.runs.actions."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from studyapp.admin.display import thumbnail
from studyapp.catalog.methods import sampler_names
from studyapp.models import FineTuneRun, GeneratedImage, GenerationBatch, GenerationRun, MetricScore, Sweep
from studyapp.runs.actions import RUN_ACTIONS, RunAction, perform
from studyapp.runs.finetune import validate_fine_tune
from studyapp.runs.finetune_launch import FINE_TUNE_ACTIONS, queue_fine_tune
from studyapp.runs.launch import queue_run
from studyapp.runs.progress import RunProgress, run_progress, runs_progress
from studyapp.runs.sweeps import launch_sweep, presets, validate_sweep
from studyapp.runs.validation import validate_run
from studyapp.runs.workers import gpu_worker_status, in_background


def progress_bar(run: GenerationRun, progress: RunProgress | None = None) -> str:
    progress = progress or run_progress(run)
    return format_html(
        '<progress max="{}" value="{}"></progress> {} / {} · {}{}',
        progress.total or 1,
        progress.done,
        progress.done,
        progress.total,
        progress.state,
        f" · {progress.images_per_second:.2f} images/s" if progress.images_per_second else "",
    )


class RunForm(forms.ModelForm):
    class Meta:
        model = GenerationRun
        fields = ["label", "method", "prompt_set", "concepts", "seed_indices", "steps"]
        help_texts = {"steps": "Denoising steps; the method's own steps are a good default."}

    def clean(self):
        data = super().clean()
        if self.instance.pk or self.errors:
            return data
        try:
            self.instance.params = validate_run(
                data["method"],
                data.get("prompt_set"),
                list(data.get("concepts") or []),
                data.get("seed_indices"),
                data.get("steps"),
            )
        except ValidationError as exc:
            raise ValidationError(exc.message_dict) from None
        return data


class BatchInline(admin.TabularInline):
    model = GenerationBatch
    fields = ["concept", "prompt", "state", "attempts", "worker", "heartbeat", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


def admin_action(action: RunAction):
    """The admin's form of one entry of RUN_ACTIONS, applied to the selected runs."""

    def apply(modeladmin, request, queryset):
        with in_background():
            outcome = perform(action, queryset)
        modeladmin.message_user(request, outcome.message, messages.WARNING if outcome.refused else messages.SUCCESS)

    apply.__name__ = action.name.replace("-", "_")
    return admin.action(description=action.label)(apply)


@admin.action(description="Compute the metrics (CLIP-IS, CLIP-TS, DINO-IS) of the selected runs")
def score_runs(modeladmin, request, queryset):
    from studyapp.tasks import score_run

    for run in queryset:
        score_run.delay_on_commit(run.pk)
    modeladmin.message_user(request, f"Scoring queued for {queryset.count()} run(s) on the cpu queue.")


@admin.register(GenerationRun)
class GenerationRunAdmin(admin.ModelAdmin):
    form = RunForm
    list_display = ["__str__", "method", "prompt_set", "sweep", "progress", "page", "created"]
    list_filter = ["state", "method", "sweep"]
    filter_horizontal = ["concepts"]
    actions = [*(admin_action(action) for action in RUN_ACTIONS.values()), score_runs]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("method", "prompt_set", "sweep")

    def get_inlines(self, request, obj=None):
        return [BatchInline] if obj else []

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ["state", "error", "started", "finished"]
        return [
            "progress",
            "page",
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
            "started",
            "finished",
        ]

    def get_fields(self, request, obj=None):
        if obj is None:
            return RunForm.Meta.fields
        return ["label", *self.get_readonly_fields(request, obj)]

    @admin.display(description="progress")
    def progress(self, obj):
        return progress_bar(obj)

    @admin.display(description="run page")
    def page(self, obj):
        return format_html('<a href="{}">live progress</a>', reverse("run-detail", args=[obj.pk]))

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if not change:
            with in_background():
                queue_run(form.instance)  # tasks leave (or the thread starts) when the admin's transaction commits
            self.message_user(request, gpu_worker_status().launched(1))


def preset_choices():
    named = [(name, f"{name} ({len(grid)} points)") for name, grid in presets().items()]
    return [("", "- (give the grid below)"), *named]


def sampler_choices():
    return [(name, name) for name in sampler_names()]


class SweepForm(forms.ModelForm):
    sampler = forms.ChoiceField(choices=sampler_choices)
    preset = forms.ChoiceField(choices=preset_choices, required=False)

    class Meta:
        model = Sweep
        fields = [
            "name",
            "sampler",
            "preset",
            "grid",
            "prompt_set",
            "concepts",
            "seed_indices",
            "steps",
            "base_model",
            "personalization",
        ]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        fields = {name: data.get(name) for name in self.Meta.fields if name != "concepts"}
        try:
            validate_sweep(Sweep(**fields), list(data.get("concepts") or []))
        except ValidationError as exc:
            raise ValidationError(exc.message_dict) from None
        return data


@admin.register(Sweep)
class SweepAdmin(admin.ModelAdmin):
    form = SweepForm
    list_display = ["name", "sampler", "preset", "prompt_set", "run_count", "created"]
    filter_horizontal = ["concepts"]

    def get_readonly_fields(self, request, obj=None):
        return [*SweepForm.Meta.fields, "run_links"] if obj else []

    def get_fields(self, request, obj=None):
        return [*SweepForm.Meta.fields, "run_links"] if obj else SweepForm.Meta.fields

    @admin.display(description="runs")
    def run_count(self, obj):
        return obj.runs.count()

    @admin.display(description="runs")
    def run_links(self, obj):
        sweep_runs = list(obj.runs.select_related("method"))
        progress = runs_progress(sweep_runs)
        rows = ((reverse("run-detail", args=[run.pk]), run, progress_bar(run, progress[run.pk])) for run in sweep_runs)
        return format_html("<ul>{}</ul>", format_html_join("", '<li><a href="{}">{}</a> {}</li>', rows))

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if not change:
            with in_background():
                made = launch_sweep(form.instance)
            self.message_user(request, gpu_worker_status().launched(len(made)))


class FineTuneForm(forms.ModelForm):
    method = forms.ChoiceField(choices=FineTuneRun.TrainingMethod.choices)

    class Meta:
        model = FineTuneRun
        fields = ["label", "concept", "base_model", "method", "hyperparameters", "seed", "prior_preservation"]
        help_texts = {
            "hyperparameters": 'JSON, e.g. {"steps": 400, "learning_rate": 5e-6, "checkpoint_every": 100}; '
            "missing values take the method's defaults.",
        }

    def clean(self):
        data = super().clean()
        if self.instance.pk or self.errors:
            return data
        fields = {name: data.get(name) for name in self.Meta.fields}
        fields["hyperparameters"] = fields["hyperparameters"] or {}
        fields["base_model"] = fields["base_model"] or ""
        try:
            data["hyperparameters"] = validate_fine_tune(FineTuneRun(**fields))
        except ValidationError as exc:
            raise ValidationError(exc.message_dict) from None
        return data


@admin.register(FineTuneRun)
class FineTuneRunAdmin(admin.ModelAdmin):
    form = FineTuneForm
    list_display = ["__str__", "concept", "method", "progress", "page", "created"]
    list_filter = ["state", "method", "concept"]
    list_select_related = ["concept"]
    actions = [admin_action(action) for action in FINE_TUNE_ACTIONS.values()]

    def get_fields(self, request, obj=None):
        return FineTuneForm.Meta.fields if obj is None else self.get_readonly_fields(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [
            "progress",
            "page",
            *FineTuneForm.Meta.fields,
            "state",
            "error",
            "output_path",
            "output_format",
            "attempts",
            "worker",
            "heartbeat",
            "resumed_from",
            "started",
            "finished",
        ]

    @admin.display(description="progress")
    def progress(self, obj):
        total = obj.total_steps or 1
        loss = f" · loss {obj.loss:.4f}" if obj.loss is not None else ""
        return format_html(
            '<progress max="{}" value="{}"></progress> step {} / {} · {}{}',
            total,
            obj.step,
            obj.step,
            obj.total_steps,
            obj.state,
            loss,
        )

    @admin.display(description="run page")
    def page(self, obj):
        return format_html('<a href="{}">live progress</a>', reverse("fine-tune-detail", args=[obj.pk]))

    def save_model(self, request, obj, form, change):
        if not change:
            obj.total_steps = obj.hyperparameters.get("steps", 0)
        super().save_model(request, obj, form, change)
        if not change:
            with in_background():
                queue_fine_tune(obj)  # its task leaves (or the thread starts) when the admin's transaction commits
            self.message_user(request, f"Fine-tune queued. {gpu_worker_status().message}")

    def response_add(self, request, obj, post_url_continue=None):
        return redirect("fine-tune-detail", pk=obj.pk)


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
