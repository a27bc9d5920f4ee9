"""Admin for study design: studies with their comparisons, the set-up page (pairs, planner, publishing),
and the pairs built for them."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from studyapp.admin.display import thumbnail
from studyapp.admin.results import RESULTS_ACTIONS, StudyResultsActions
from studyapp.models import QUESTIONS, Comparison, Method, Pair, Study
from studyapp.rating.admission import MAX_INVITES, PROLIFIC_ID, PROLIFIC_QUERY, invite_query, make_invites
from studyapp.rating.monitor import collection_status
from studyapp.results.analysis import study_results
from studyapp.results.exports import csv_lines
from studyapp.studies.check_images import CHECK_METHODS
from studyapp.studies.checks import rater_checks
from studyapp.studies.freeze import DESIGN_FIELDS, StudyFrozen
from studyapp.studies.pairs import slot_coverage
from studyapp.studies.planner import PlannerForm, pilot_components, study_plan, study_random_factors
from studyapp.studies.publishing import build_study_pairs, close, new_version, publish


class ComparisonInline(admin.TabularInline):
    model = Comparison
    extra = 1
    fields = ["position", "method_a", "method_b"]
    verbose_name_plural = "comparisons (method A against method B; A's wins are counted)"

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name in ("method_a", "method_b"):
            kwargs["queryset"] = Method.objects.exclude(name__in=CHECK_METHODS)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) and not (obj and obj.is_frozen)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and not (obj and obj.is_frozen)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not (obj and obj.is_frozen)


STUDY_FORM_DESIGN_FIELDS = [name.removesuffix("_id") for name in DESIGN_FIELDS]
# The design fields of the "Design" section (the questions and rater texts have sections of their own).
DESIGN_FIELDS_SHOWN = [
    "ratings_per_pair",
    "overlap_fraction",
    "overlap_ratings",
    "pairs_per_rater",
    "gold_rate",
    "attention_rate",
    "display_size",
    "random_seed",
    "exclusion_rules",
    "fixed_factors",
]


# Who may rate; like the finishing fields, these can be changed on a published study.
ADMISSION_FIELDS = ["accept_open_link", "accept_invites", "accept_prolific", "prolific_study_id"]


class StudyForm(forms.ModelForm):
    completion_url = forms.URLField(
        required=False, assume_scheme="https", help_text="Where a rater goes when done, e.g. Prolific's completion URL."
    )
    screenout_url = forms.URLField(
        required=False, assume_scheme="https", help_text="Where a rater goes after failing attention checks."
    )

    class Meta:
        model = Study
        fields = [
            "title",
            "slug",
            *DESIGN_FIELDS_SHOWN,
            "question_text",
            "question_image",
            "question_overall",
            "consent_text",
            "instructions",
            "completion_code",
            "completion_url",
            "screenout_url",
            "lease_seconds",
            *ADMISSION_FIELDS,
        ]

    def clean(self):
        cleaned = super().clean()
        study_id = (cleaned.get("prolific_study_id") or "").strip().lower()
        if study_id and not PROLIFIC_ID.fullmatch(study_id):
            self.add_error("prolific_study_id", f"expected Prolific's 24 hex characters, got {study_id!r}")
        elif cleaned.get("accept_prolific") and not study_id:
            self.add_error("prolific_study_id", "needed to accept Prolific participants (links must carry it)")
        cleaned["prolific_study_id"] = study_id
        return cleaned


def _build(study: Study) -> str:
    return "built " + build_study_pairs(study).summary()


def _publish(study: Study) -> str:
    return "published with " + publish(study).summary()


def _close(study: Study) -> str:
    close(study)
    return "closed: data collection has ended"


def _new_version(study: Study) -> str:
    return f"new draft {new_version(study).slug!r}, ready to edit"


# action name -> (button label, what it does; returns the message shown)
STUDY_ACTIONS = {
    "build": ("Build pairs", _build),
    "publish": ("Publish (freezes the design)", _publish),
    "close": ("Close", _close),
    "new_version": ("New version", _new_version),
}

# Actions that cannot be undone: a page says what they do, and only its POST acts.
CONFIRMED_ACTIONS = {
    "publish": (
        "Publishing builds the pairs once more, freezes the design (its fields and comparisons can no longer "
        "change) and opens the study to raters. It cannot be undone; a new version can change the design."
    ),
    "close": (
        "Closing ends data collection: raters can no longer start or answer. Answers already given are kept. "
        "It cannot be undone; a closed study cannot be published again."
    ),
}


@admin.register(Study)
class StudyAdmin(StudyResultsActions, admin.ModelAdmin):
    form = StudyForm
    list_display = [
        "title",
        "slug",
        "version",
        "state",
        "pair_count",
        "rater_count",
        "answer_count",
        "setup_link",
        "results_link",
    ]
    list_filter = ["state"]
    prepopulated_fields = {"slug": ["title"]}
    inlines = [ComparisonInline]
    actions = ["build_pairs_action", "publish_action", "close_action", "new_version_action", *RESULTS_ACTIONS]
    always_read_only = ["state", "version", "previous_version", "open_link_token", "published", "results_link"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "title",
                    "slug",
                    "state",
                    "version",
                    "previous_version",
                    "open_link_token",
                    "published",
                    "results_link",
                ]
            },
        ),
        (
            "Design",
            {
                "fields": DESIGN_FIELDS_SHOWN,
                "description": "Frozen when the study is published. Pairs are built from the comparisons below.",
            },
        ),
        (
            "Questions (answers: 1, 2 or Can't decide)",
            {"fields": ["question_text", "question_image", "question_overall"]},
        ),
        ("Rater pages", {"fields": ["consent_text", "instructions"]}),
        (
            "Finishing (can be corrected after publishing)",
            {"fields": ["completion_code", "completion_url", "screenout_url", "lease_seconds"]},
        ),
        (
            "Who may rate (can be changed after publishing)",
            {
                "fields": ADMISSION_FIELDS,
                "description": "Limits on new raters per address and on raters at once are deployment settings "
                "(docs/rating.md).",
            },
        ),
    ]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.is_frozen:
            return self.always_read_only + [f for f in STUDY_FORM_DESIGN_FIELDS if f not in self.always_read_only]
        return self.always_read_only

    def save_model(self, request, obj, form, change):
        ignored = _ignored_design_edits(request, obj) if change and obj.is_frozen else []
        if ignored:
            self.message_user(
                request,
                f"{obj.slug} is {obj.state}: changes to {', '.join(ignored)} were not saved. "
                "Make a new version to change the design.",
                messages.WARNING,
            )
        super().save_model(request, obj, form, change)

    def get_prepopulated_fields(self, request, obj=None):
        return {} if obj is not None and obj.is_frozen else self.prepopulated_fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                pair_total=Count("pairs", distinct=True),
                rater_total=Count("raters", distinct=True),
                answer_total=Count("pairs__answers", distinct=True),
            )
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

    @admin.display(description="set-up")
    def setup_link(self, obj):
        return format_html('<a href="{}">set-up page</a>', reverse("admin:studyapp_study_setup", args=[obj.pk]))

    @admin.display(description="results")
    def results_link(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        return format_html('<a href="{}">results page</a>', reverse("study-results", args=[obj.pk]))

    # ------------------------------------------------------------------ actions on the list page

    def _run_on_each(self, request, queryset, action: str) -> None:
        for study in queryset:
            self._run(request, study, action)

    def _run(self, request, study: Study, action: str) -> bool:
        label, run = STUDY_ACTIONS[action]
        try:
            message = run(study)
        except (StudyFrozen, ValueError) as exc:
            self.message_user(request, f"{label} {study.slug}: {exc}", messages.ERROR)
            return False
        self.message_user(request, f"{study.slug}: {message}", messages.SUCCESS)
        return True

    @admin.action(description="Build pairs (regular, gold, attention) of the selected draft studies")
    def build_pairs_action(self, request, queryset):
        self._run_on_each(request, queryset, "build")

    @admin.action(description="Publish the selected studies (freezes their design)")
    def publish_action(self, request, queryset):
        return self._confirm_then_run(request, queryset, "publish")

    @admin.action(description="Close the selected studies to new raters")
    def close_action(self, request, queryset):
        return self._confirm_then_run(request, queryset, "close")

    def _confirm_then_run(self, request, queryset, action: str):
        """Django's pattern for actions that need a confirmation: the page re-posts the action with `confirmed`."""
        if request.POST.get("confirmed") == "yes":
            self._run_on_each(request, queryset, action)
            return None
        return self._confirmation_page(request, action, list(queryset), list_action=f"{action}_action")

    def _confirmation_page(self, request, action: str, studies: list[Study], list_action: str = ""):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"{STUDY_ACTIONS[action][0]}: are you sure?",
            "action": action,
            "label": STUDY_ACTIONS[action][0],
            "explanation": CONFIRMED_ACTIONS[action],
            "studies": studies,
            "list_action": list_action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/studyapp/study/confirm.html", context)

    @admin.action(description="Make a new editable version of the selected studies")
    def new_version_action(self, request, queryset):
        self._run_on_each(request, queryset, "new_version")

    # ------------------------------------------------------------------ the set-up page

    def get_urls(self):
        wrap = self.admin_site.admin_view
        own = [
            path("<path:object_id>/setup/", wrap(self.setup_view), name="studyapp_study_setup"),
            path("<path:object_id>/confirm/<slug:action>/", wrap(self.confirm_view), name="studyapp_study_confirm"),
            path("<path:object_id>/invites/", wrap(self.invites_view), name="studyapp_study_invites"),
            path("<path:object_id>/monitor.json", wrap(self.monitor_view), name="studyapp_study_monitor"),
        ]
        return [*own, *super().get_urls()]

    def _viewable_study(self, request, object_id) -> Study:
        study = self.get_object(request, object_id)
        if study is None:
            raise Http404(f"study {object_id!r}: no such study")
        if not self.has_view_or_change_permission(request, study):
            raise PermissionDenied
        return study

    def change_view(self, request, object_id, form_url="", extra_context=None):
        study = self.get_object(request, object_id)
        links = rater_links(request, study) if study is not None else {}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "links": links})

    def confirm_view(self, request, object_id, action):
        """GET: what publishing or closing does, and a button; POST (with its CSRF token): do it."""
        study = self._viewable_study(request, object_id)
        if action not in CONFIRMED_ACTIONS:
            raise Http404(f"confirm {action!r}: expected one of {', '.join(CONFIRMED_ACTIONS)}")
        if not self.has_change_permission(request, study):
            raise PermissionDenied
        if request.method == "POST":
            self._run(request, study, action)
            return redirect("admin:studyapp_study_setup", study.pk)
        return self._confirmation_page(request, action, [study])

    def invites_view(self, request, object_id):
        """POST `count`: that many new invite codes, downloaded as CSV (code, link)."""
        study = self._viewable_study(request, object_id)
        if not self.has_change_permission(request, study):
            raise PermissionDenied
        if request.method != "POST":
            return redirect("admin:studyapp_study_setup", study.pk)
        try:
            raters = make_invites(study, int(request.POST.get("count", "")))
        except ValueError:
            self.message_user(request, f"Invites: expected a whole number from 1 to {MAX_INVITES}.", messages.ERROR)
            return redirect("admin:studyapp_study_setup", study.pk)
        return _invites_csv(study, [r.external_id for r in raters], rater_links(request, study)["open"])

    def monitor_view(self, request, object_id):
        study = self._viewable_study(request, object_id)
        return JsonResponse(collection_status(study).as_dict())

    def setup_view(self, request, object_id):
        study = self._viewable_study(request, object_id)
        if request.method == "POST":
            return self._setup_post(request, study)
        planner = PlannerForm(request.GET or None, initial={n: f.initial for n, f in PlannerForm.base_fields.items()})
        arguments = planner.plan_arguments() if planner.is_bound and planner.is_valid() else {}
        pilot = _pilot_components(study) if arguments and planner.cleaned_data["use_pilot"] else None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Set up: {study}",
            "study": study,
            "planner": planner,
            "plan": study_plan(study, components=pilot, **arguments),
            "pilot_used": pilot is not None,
            "random_factors": study_random_factors(study),
            "coverage": [slot_coverage(c) for c in study.comparisons.select_related("method_a", "method_b")],
            "counts": _pair_counts(study),
            "can_change": self.has_change_permission(request, study),
            "actions": _actions_for(study),
            "confirmed_actions": CONFIRMED_ACTIONS,
            "links": rater_links(request, study),
            "monitor": collection_status(study),
            "max_invites": MAX_INVITES,
        }
        return TemplateResponse(request, "admin/studyapp/study/setup.html", context)

    def _setup_post(self, request, study):
        action = request.POST.get("action")
        if not self.has_change_permission(request, study):
            raise PermissionDenied
        if action not in STUDY_ACTIONS:
            known = ", ".join(STUDY_ACTIONS)
            self.message_user(request, f"unknown action: expected one of {known}, got {action!r}", messages.ERROR)
            return redirect("admin:studyapp_study_setup", study.pk)
        if action in CONFIRMED_ACTIONS:  # never straight from a button: through its confirmation page
            return redirect("admin:studyapp_study_confirm", study.pk, action)
        done = self._run(request, study, action)
        if done and action == "new_version":
            return redirect("admin:studyapp_study_change", Study.objects.get(previous_version=study).pk)
        return redirect("admin:studyapp_study_setup", study.pk)


