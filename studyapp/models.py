"""The data model of the whole flow: concepts and prompts, methods and their images, studies and answers.

Constraints that keep the data honest live in the database (unique keys, check constraints), so a
second worker, a replayed request or a hand-written SQL script cannot break them either.
"""

import secrets

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone

# Sent by Comparison.delete() before Django opens the deletion's transaction, so that a guard which
# refuses (studyapp.studies.freeze) leaves the caller's transaction usable; pre_delete fires inside it.
deletion_requested = Signal()


def new_token() -> str:
    """An opaque, unguessable identifier for URLs a rater can see."""
    return secrets.token_urlsafe(18)


ANALYSIS_FACTORS = ("rater", "subject", "prompt")  # the crossed factors of every answer (studyapp.stats.FACTORS)


def validate_fixed_factors(value) -> None:
    """A list of distinct names from ANALYSIS_FACTORS."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"expected a list of factor names from {', '.join(ANALYSIS_FACTORS)}, got {value!r}")
    unknown = [v for v in value if v not in ANALYSIS_FACTORS]
    if unknown or len(set(value)) != len(value):
        raise ValidationError(
            f"expected distinct factor names from {', '.join(ANALYSIS_FACTORS)}, got {', '.join(map(repr, value))}"
        )


class Concept(models.Model):
    class Kind(models.TextChoices):
        LIVE = "live", "live subject"
        OBJECT = "object", "object"

    slug = models.SlugField(max_length=64, unique=True)
    concept_token = models.CharField(
        max_length=64, default="sks", help_text="The placeholder learnt in fine-tuning, e.g. 'sks' or '<dog>'."
    )
    superclass = models.CharField(max_length=64, help_text="The class word, e.g. 'dog' or 'stuffed animal'.")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def concept_phrase(self) -> str:
        return f"{self.concept_token} {self.superclass}"


def reference_upload_to(instance: "ReferenceImage", filename: str) -> str:
    return f"references/{instance.concept.slug}/{instance.content_hash[:16]}.{filename.rsplit('.', 1)[-1].lower()}"


class ReferenceImage(models.Model):
    concept = models.ForeignKey(Concept, on_delete=models.CASCADE, related_name="references")
    image = models.ImageField(upload_to=reference_upload_to)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the stored file.")
    original_name = models.CharField(max_length=255, blank=True)
    token = models.CharField(max_length=32, unique=True, default=new_token, editable=False)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["concept", "original_name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["concept", "content_hash"], name="reference_unique_per_concept"),
        ]

    def __str__(self) -> str:
        return f"{self.concept.slug}/{self.original_name or self.content_hash[:8]}"


class PromptSet(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    concept_kind = models.CharField(
        max_length=8,
        choices=Concept.Kind.choices,
        blank=True,
        help_text="Live or object subjects only; blank for prompts that suit any subject.",
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Prompt(models.Model):
    prompt_set = models.ForeignKey(PromptSet, on_delete=models.CASCADE, related_name="prompts")
    position = models.PositiveIntegerField()
    template = models.CharField(max_length=500, help_text="Text with a {concept} placeholder.")

    class Meta:
        ordering = ["prompt_set", "position"]
        constraints = [
            models.UniqueConstraint(fields=["prompt_set", "position"], name="prompt_unique_position"),
            models.UniqueConstraint(fields=["prompt_set", "template"], name="prompt_unique_template"),
            models.CheckConstraint(condition=Q(template__contains="{concept}"), name="prompt_has_placeholder"),
        ]

    def __str__(self) -> str:
        return self.template

    def clean(self) -> None:
        if "{concept}" not in self.template:
            raise ValidationError(
                {"template": "The template needs a {concept} placeholder, e.g. 'a {concept} in the snow'."}
            )

    def render(self, phrase: str) -> str:
        return self.template.replace("{concept}", phrase)

    def concept_prompt(self, concept: Concept) -> str:
        return self.render(concept.concept_phrase)

    def superclass_prompt(self, concept: Concept) -> str:
        """What raters read: the concept token replaced by the superclass word, as in the paper's study."""
        return self.render(concept.superclass)


