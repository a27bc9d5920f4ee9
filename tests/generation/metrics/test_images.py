"""Preprocessing: torchvision's resize and crop rules, normalisation, references squashed first."""

from __future__ import annotations

import numpy as np
import pytest

from generation.metrics import images


def test_resize_and_crop_geometry_follow_torchvision_rules():
    assert images.resized_shape(512, 512, 224) == (224, 224)
    assert images.resized_shape(300, 400, 256) == (256, 341)
    assert images.resized_shape(401, 300, 256) == (342, 256)
    assert images.crop_box(256, 341, 224) == (16, 58)


def test_clip_pixels_of_flat_image_are_normalised_constant():
    from PIL import Image

    preprocessing = images.Preprocessing(224, 224, (0.5, 0.25, 0.0), (0.5, 0.25, 1.0))
    image = Image.new("RGB", (512, 384), (255, 0, 51))
    pixels = images.clip_pixels(image, preprocessing, is_reference=False)
    assert pixels.shape == (3, 224, 224)
    np.testing.assert_allclose(pixels[:, 100, 100], [1.0, -1.0, 0.2], atol=1e-5)


def test_reference_is_squashed_to_square_before_crop():
    from PIL import Image

    preprocessing = images.Preprocessing(32, 32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    image = Image.new("RGB", (200, 100), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 50, 100))  # left quarter white
    squashed = images.clip_pixels(image, preprocessing, is_reference=True)
    cropped = images.clip_pixels(image, preprocessing, is_reference=False)
    # Squashed keeps the white quarter at the left edge; a centre crop of the wide image cuts it away.
    assert squashed[0, 16, 2] == pytest.approx(1.0, abs=0.05)
    assert cropped[0, 16, 2] == pytest.approx(0.0, abs=0.05)


def test_dino_pixels_shape_and_normalisation():
    from PIL import Image

    preprocessing = images.Preprocessing(256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    pixels = images.dino_pixels(Image.new("RGB", (300, 500), (0, 0, 0)), preprocessing)
    assert pixels.shape == (3, 224, 224)
    np.testing.assert_allclose(pixels[:, 0, 0], [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225], atol=1e-5)