def rater_links(request, study: Study) -> dict[str, str]:
    """The study's open link, and the same link as Prolific's study URL with the ids Prolific fills in."""
    open_link = request.build_absolute_uri(reverse("rater_entry", args=[study.open_link_token]))
    return {"open": open_link, "prolific": f"{open_link}?{PROLIFIC_QUERY}"}


def _invites_csv(study: Study, codes: list[str], open_link: str) -> HttpResponse:
    rows = ([code, f"{open_link}?{invite_query(code)}"] for code in codes)
    response = HttpResponse("".join(csv_lines(["code", "link"], rows)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-invites.csv"'
    return response


def _ignored_design_edits(request, study: Study) -> list[str]:
    """Design fields a posted form tried to change on a frozen study (e.g. one published while the form was open)."""
    stored, fields, ignored = Study.objects.get(pk=study.pk), StudyForm.base_fields, []
    for name in STUDY_FORM_DESIGN_FIELDS:
        if name not in request.POST or name not in fields:
            continue
        try:
            posted = fields[name].clean(request.POST[name])
        except ValidationError:
            posted = request.POST[name]
        current = getattr(stored, f"{name}_id" if name == "previous_version" else name)
        if getattr(posted, "pk", posted) != current:
            ignored.append(name)
    return ignored


def _actions_for(study: Study) -> list[tuple[str, str]]:
    allowed = {
        Study.State.DRAFT: ["build", "publish", "new_version"],
        Study.State.PUBLISHED: ["close", "new_version"],
        Study.State.CLOSED: ["new_version"],
    }[study.state]
    return [(action, STUDY_ACTIONS[action][0]) for action in allowed]


def _pair_counts(study: Study) -> dict:
    rows = study.pairs.values("kind").annotate(total=Count("id"), overlap=Count("id", filter=Q(in_overlap=True)))
    by_kind = {row["kind"]: row for row in rows}
    gold = {q: study.pairs.filter(kind=Pair.Kind.GOLD, expected__has_key=q).count() for q in QUESTIONS}
    return {
        "regular": by_kind.get(Pair.Kind.REGULAR, {}).get("total", 0),
        "overlap": by_kind.get(Pair.Kind.REGULAR, {}).get("overlap", 0),
        "gold": gold,
        "gold_total": by_kind.get(Pair.Kind.GOLD, {}).get("total", 0),
        "attention": by_kind.get(Pair.Kind.ATTENTION, {}).get("total", 0),
        "per_rater": rater_checks(study),
    }


@admin.register(Pair)
class PairAdmin(admin.ModelAdmin):
    """Pairs are built by the set-up page; here they can be looked at, not edited."""

    list_display = [
        "id",
        "study",
        "kind",
        "comparison",
        "concept",
        "seed_index",
        "ratings_count",
        "target_ratings",
        "in_overlap",
        "expected",
    ]
    list_filter = ["study", "kind", "in_overlap"]
    list_select_related = ["study", "comparison__method_a", "comparison__method_b", "concept"]
    raw_id_fields = ["image_a", "image_b"]
    readonly_fields = ["previews"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not (obj and obj.study.is_frozen)

    @admin.display(description="images (A, B)")
    def previews(self, obj):
        return format_html("{} {}", thumbnail(obj.image_a.file, 160), thumbnail(obj.image_b.file, 160))


def _pilot_components(study):
    """The variance components of the study's answers so far (None without decided answers)."""
    return pilot_components(row.estimate for row in study_results(study).primary.rows)