class Method(models.Model):
    class Kind(models.TextChoices):
        SAMPLER = "sampler", "sampler on a fine-tuned model"
        EXTERNAL = "external", "external (images imported)"

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.SAMPLER)
    sampler = models.CharField(max_length=32, blank=True)
    params = models.JSONField(default=dict, blank=True, help_text="Sampler hyper-parameters; defaults are filled in.")
    base_model = models.CharField(
        max_length=500, blank=True, help_text="Hub id or local folder; blank uses the GENERATION_MODEL setting."
    )
    personalization = models.CharField(
        max_length=500,
        blank=True,
        help_text="Fine-tuned weights on top of the base model; '{concept}' is replaced by the concept slug.",
    )
    steps = models.PositiveIntegerField(default=50)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="sampler") & ~Q(sampler="")) | (Q(kind="external") & Q(sampler="")),
                name="method_sampler_matches_kind",
            ),
            models.CheckConstraint(condition=Q(steps__gte=1), name="method_steps_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    def personalization_for(self, concept: Concept) -> str:
        return self.personalization.replace("{concept}", concept.slug)


class WorkState(models.TextChoices):
    """Where a generation run, or one batch of it, stands."""

    QUEUED = "queued"
    RUNNING = "running"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DONE = "done"


class GenerationRun(models.Model):
    State = WorkState

    method = models.ForeignKey(Method, on_delete=models.PROTECT, related_name="runs")
    prompt_set = models.ForeignKey(PromptSet, on_delete=models.PROTECT, related_name="runs", null=True, blank=True)
    concepts = models.ManyToManyField(Concept, related_name="runs", blank=True)
    seed_indices = models.JSONField(default=list, help_text="Seed indices, e.g. [0, 1, 2, 3].")
    params = models.JSONField(default=dict, blank=True, help_text="The method's parameters when the run was made.")
    steps = models.PositiveIntegerField(default=50)
    label = models.CharField(max_length=200, blank=True)
    sweep = models.ForeignKey("Sweep", on_delete=models.SET_NULL, related_name="runs", null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    images_total = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.label or f"run {self.pk} ({self.method.name})"


def generated_upload_to(instance: "GeneratedImage", filename: str) -> str:
    # Files are named by content, never by method, so a file name cannot unblind a rater.
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "png"
    return f"generated/{instance.content_hash[:2]}/{instance.content_hash}.{extension}"


class GeneratedImage(models.Model):
    run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="images")
    method = models.ForeignKey(Method, on_delete=models.PROTECT, related_name="images")
    concept = models.ForeignKey(Concept, on_delete=models.PROTECT, related_name="images")
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="images")
    seed_index = models.PositiveIntegerField()
    seed = models.BigIntegerField(null=True, blank=True)
    params = models.JSONField(default=dict, blank=True)
    unet_evaluations = models.PositiveIntegerField(null=True, blank=True)
    wall_time = models.FloatField(null=True, blank=True, help_text="Seconds spent on this image.")
    content_hash = models.CharField(max_length=64)
    file = models.ImageField(upload_to=generated_upload_to)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    source_path = models.CharField(max_length=1000, blank=True, help_text="Where an imported image came from.")
    token = models.CharField(max_length=32, unique=True, default=new_token, editable=False)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "concept", "prompt", "seed_index"]
        constraints = [
            # One image per slot: a retried or duplicated task cannot add a second.
            models.UniqueConstraint(fields=["run", "concept", "prompt", "seed_index"], name="image_unique_slot"),
        ]
        indexes = [models.Index(fields=["method", "concept", "prompt", "seed_index"], name="image_pairing")]

    def __str__(self) -> str:
        return f"{self.method.name} {self.concept.slug} p{self.prompt.position} s{self.seed_index}"


