"""Small builders for test data. Images are real PNGs made with Pillow, so storage and decoding run."""

import hashlib
import io
import itertools

import numpy as np
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


def picture(size=(512, 512), shift: int = 0) -> Image.Image:
    """A small scene with gradients and edges, so encoders behave as on real images (unlike flat colour)."""
    from PIL import ImageDraw

    width, height = size
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(image)
    for index in range(6):
        x, y = (index * 83 + shift) % width, (index * 47 + shift) % height
        draw.ellipse((x, y, x + width // 4, y + height // 5), fill=(40 * index, 200 - 30 * index, 90))
    draw.line((0, height - 1, width - 1, 0), fill=(250, 250, 250), width=max(1, width // 60))
    grain = np.random.default_rng(shift).normal(0, 6, (height, width, 3))  # sensor-like noise
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) + grain, 0, 255).astype(np.uint8))


def encoded(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def jpeg_markers(data: bytes) -> list[int]:
    """The marker bytes of a JPEG's header segments, from start of image up to start of scan."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    markers, offset = [], 2
    while offset < len(data):
        marker = data[offset + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return markers
        length = int.from_bytes(data[offset + 2 : offset + 4], "big")
        offset += 2 + length
    return markers
