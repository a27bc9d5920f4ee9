"""The world's renderer, captions and reference photos: seeded, complete, in the DreamBooth layout."""

import numpy as np
import pytest
from PIL import Image

from generation.world.captions import caption, concept_prompt, full_caption, superclass_prompt
from generation.world.data import LABELS, labels_of, object_poses, render_set, write_subject_photos
from generation.world.render import SUPERSAMPLE, Thing, paint_scene, render
from generation.world.vocabulary import COLOURS, PATTERNS, PROMPT_TEMPLATES, SCENE_NAMES, SCENES, SHAPES, SUBJECTS


def test_the_same_seed_draws_the_same_picture_and_another_seed_another():
    thing = Thing("star", "red", "dotted", "beach")
    first = np.asarray(render(thing, np.random.default_rng(3)))
    again = np.asarray(render(thing, np.random.default_rng(3)))
    other = np.asarray(render(thing, np.random.default_rng(4)))
    assert first.shape == (64, 64, 3)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_the_world_has_the_promised_vocabulary():
    assert len(SHAPES) >= 6 and len(COLOURS) >= 8 and len(PATTERNS) >= 4 and len(SCENES) >= 8
    assert len(SUBJECTS) >= 6 and len({subject.slug for subject in SUBJECTS}) == len(SUBJECTS)
    assert all(subject.shape in SHAPES for subject in SUBJECTS)


@pytest.mark.parametrize("scene", SCENE_NAMES)
def test_every_scene_has_its_own_look(scene):
    rng = np.random.default_rng(0)
    pictures = [np.asarray(render(Thing("ball", "red", "plain", name), rng), dtype=float) for name in SCENE_NAMES]
    mine = pictures[SCENE_NAMES.index(scene)]
    # the mean colour of a scene differs from every other scene's by a visible amount
    others = [
        abs(mine.mean((0, 1)) - picture.mean((0, 1))).max()
        for index, picture in enumerate(pictures)
        if index != SCENE_NAMES.index(scene)
    ]
    assert min(others) > 8


def test_shapes_differ_in_the_area_they_cover():
    rng = np.random.default_rng(0)
    backgrounds = np.asarray(render(Thing("ball", "red", "plain", "studio"), np.random.default_rng(1)), dtype=float)
    assert backgrounds.shape == (64, 64, 3)
    red = [
        (np.asarray(render(Thing(shape, "red", "plain", "studio"), rng), dtype=int)[..., 0] > 180).sum()
        - (np.asarray(render(Thing(shape, "red", "plain", "studio"), rng), dtype=int)[..., 1] > 180).sum()
        for shape in SHAPES
    ]
    assert len(set(red)) == len(SHAPES)


def test_captions_name_the_shape_and_use_the_papers_form():
    rng = np.random.default_rng(0)
    for _ in range(50):
        thing = Thing.random(rng)
        text = caption(thing, rng)
        assert thing.shape in text.split() and text.startswith(("a ", "an "))
    assert full_caption(Thing("ring", "orange", "striped", "snow")) == "an orange striped ring in the snow"
    assert concept_prompt("a {concept} on the beach", "ball") == "a sks ball on the beach"
    assert superclass_prompt("a {concept} at night", "ball") == "a ball at night"
    assert all("{concept}" in template for template in PROMPT_TEMPLATES)


def test_a_rendered_set_is_the_same_however_many_processes_render_it():
    one = render_set(40, seed=5, subject_share=0.5, workers=1)
    assert len(one) == 40 and one.images.shape == (40, 64, 64, 3)
    assert set(one.labels) == set(LABELS)
    assert 0 < (one.labels["subject"] > 0).sum() < 40  # some pictures show subjects, some do not
    again = render_set(40, seed=5, subject_share=0.5, workers=1)
    assert np.array_equal(one.images, again.images) and one.captions == again.captions


def test_object_poses_find_each_pictures_object():
    count, seed, share = 30, 4, 0.5
    pictures = render_set(count, seed, subject_share=share, workers=1)
    poses = object_poses(count, seed, subject_share=share)
    for index in range(count):
        bare = _bare_scene(np.random.default_rng([seed, index]), share)
        changed = np.abs(pictures.images[index].astype(int) - bare).sum(-1) > 30
        rows, columns = (np.nonzero(changed)[axis] + 0.5 for axis in (0, 1))
        x, y, size = poses[index]
        assert np.abs(columns / 64 - x).max() <= 0.6 * size and np.abs(rows / 64 - y).max() <= 0.6 * size
        assert changed.sum() > 0.1 * (64 * size) ** 2  # the object, not a stray pixel


def _bare_scene(rng, subject_share):
    """The picture's scene without its object, drawn from the same random numbers."""
    from generation.world.data import _thing_of_picture

    scene = _thing_of_picture(rng, subject_share).scene
    bare = paint_scene(scene, rng, 64 * SUPERSAMPLE).resize((64, 64), Image.Resampling.LANCZOS)
    return np.asarray(bare).astype(int)


def test_labels_of_a_subject_name_it():
    subject = SUBJECTS[0]
    labels = labels_of(Thing.of_subject(subject, "snow"))
    assert LABELS["subject"][labels["subject"]] == subject.slug
    assert LABELS["shape"][labels["shape"]] == subject.shape


def test_subject_photos_are_in_the_dreambooth_layout_and_import(tmp_path, db):
    from studyapp.catalog.importers import import_dreambooth
    from studyapp.models import Concept

    folder = write_subject_photos(tmp_path / "world")
    for subject in SUBJECTS:
        photos = sorted((folder / subject.slug).glob("*.jpg"))
        assert 4 <= len(photos) <= 6
        assert all(Image.open(photo).size == (256, 256) for photo in photos)
    report = import_dreambooth(folder)
    assert str(report)
    for subject in SUBJECTS:
        concept = Concept.objects.get(slug=subject.slug)
        assert concept.superclass == subject.shape and concept.references.count() == len(
            list((folder / subject.slug).glob("*.jpg"))
        )