class MetricScore(models.Model):
    image = models.ForeignKey(GeneratedImage, on_delete=models.CASCADE, related_name="scores")
    metric = models.CharField(max_length=32, help_text="clip_is, clip_ts, clip_ts_superclass, dino_is, ...")
    value = models.FloatField()
    model_id = models.CharField(max_length=500, blank=True, help_text="The embedding model used.")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "metric", "model_id"], name="metric_unique_per_image"),
        ]

    def __str__(self) -> str:
        return f"{self.metric}={self.value:.4f}"


# The three questions every pair is asked, in this order; each is a field of Answer.
QUESTIONS = ("text", "image", "overall")


class Study(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft"
        PUBLISHED = "published"
        CLOSED = "closed"

    slug = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200)
    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    version = models.PositiveIntegerField(default=1)
    previous_version = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL)
    instructions = models.TextField(blank=True)
    consent_text = models.TextField(blank=True)
    question_text = models.CharField(max_length=300, default="Which image matches the text better?")
    question_image = models.CharField(max_length=300, default="Which image shows the same subject as the photos?")
    question_overall = models.CharField(max_length=300, default="Which image is better overall?")
    ratings_per_pair = models.PositiveIntegerField(default=3)
    overlap_fraction = models.FloatField(default=0.1, help_text="Share of pairs rated by more raters, for agreement.")
    overlap_ratings = models.PositiveIntegerField(default=3, help_text="Raters per overlap pair.")
    pairs_per_rater = models.PositiveIntegerField(default=80)
    gold_rate = models.FloatField(default=0.05, help_text="Share of gold pairs among a rater's pairs.")
    attention_rate = models.FloatField(default=0.03, help_text="Share of attention checks.")
    lease_seconds = models.PositiveIntegerField(default=900)
    display_size = models.PositiveIntegerField(
        default=512, help_text="Width and height in pixels of every pair image as raters receive it."
    )
    accept_open_link = models.BooleanField(
        default=True, help_text="Anyone who opens the study link without an invite or Prolific id becomes a rater."
    )
    accept_invites = models.BooleanField(default=True, help_text="Invite codes made for this study are accepted.")
    accept_prolific = models.BooleanField(
        default=False, help_text="Prolific participants of the Prolific study below are accepted."
    )
    prolific_study_id = models.CharField(
        max_length=24, blank=True, help_text="Prolific's id of this study (24 hex characters); links must carry it."
    )
    completion_code = models.CharField(max_length=100, blank=True)
    completion_url = models.URLField(blank=True)
    screenout_url = models.URLField(blank=True)
    open_link_token = models.CharField(max_length=32, unique=True, default=new_token, editable=False)
    random_seed = models.BigIntegerField(default=0)
    exclusion_rules = models.JSONField(default=dict, blank=True)
    fixed_factors = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_fixed_factors],
        help_text='Factors whose levels here are the whole population, e.g. ["subject"] when these subjects are '
        "the ones the claims are about. The analysis treats the others (of rater, subject, prompt) as random.",
    )
    created = models.DateTimeField(default=timezone.now)
    published = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["-created"]
        permissions = [("export_study", "Can export a study's answers and results")]
        constraints = [
            models.CheckConstraint(condition=Q(ratings_per_pair__gte=1), name="study_ratings_positive"),
            models.CheckConstraint(
                condition=Q(overlap_fraction__gte=0) & Q(overlap_fraction__lte=1), name="study_overlap_fraction"
            ),
            models.CheckConstraint(condition=Q(gold_rate__gte=0) & Q(gold_rate__lt=1), name="study_gold_rate"),
            models.CheckConstraint(
                condition=Q(attention_rate__gte=0) & Q(attention_rate__lt=1), name="study_attention_rate"
            ),
            models.CheckConstraint(
                condition=Q(display_size__gte=64) & Q(display_size__lte=2048), name="study_display_size"
            ),
            models.CheckConstraint(
                condition=Q(accept_prolific=False) | ~Q(prolific_study_id=""), name="study_prolific_has_id"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} (v{self.version})"

    @property
    def is_frozen(self) -> bool:
        """A published or closed study keeps its design (studyapp.studies.freeze guards every save)."""
        return self.state != self.State.DRAFT


class Comparison(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="comparisons")
    method_a = models.ForeignKey(Method, on_delete=models.PROTECT, related_name="+")
    method_b = models.ForeignKey(Method, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["study", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "method_a", "method_b"], name="comparison_unique"),
            models.CheckConstraint(condition=~Q(method_a=models.F("method_b")), name="comparison_two_methods"),
        ]

    def __str__(self) -> str:
        return f"{self.method_a.name} vs {self.method_b.name}"

    def delete(self, *args, **kwargs):
        deletion_requested.send(sender=Comparison, instance=self)
        return super().delete(*args, **kwargs)


