"""Reference photos uploaded through the admin: only real, sane images get in."""

import io

import pytest
from PIL import Image

from studyapp.models import Concept, ReferenceImage
from tests import factories

pytestmark = pytest.mark.django_db


def _upload(owner_client, *files, slug="dog"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    uploads = [SimpleUploadedFile(name, data) for name, data in files]
    return owner_client.post(
        "/admin/studyapp/concept/add/",
        {
            "slug": slug,
            "concept_token": "sks",
            "superclass": "dog",
            "kind": "live",
            "photos": uploads,
            "references-TOTAL_FORMS": "0",
            "references-INITIAL_FORMS": "0",
        },
    )


def test_photos_uploaded_with_a_new_concept_are_stored(owner_client):
    response = _upload(owner_client, ("a.png", factories.png_bytes()), ("b.jpg", factories.jpeg_bytes()))
    assert response.status_code == 302
    assert ReferenceImage.objects.filter(concept__slug="dog").count() == 2


def test_exif_orientation_is_applied(owner_client):
    _upload(owner_client, ("rotated.jpg", factories.jpeg_bytes(size=(40, 30), exif_orientation=6)))
    photo = ReferenceImage.objects.get()
    assert (photo.width, photo.height) == (30, 40)
    with photo.image.open() as handle:
        assert Image.open(handle).size == (30, 40)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.png", b"hello, I am text", "not an image"),
        ("cut.jpg", factories.jpeg_bytes(size=(400, 300))[:600], "damaged or truncated"),
        ("anim.gif", None, "expected a JPEG, PNG or WebP"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason_and_nothing_is_saved(owner_client, name, data, message):
    if data is None:
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buffer, format="GIF")
        data = buffer.getvalue()
    response = _upload(owner_client, ("good.png", factories.png_bytes()), (name, data))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Concept.objects.count() == 0
    assert ReferenceImage.objects.count() == 0


def test_decompression_bomb_is_refused(owner_client, settings):
    settings.MAX_IMAGE_PIXELS = 1_000_000
    buffer = io.BytesIO()
    Image.new("L", (4000, 4000)).save(buffer, format="PNG")  # 16 Mpx in a few kB
    response = _upload(owner_client, ("bomb.png", buffer.getvalue()))
    assert "the limit is 1,000,000" in response.content.decode()
    assert ReferenceImage.objects.count() == 0


def test_oversized_file_is_refused(owner_client, settings):
    settings.MAX_UPLOAD_BYTES = 100
    response = _upload(owner_client, ("big.png", factories.png_bytes(size=(64, 64))))
    assert "the limit is 100" in response.content.decode()


def test_the_same_photo_twice_is_stored_once(owner_client):
    data = factories.png_bytes()
    _upload(owner_client, ("a.png", data), ("copy.png", data))
    assert ReferenceImage.objects.count() == 1


def test_non_staff_cannot_reach_the_admin(client, outsider):
    client.force_login(outsider)
    response = client.get("/admin/studyapp/concept/add/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
