"""The DreamBooth folder import and the manifest import: good, bad, repeated."""

import csv
import json
import shutil

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from studyapp.models import Concept, GeneratedImage, Method, PromptSet, ReferenceImage
from tests import factories

pytestmark = pytest.mark.django_db


def test_dreambooth_folder_becomes_30_concepts_with_158_photos(dreambooth_dir, capsys):
    call_command("import_dreambooth", str(dreambooth_dir))
    assert Concept.objects.count() == 30
    assert ReferenceImage.objects.count() == 158
    assert Concept.objects.filter(kind="live").count() == 9
    assert Concept.objects.get(slug="bear_plushie").superclass == "stuffed animal"
    assert PromptSet.objects.get(slug="dreambooth-live").prompts.count() == 25
    assert "photos added: 158" in capsys.readouterr().out


def test_importing_the_same_folder_twice_adds_nothing(tmp_path, dreambooth_dir, capsys):
    folder = _copy_subjects(dreambooth_dir, tmp_path, ["dog", "teapot"])
    call_command("import_dreambooth", str(folder))
    capsys.readouterr()
    call_command("import_dreambooth", str(folder))
    assert ReferenceImage.objects.count() == 10
    assert "photos already there: 10" in capsys.readouterr().out


def test_a_damaged_photo_imports_nothing_and_names_the_file(tmp_path, dreambooth_dir, media_root):
    folder = _copy_subjects(dreambooth_dir, tmp_path, ["dog", "teapot"])
    bad = folder / "teapot" / "01.jpg"
    bad.write_bytes(bad.read_bytes()[:2000])
    with pytest.raises(CommandError, match=r"teapot/01\.jpg"):
        call_command("import_dreambooth", str(folder))
    assert Concept.objects.count() == 0
    assert not any(media_root.rglob("*.jpg"))


def test_unknown_subject_folder_is_refused(tmp_path, dreambooth_dir):
    folder = _copy_subjects(dreambooth_dir, tmp_path, ["dog"])
    shutil.copytree(folder / "dog", folder / "zebra")
    with pytest.raises(CommandError, match="unknown subject 'zebra'"):
        call_command("import_dreambooth", str(folder))
    assert Concept.objects.count() == 0


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="not a folder"):
        call_command("import_dreambooth", str(tmp_path / "nope"))


def _copy_subjects(source, tmp_path, slugs):
    folder = tmp_path / "dataset"
    for slug in slugs:
        shutil.copytree(source / slug, folder / slug)
    return folder


# --- manifests ---


@pytest.fixture
def catalog():
    call_command("load_prompt_sets")
    return factories.concept(slug="dog", superclass="dog", kind="live")


def _write_images(tmp_path, count):
    paths = []
    for i in range(count):
        path = tmp_path / f"img{i}.png"
        path.write_bytes(factories.png_bytes((10 * i, 20, 30)))
        paths.append(path.name)
    return paths


def _csv_manifest(tmp_path, rows):
    path = tmp_path / "manifest.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["method", "concept", "prompt", "seed_index", "file"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _rows(files, method="dreambooth-baseline"):
    prompts = ["a {concept} in the snow", "a sks dog on the beach", "a dog in the jungle"]
    return [
        {"method": method, "concept": "dog", "prompt": prompts[i % 3], "seed_index": i // 3, "file": name}
        for i, name in enumerate(files)
    ]


def test_csv_manifest_becomes_an_external_methods_images(tmp_path, catalog):
    manifest = _csv_manifest(tmp_path, _rows(_write_images(tmp_path, 6)))
    call_command("import_images", str(manifest))
    method = Method.objects.get(name="dreambooth-baseline")
    assert method.kind == Method.Kind.EXTERNAL
    images = GeneratedImage.objects.filter(method=method)
    assert images.count() == 6
    assert {i.prompt.template for i in images} == {
        "a {concept} in the snow",
        "a {concept} on the beach",
        "a {concept} in the jungle",
    }
    assert {i.prompt.prompt_set.slug for i in images} == {"dreambooth-live"}
    assert all(i.width == 32 and i.file.storage.exists(i.file.name) for i in images)


def test_json_manifest_twice_adds_nothing(tmp_path, catalog, capsys):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"images": _rows(_write_images(tmp_path, 3))}))
    call_command("import_images", str(manifest))
    call_command("import_images", str(manifest))
    assert GeneratedImage.objects.count() == 3
    assert "images already there: 3" in capsys.readouterr().out


def test_one_broken_row_imports_nothing_and_names_the_row(tmp_path, catalog, media_root):
    rows = _rows(_write_images(tmp_path, 4))
    (tmp_path / rows[2]["file"]).write_bytes(b"not an image at all")
    manifest = _csv_manifest(tmp_path, rows)
    with pytest.raises(CommandError, match="row 3:"):
        call_command("import_images", str(manifest))
    assert GeneratedImage.objects.count() == 0
    assert Method.objects.count() == 0
    assert not any(media_root.rglob("*.png"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"concept": "unicorn"}, "row 1: unknown concept 'unicorn'"),
        ({"seed_index": "-1"}, "row 1: seed_index: expected a whole number >= 0"),
        ({"seed_index": "two"}, "row 1: seed_index: expected a whole number >= 0"),
        ({"prompt": "a dog at the moon"}, "row 1: no prompt matches"),
        ({"file": "missing.png"}, "row 1: file .*missing.png does not exist"),
        ({"method": ""}, "row 1: missing method"),
    ],
)
def test_bad_rows_are_named_with_the_reason(tmp_path, catalog, change, message):
    rows = _rows(_write_images(tmp_path, 1))
    rows[0].update(change)
    with pytest.raises(CommandError, match=message):
        call_command("import_images", str(_csv_manifest(tmp_path, rows)))


def test_two_rows_for_the_same_slot_are_refused(tmp_path, catalog):
    rows = _rows(_write_images(tmp_path, 2))
    rows[1].update(prompt=rows[0]["prompt"], seed_index=rows[0]["seed_index"])
    with pytest.raises(CommandError, match="row 2: same method, concept, prompt and seed index as row 1"):
        call_command("import_images", str(_csv_manifest(tmp_path, rows)))


def test_manifest_cannot_add_images_to_a_sampler_method(tmp_path, catalog):
    factories.method(name="dreambooth-baseline", sampler="base")
    with pytest.raises(CommandError, match="is a sampler method"):
        call_command("import_images", str(_csv_manifest(tmp_path, _rows(_write_images(tmp_path, 1)))))


def test_manifest_with_missing_columns_names_them(tmp_path, catalog):
    path = tmp_path / "m.csv"
    path.write_text("method,concept\nx,dog\n")
    with pytest.raises(CommandError, match=r"missing column.*prompt, seed_index, file"):
        call_command("import_images", str(path))