class Pair(models.Model):
    class Kind(models.TextChoices):
        REGULAR = "regular"
        GOLD = "gold"
        ATTENTION = "attention"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="pairs")
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="pairs", null=True, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.REGULAR)
    image_a = models.ForeignKey(GeneratedImage, on_delete=models.PROTECT, related_name="+")
    image_b = models.ForeignKey(GeneratedImage, on_delete=models.PROTECT, related_name="+")
    concept = models.ForeignKey(Concept, on_delete=models.PROTECT, related_name="+")
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="+")
    seed_index = models.PositiveIntegerField(default=0)
    in_overlap = models.BooleanField(default=False)
    target_ratings = models.PositiveIntegerField(default=3)
    ratings_count = models.PositiveIntegerField(default=0, help_text="Answers stored so far.")
    expected = models.JSONField(
        default=dict, blank=True, help_text="Gold/attention pairs: the right answer per question, 'a' or 'b'."
    )
    token = models.CharField(max_length=32, unique=True, default=new_token, editable=False)

    class Meta:
        ordering = ["study", "id"]
        constraints = [
            models.CheckConstraint(condition=~Q(image_a=models.F("image_b")), name="pair_two_images"),
            models.CheckConstraint(
                condition=~Q(kind="regular") | Q(comparison__isnull=False), name="pair_regular_has_comparison"
            ),
        ]
        indexes = [
            models.Index(fields=["study", "kind", "ratings_count"], name="pair_claim_order"),
            # The order in which studyapp.rating.assignment hands out pairs: overlap first, least rated, then random.
            models.Index(fields=["study", "kind", "-in_overlap", "ratings_count", "token"], name="pair_claim_queue"),
        ]

    def __str__(self) -> str:
        return f"pair {self.pk} ({self.kind})"


