"""Blinding as a client over HTTP sees it: the two images of a pair differ only in their pixels."""

import csv
import hashlib
import io

import pytest
from django.core.files.base import ContentFile
from PIL import Image

from studyapp.catalog.importers import import_manifest
from studyapp.models import Comparison, GeneratedImage, Method, Study
from studyapp.studies.pairs import build_pairs
from tests import factories
from tests.integrity.scripted import ScriptedRater, image_paths
from tests.rating.factories import add_references

pytestmark = pytest.mark.services

COMMENT = b"ProFusion v1 guidance=5.0 run=77"
METADATA_MARKERS = {0xFE, *range(0xE1, 0xF0)}  # COM, APP1..APP15 (EXIF, XMP, ICC, ...)


def imported_against_generated(tmp_path, display_size: int = 256) -> tuple[Study, dict[str, int]]:
    """A published study of an imported JPEG method (with a comment, 300x200) against a generated PNG one."""
    concept = factories.concept()
    prompts = factories.prompt_set(templates=("a {concept} in the snow",))
    prompt = prompts.prompts.get()
    generated = factories.method(sampler="base")
    png = factories.encoded(factories.picture((512, 512)), "PNG")
    image = GeneratedImage(
        run=factories.run(generated, prompts),
        method=generated,
        concept=concept,
        prompt=prompt,
        seed_index=0,
        content_hash=hashlib.sha256(png).hexdigest(),
        width=512,
        height=512,
    )
    image.file.save("image.png", ContentFile(png), save=False)
    image.save()
    jpeg = factories.encoded(factories.picture((300, 200), shift=5), "JPEG", quality=75, comment=COMMENT)
    (tmp_path / "profusion.jpg").write_bytes(jpeg)
    with open(tmp_path / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "concept", "prompt", "seed_index", "file"])
        writer.writerow(["profusion-v1", concept.slug, prompt.template, 0, "profusion.jpg"])
    import_manifest(tmp_path / "manifest.csv")
    study = Study.objects.create(
        slug="blinding", title="blinding", display_size=display_size, gold_rate=0, attention_rate=0, pairs_per_rater=1
    )
    Comparison.objects.create(study=study, method_a=Method.objects.get(name="profusion-v1"), method_b=generated)
    build_pairs(study)
    add_references(concept.pk)
    study.state = Study.State.PUBLISHED
    study.save()
    return study, {"png": len(png), "jpeg": len(jpeg)}


def test_an_imported_jpeg_beside_a_generated_png_reaches_the_rater_like_it(live_server_url, tmp_path):
    study, stored_sizes = imported_against_generated(tmp_path, display_size=256)
    assert stored_sizes["png"] > 10 * stored_sizes["jpeg"]  # stored, the byte sizes name the formats
    rater = ScriptedRater(live_server_url)
    rater.enter(f"/s/{study.open_link_token}/")
    rater.consent_and_start()
    served = [rater.get(path) for path in image_paths(rater.page())]
    assert [reply.status for reply in served] == [200, 200]
    assert {reply.headers["Content-Type"] for reply in served} == {"image/jpeg"}
    for reply in served:
        with Image.open(io.BytesIO(reply.body)) as image:
            assert (image.format, image.size) == ("JPEG", (256, 256))
            assert not {"comment", "exif", "icc_profile"} & set(image.info)
        assert not METADATA_MARKERS & set(factories.jpeg_markers(reply.body))
        assert COMMENT not in reply.body and b"profusion" not in reply.body.lower()
    smaller, larger = sorted(len(reply.body) for reply in served)
    assert larger / smaller < 1.25


def test_the_served_images_carry_no_name_and_may_be_cached_privately(live_server_url, tmp_path):
    study, _ = imported_against_generated(tmp_path)
    rater = ScriptedRater(live_server_url)
    rater.enter(f"/s/{study.open_link_token}/")
    rater.consent_and_start()
    for path in image_paths(rater.page()):
        reply = rater.get(path)
        assert "Content-Disposition" not in reply.headers
        assert reply.headers["Cache-Control"] == "private, max-age=86400, immutable"
        assert rater.get(path).body == reply.body  # the stored copy, not a new encoding
