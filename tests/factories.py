"""Small builders for test data. Images are real PNGs made with Pillow, so storage and decoding run."""

import hashlib
import io
import itertools

from django.core.files.base import ContentFile
from PIL import Image

from studyapp.models import (
    Comparison,
    Concept,
    GeneratedImage,
    GenerationRun,
    Method,
    Prompt,
    PromptSet,
    Study,
)

_counter = itertools.count(1)


def png_bytes(color=(200, 30, 30), size=(32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(color=(30, 200, 30), size=(40, 30), exif_orientation: int | None = None) -> bytes:
    image = Image.new("RGB", size, color)
    buffer = io.BytesIO()
    exif = Image.Exif()
    if exif_orientation:
        exif[0x0112] = exif_orientation
    image.save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


def concept(slug=None, superclass="dog", kind="live", token="sks") -> Concept:
    return Concept.objects.create(
        slug=slug or f"concept{next(_counter)}", superclass=superclass, kind=kind, concept_token=token
    )


def prompt_set(slug=None, templates=("a {concept} in the snow", "a {concept} on the beach")) -> PromptSet:
    ps = PromptSet.objects.create(slug=slug or f"set{next(_counter)}", name="test prompts")
    for position, template in enumerate(templates, start=1):
        Prompt.objects.create(prompt_set=ps, position=position, template=template)
    return ps


def method(name=None, sampler="base", params=None, kind=Method.Kind.SAMPLER) -> Method:
    if kind == Method.Kind.EXTERNAL:
        sampler, params = "", {}
    return Method.objects.create(
        name=name or f"method{next(_counter)}", kind=kind, sampler=sampler, params=params or {}
    )


def run(for_method: Method, prompts: PromptSet | None = None) -> GenerationRun:
    return GenerationRun.objects.create(method=for_method, prompt_set=prompts, state=GenerationRun.State.DONE)


def generated_image(
    for_run: GenerationRun, for_concept: Concept, prompt: Prompt, seed_index=0, color=None
) -> GeneratedImage:
    data = png_bytes(color or (next(_counter) % 255, 100, 150))
    image = GeneratedImage(
        run=for_run,
        method=for_run.method,
        concept=for_concept,
        prompt=prompt,
        seed_index=seed_index,
        content_hash=hashlib.sha256(data).hexdigest(),
        width=32,
        height=32,
    )
    image.file.save("image.png", ContentFile(data), save=False)
    image.save()
    return image


def study_with_images(
    methods=2, concepts=1, seeds=2, templates=("a {concept} in the snow", "a {concept} on the beach")
):
    """A draft study comparing method 1..n against method 0, with images for every slot."""
    prompts = prompt_set(templates=templates)
    subjects = [concept() for _ in range(concepts)]
    all_methods = [method(sampler="base" if i == 0 else "mixed") for i in range(methods)]
    for m in all_methods:
        r = run(m, prompts)
        for c in subjects:
            for p in prompts.prompts.all():
                for s in range(seeds):
                    generated_image(r, c, p, s)
    study = Study.objects.create(slug=f"study{next(_counter)}", title="test study")
    for position, other in enumerate(all_methods[1:]):
        Comparison.objects.create(study=study, method_a=other, method_b=all_methods[0], position=position)
    return study