class Rater(models.Model):
    class Source(models.TextChoices):
        INVITE = "invite"
        OPEN = "open"
        PROLIFIC = "prolific"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="raters")
    source = models.CharField(max_length=10, choices=Source.choices)
    external_id = models.CharField(max_length=200, help_text="Prolific PID, invite code or generated id.")
    token = models.CharField(max_length=32, unique=True, default=new_token, editable=False)
    prolific_study_id = models.CharField(max_length=100, blank=True)
    prolific_session_id = models.CharField(max_length=100, blank=True)
    consented = models.DateTimeField(null=True, blank=True)
    instructed = models.DateTimeField(null=True, blank=True)
    completed = models.DateTimeField(null=True, blank=True)
    screened_out = models.DateTimeField(null=True, blank=True)
    excluded = models.BooleanField(default=False)
    exclusion_reason = models.CharField(max_length=300, blank=True)
    left_shown = models.PositiveIntegerField(default=0, help_text="Pairs shown with method A on the left.")
    admitted_from = models.CharField(
        max_length=32, blank=True, help_text="Keyed hash of the client address that created this rater, for limits."
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["study", "created"]
        constraints = [
            models.UniqueConstraint(fields=["study", "source", "external_id"], name="rater_unique_identity"),
        ]
        indexes = [
            # New raters per client address and minute (studyapp.rating.admission).
            models.Index(fields=["admitted_from", "created"], name="rater_admitted_from"),
        ]

    def __str__(self) -> str:
        return f"rater {self.pk} ({self.source})"


class Assignment(models.Model):
    class State(models.TextChoices):
        LEASED = "leased"
        ANSWERED = "answered"
        EXPIRED = "expired"

    rater = models.ForeignKey(Rater, on_delete=models.CASCADE, related_name="assignments")
    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="assignments")
    position = models.PositiveIntegerField(help_text="1 for the rater's first pair, 2 for the next, ...")
    left_is_a = models.BooleanField(help_text="Whether image A was shown on the left.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.LEASED)
    leased = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField()
    token = models.CharField(max_length=32, unique=True, default=new_token, editable=False)

    class Meta:
        ordering = ["rater", "position"]
        constraints = [
            models.UniqueConstraint(fields=["rater", "pair"], name="assignment_unique"),
        ]
        indexes = [
            models.Index(fields=["state", "expires"], name="assignment_expiry"),
            # Live leases per pair, counted on every claim (studyapp.rating.assignment).
            models.Index(fields=["pair", "state", "expires"], name="assignment_pair_live"),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} ({self.state})"


class Answer(models.Model):
    """One rater's judgement of one pair, in method space: 'a' means the comparison's method A won."""

    class Choice(models.TextChoices):
        A = "a", "method A"
        B = "b", "method B"
        TIE = "tie", "can't decide"

    rater = models.ForeignKey(Rater, on_delete=models.CASCADE, related_name="answers")
    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="answers")
    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="answer", null=True)
    text = models.CharField(max_length=3, choices=Choice.choices)
    image = models.CharField(max_length=3, choices=Choice.choices)
    overall = models.CharField(max_length=3, choices=Choice.choices)
    left_is_a = models.BooleanField()
    screen_answers = models.JSONField(
        default=dict, help_text="What was clicked on screen: '1', '2' or '0' per question."
    )
    response_ms = models.PositiveIntegerField(null=True, blank=True, help_text="From both images loaded to submit.")
    submitted = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["submitted"]
        constraints = [
            models.UniqueConstraint(fields=["rater", "pair"], name="answer_unique_per_rater"),
            # Only the comparison's two methods (or a tie) can be named: anything else is refused.
            models.CheckConstraint(condition=Q(text__in=["a", "b", "tie"]), name="answer_text_choice"),
            models.CheckConstraint(condition=Q(image__in=["a", "b", "tie"]), name="answer_image_choice"),
            models.CheckConstraint(condition=Q(overall__in=["a", "b", "tie"]), name="answer_overall_choice"),
        ]

    def __str__(self) -> str:
        return f"answer {self.pk}: text={self.text} image={self.image} overall={self.overall}"


