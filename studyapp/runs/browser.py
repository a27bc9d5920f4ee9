"""The image browser (staff): the Figure 6 layout of one concept's images, and one image with its metrics."""

from django.shortcuts import get_object_or_404, render

from studyapp.models import Concept, GeneratedImage, Method, PromptSet
from studyapp.staff import staff_permission_required
from studyapp.studies.check_images import CHECK_METHODS

MAX_BROWSER_SEEDS = 8


def _int_list(values: list[str]) -> list[int]:
    """The values that are plain decimal numbers in range ('²' is a digit to str.isdigit, not to int)."""
    return [int(value) for value in values if value.strip().isdecimal() and len(value.strip()) < 10]


@staff_permission_required("studyapp.view_generatedimage")
def browser(request):
    """The Figure 6 layout: for one concept, one row per prompt with images and one column per method."""
    concepts = Concept.objects.all()
    prompt_sets = PromptSet.objects.all()
    concept = concepts.filter(slug=request.GET.get("concept")).first() or concepts.filter(images__isnull=False).first()
    images = GeneratedImage.objects.filter(concept=concept) if concept else GeneratedImage.objects.none()
    prompt_set = prompt_sets.filter(slug=request.GET.get("prompt_set")).first()
    if prompt_set is None and concept:
        prompt_set = prompt_sets.filter(prompts__images__concept=concept).first()
    images = images.filter(prompt__prompt_set=prompt_set)
    images = images.exclude(method__name__in=CHECK_METHODS)  # gold and attention images are not a method's output
    available_methods = Method.objects.filter(images__in=images).distinct()
    method_ids = _int_list(request.GET.getlist("method")) or list(available_methods.values_list("pk", flat=True))
    methods = list(available_methods.filter(pk__in=method_ids))
    available_seeds = sorted(set(images.values_list("seed_index", flat=True)))
    seeds = _int_list(request.GET.getlist("seed")) or available_seeds[:2]
    seeds = seeds[:MAX_BROWSER_SEEDS]
    cells = {}
    for image in images.filter(method__in=methods, seed_index__in=seeds).select_related("prompt"):
        cells.setdefault((image.prompt_id, image.method_id), {})[image.seed_index] = image
    shown_prompts = {prompt_id for prompt_id, _ in cells}
    prompts = [p for p in prompt_set.prompts.all() if p.pk in shown_prompts] if prompt_set else []
    grid = [
        (prompt, [[cells.get((prompt.pk, method.pk), {}).get(seed) for seed in seeds] for method in methods])
        for prompt in prompts
    ]
    context = {
        "concepts": concepts,
        "prompt_sets": prompt_sets,
        "concept": concept,
        "prompt_set": prompt_set,
        "available_methods": available_methods,
        "methods": methods,
        "available_seeds": available_seeds,
        "seeds": seeds,
        "grid": grid,
    }
    return render(request, "studyapp/runs/browser.html", context)


@staff_permission_required("studyapp.view_generatedimage")
def browser_image(request, token: str):
    image = get_object_or_404(GeneratedImage.objects.select_related("run", "method", "concept", "prompt"), token=token)
    context = {
        "image": image,
        "concept_prompt": image.prompt.concept_prompt(image.concept),
        "superclass_prompt": image.prompt.superclass_prompt(image.concept),
        "scores": image.scores.all(),
    }
    return render(request, "studyapp/runs/browser_image.html", context)
