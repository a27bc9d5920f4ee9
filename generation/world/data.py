"""Seeded sets of rendered pictures with their labels, and the subjects' reference photos on disk."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generation.world.captions import caption
from generation.world.render import SUPERSAMPLE, Pose, Thing, paint_scene, render
from generation.world.vocabulary import COLOURS, PATTERNS, SCENE_NAMES, SHAPES, STUDIO, SUBJECTS

# Label spaces of the judge's heads: index 0 of "subject" is "no subject".
LABELS = {
    "shape": SHAPES,
    "colour": tuple(COLOURS),
    "pattern": PATTERNS,
    "scene": SCENE_NAMES,
    "subject": ("none", *(subject.slug for subject in SUBJECTS)),
}
PHOTOS_PER_SUBJECT = 5
PHOTO_SIZE = 256


@dataclass
class RenderedSet:
    """``images``: (N, H, W, 3) uint8; ``labels``: head -> (N,) int64; ``captions``: N strings."""

    images: np.ndarray
    labels: dict[str, np.ndarray]
    captions: list[str]

    def __len__(self) -> int:
        return len(self.captions)

    def save(self, path: Path) -> None:
        np.savez(path, images=self.images, captions=np.array(self.captions), **self.labels)

    @classmethod
    def load(cls, path: Path) -> RenderedSet:
        with np.load(path) as data:
            return cls(data["images"], {head: data[head] for head in LABELS}, [str(c) for c in data["captions"]])


def labels_of(thing: Thing) -> dict[str, int]:
    subject = 0 if thing.subject is None else LABELS["subject"].index(thing.subject.slug)
    return {
        "shape": SHAPES.index(thing.shape),
        "colour": LABELS["colour"].index(thing.colour),
        "pattern": PATTERNS.index(thing.pattern),
        "scene": SCENE_NAMES.index(thing.scene),
        "subject": subject,
    }


def render_set(count: int, seed: int, subject_share: float = 0.0, size: int = 64, workers: int = 2) -> RenderedSet:
    """``count`` pictures; a ``subject_share`` of them show one of the subjects in a random scene.

    Picture ``i`` depends only on (seed, i), so the set is the same however many processes render it.
    """
    chunks = [(start, min(start + 2048, count), seed, subject_share, size) for start in range(0, count, 2048)]
    if workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_render_chunk, chunks))
    else:
        parts = [_render_chunk(chunk) for chunk in chunks]
    return RenderedSet(
        images=np.concatenate([part.images for part in parts]),
        labels={head: np.concatenate([part.labels[head] for part in parts]) for head in LABELS},
        captions=[text for part in parts for text in part.captions],
    )


def _thing_of_picture(rng: np.random.Generator, subject_share: float) -> Thing:
    if rng.random() < subject_share:
        subject = SUBJECTS[rng.integers(len(SUBJECTS))]
        return Thing.of_subject(subject, SCENE_NAMES[rng.integers(len(SCENE_NAMES))])
    return Thing.random(rng)


def _render_chunk(arguments) -> RenderedSet:
    start, stop, seed, subject_share, size = arguments
    images, captions, labels = [], [], {head: [] for head in LABELS}
    for index in range(start, stop):
        rng = np.random.default_rng([seed, index])
        thing = _thing_of_picture(rng, subject_share)
        images.append(np.asarray(render(thing, rng, size)))
        captions.append(caption(thing, rng))
        for head, value in labels_of(thing).items():
            labels[head].append(value)
    return RenderedSet(np.stack(images), {h: np.array(v, dtype=np.int64) for h, v in labels.items()}, captions)


def object_poses(count: int, seed: int, subject_share: float = 0.0, size: int = 64) -> np.ndarray:
    """(count, 3) centre x, centre y and size of the object in each picture of ``render_set(count, seed,
    subject_share, size)``, as fractions of the width, found by replaying each picture's random draws up to
    its pose: the scene is painted again, the object and the resizing are skipped."""
    poses = np.empty((count, 3), dtype=np.float32)
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        thing = _thing_of_picture(rng, subject_share)
        paint_scene(thing.scene, rng, size * SUPERSAMPLE)
        pose = Pose.random(rng, studio=thing.scene == STUDIO)
        poses[index] = (pose.x, pose.y, pose.scale)
    return poses


def write_subject_photos(folder: str | Path, seed: int = 0, photos: int = PHOTOS_PER_SUBJECT) -> Path:
    """The subjects' reference photos in the DreamBooth layout (``<slug>/00.jpg`` ...), with the class
    table ``import_dreambooth`` reads. Photos are studio shots with varied pose and scale."""
    folder = Path(folder)
    rows = []
    for number, subject in enumerate(SUBJECTS):
        target = folder / subject.slug
        target.mkdir(parents=True, exist_ok=True)
        for index in range(photos):
            rng = np.random.default_rng([seed, 1000 + number, index])
            picture = render(Thing.of_subject(subject, STUDIO), rng, PHOTO_SIZE, Pose.random(rng, studio=True))
            picture.save(target / f"{index:02d}.jpg", quality=92)
        rows.append(f"{subject.slug},{subject.superclass}")
    (folder / "prompts_and_classes.txt").write_text("Classes\n\nsubject_name,class\n" + "\n".join(rows) + "\n\n")
    return folder