class AnalysisSnapshot(models.Model):
    """Frozen results of a study, so that a paper can cite a reproducible version."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="snapshots")
    label = models.CharField(max_length=200, blank=True)
    data_hash = models.CharField(max_length=64, help_text="SHA-256 over the answers that went in.")
    settings = models.JSONField(default=dict)
    results = models.JSONField(default=dict)
    answer_count = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"snapshot {self.pk} of study {self.study_id}" + (f" ({self.label})" if self.label else "")


class Sweep(models.Model):
    """A grid of sampler hyper-parameters; it becomes one method and one run per grid point."""

    name = models.SlugField(max_length=80, unique=True, help_text="Prefix of the methods it creates.")
    sampler = models.CharField(max_length=32)
    preset = models.CharField(max_length=32, blank=True, help_text="A named grid; blank to give the grid yourself.")
    grid = models.JSONField(
        default=list,
        blank=True,
        help_text='A list of parameter objects, e.g. [{"w_s": 1}, {"w_s": 2}]; blank uses the preset.',
    )
    base_model = models.CharField(max_length=500, blank=True, help_text="Blank uses the GENERATION_MODEL setting.")
    personalization = models.CharField(
        max_length=500, blank=True, help_text="'{concept}' is replaced by the concept slug."
    )
    steps = models.PositiveIntegerField(default=50)
    prompt_set = models.ForeignKey(PromptSet, on_delete=models.PROTECT, related_name="sweeps")
    concepts = models.ManyToManyField(Concept, related_name="sweeps")
    seed_indices = models.JSONField(default=list, help_text="Seed indices, e.g. [0, 1, 2, 3].")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.name


class GenerationBatch(models.Model):
    """The work of one task: the seeds of one (run, concept, prompt), and the lease of the worker on it.

    The broker only carries the batch id; this row is the truth about whether the work is done.
    """

    State = WorkState

    run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="batches")
    concept = models.ForeignKey(Concept, on_delete=models.PROTECT, related_name="+")
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="+")
    seed_indices = models.JSONField(default=list)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveIntegerField(default=0, help_text="How many times a worker started it.")
    worker = models.CharField(max_length=200, blank=True, help_text="Who holds (or last held) the lease.")
    heartbeat = models.DateTimeField(null=True, blank=True)
    queued = models.DateTimeField(null=True, blank=True, help_text="When its task was last sent.")
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "concept", "prompt"]
        constraints = [
            models.UniqueConstraint(fields=["run", "concept", "prompt"], name="batch_unique_slot"),
        ]
        indexes = [models.Index(fields=["state", "heartbeat"], name="batch_lease")]

    def __str__(self) -> str:
        return f"batch {self.pk} of run {self.run_id} ({self.state})"


class FineTuneRun(models.Model):
    """Fine-tuning a base model on one concept's reference photos, on a gpu-queue worker under a lease.

    The row is the truth about the run, as a batch is for generation: its state, its worker's lease and
    heartbeat, how far training is, and where the result lies (under MEDIA_ROOT) once it is done.
    """

    State = WorkState

    class TrainingMethod(models.TextChoices):
        DREAMBOOTH = "dreambooth", "DreamBooth (full fine-tune)"
        LORA = "lora", "DreamBooth-LoRA"
        TEXTUAL_INVERSION = "textual_inversion", "Textual Inversion"

    label = models.SlugField(max_length=80, blank=True, help_text="Prefix of the methods made over the result.")
    concept = models.ForeignKey(Concept, on_delete=models.PROTECT, related_name="fine_tunes")
    base_model = models.CharField(
        max_length=500, blank=True, help_text="Hub id or local folder; blank uses the GENERATION_MODEL setting."
    )
    method = models.CharField(max_length=20, choices=TrainingMethod.choices, default=TrainingMethod.LORA)
    hyperparameters = models.JSONField(
        default=dict,
        blank=True,
        help_text='e.g. {"steps": 400, "learning_rate": 0.0001}; missing values take defaults.',
    )
    seed = models.BigIntegerField(default=0)
    prior_preservation = models.BooleanField(
        default=False, help_text="Class-prior preservation, with class images generated from the base model."
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True)
    steps_per_second = models.FloatField(null=True, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    resumed_from = models.PositiveIntegerField(null=True, blank=True, help_text="The checkpoint's step, if any.")
    attempts = models.PositiveIntegerField(default=0, help_text="How many times a worker started it.")
    worker = models.CharField(max_length=200, blank=True, help_text="Who holds (or last held) the lease.")
    heartbeat = models.DateTimeField(null=True, blank=True)
    queued = models.DateTimeField(null=True, blank=True, help_text="When its task was last sent.")
    output_path = models.CharField(max_length=500, blank=True, help_text="The result, relative to MEDIA_ROOT.")
    output_format = models.CharField(max_length=20, blank=True)
    manifest = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["state", "heartbeat"], name="finetune_lease")]
        constraints = [
            models.CheckConstraint(
                condition=Q(method__in=["dreambooth", "lora", "textual_inversion"]), name="finetune_known_method"
            ),
        ]

    def __str__(self) -> str:
        return self.label or f"fine-tune {self.pk} ({self.concept.slug}, {self.method})"
