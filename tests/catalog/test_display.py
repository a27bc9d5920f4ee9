"""Display normalisation: every pair image leaves the server in one format, size and encoding."""

import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from studyapp.catalog.display import display_copy, display_name, normalised
from tests.factories import encoded, jpeg_markers, picture

METADATA_MARKERS = {0xFE, *range(0xE1, 0xF0)}  # COM, and APP1..APP15 (EXIF, XMP, ICC, Adobe, ...)


def commented_jpeg(size=(300, 200)) -> bytes:
    exif = Image.Exif()
    exif[0x010E] = "made by method X"  # ImageDescription
    return encoded(picture(size), "JPEG", quality=80, comment=b"ProFusion v1 guidance=5.0 run=77", exif=exif)


def texted_png(size=(64, 64)) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "Switching t_sw=0.4 seed=3")
    return encoded(picture(size).convert("RGBA"), "PNG", pnginfo=info)


@pytest.mark.parametrize("source", [commented_jpeg(), texted_png(), encoded(picture((40, 90)), "WEBP")])
def test_every_source_becomes_a_square_jpeg_of_the_display_size_without_metadata(source):
    data = normalised(source, 128)
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (128, 128))
        assert not {"comment", "exif", "icc_profile", "dpi"} & set(image.info)
    assert not METADATA_MARKERS & set(jpeg_markers(data))
    assert b"ProFusion" not in data and b"Switching" not in data and b"method X" not in data


def test_the_same_picture_from_a_jpeg_and_a_png_has_about_the_same_byte_size():
    scene = picture((512, 512))
    png, jpeg = encoded(scene, "PNG"), encoded(scene.resize((300, 300)), "JPEG", quality=75, comment=b"x" * 40)
    assert len(png) > 10 * len(jpeg)  # as stored, the byte size tells the formats apart
    served = sorted(len(normalised(data, 256)) for data in (png, jpeg))
    assert served[1] / served[0] < 1.25  # as served, it differs no more than between two pictures


def test_exif_orientation_is_applied_before_cropping():
    tall = encoded(picture((60, 120)), "JPEG", exif=_orientation(6))  # stored sideways: shown 120 wide, 60 high
    with Image.open(io.BytesIO(normalised(tall, 64))) as image:
        assert image.size == (64, 64)


def _orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


def test_the_copy_is_made_once_and_then_read_from_storage(settings, tmp_path):
    name = default_storage.save("generated/ab/source.png", ContentFile(texted_png()))
    field_file = _stored(name)
    first = display_copy(field_file, 96).read()
    assert default_storage.exists(display_name(name, 96))
    with default_storage.open(name, "wb") as changed:  # were it re-encoded, the second copy would differ
        changed.write(encoded(Image.new("RGB", (64, 64), (0, 0, 0)), "PNG"))
    with display_copy(field_file, 96) as again:
        assert again.read() == first
    assert display_copy(field_file, 64).read() != first  # another display size is another copy


def test_the_name_of_the_copy_does_not_carry_the_source_name():
    name = display_name("generated/profusion/run-77.png", 512)
    assert "profusion" not in name and "77" not in name and name.endswith(".jpg")


def _stored(name: str):
    from django.db.models.fields.files import FieldFile

    from studyapp.models import GeneratedImage

    return FieldFile(GeneratedImage(), GeneratedImage._meta.get_field("file"), name)
