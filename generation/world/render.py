"""A seeded procedural renderer of the world's objects in scenes (numpy and Pillow only).

``render(scene, rng, size)`` draws one picture: a scene background and one object in a random pose.
Everything random comes from the ``numpy.random.Generator`` passed in, so a seed fixes the picture.
Drawing happens at four times the output size and is reduced with a Lanczos filter (anti-aliasing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from generation.world.vocabulary import COLOURS, PATTERNS, SCENE_NAMES, SHAPES, STUDIO, Subject

SUPERSAMPLE = 4


@dataclass(frozen=True)
class Thing:
    """What a picture shows: an object (shape, colour, pattern, optional subject) in a scene."""

    shape: str
    colour: str
    pattern: str
    scene: str
    subject: Subject | None = None

    @classmethod
    def of_subject(cls, subject: Subject, scene: str) -> Thing:
        return cls(subject.shape, subject.colour, subject.pattern, scene, subject)

    @classmethod
    def random(cls, rng: np.random.Generator, scene: str | None = None) -> Thing:
        return cls(
            shape=SHAPES[rng.integers(len(SHAPES))],
            colour=list(COLOURS)[rng.integers(len(COLOURS))],
            pattern=PATTERNS[rng.integers(len(PATTERNS))],
            scene=scene or SCENE_NAMES[rng.integers(len(SCENE_NAMES))],
        )

    def in_scene(self, scene: str) -> Thing:
        return replace(self, scene=scene)


@dataclass(frozen=True)
class Pose:
    x: float  # centre, as a fraction of the width
    y: float
    scale: float  # object size, as a fraction of the width
    angle: float  # degrees

    @classmethod
    def random(cls, rng: np.random.Generator, studio: bool = False) -> Pose:
        if studio:  # reference photos: the object fills the frame, near the centre
            return cls(rng.uniform(0.42, 0.58), rng.uniform(0.45, 0.58), rng.uniform(0.45, 0.6), rng.uniform(-20, 20))
        return cls(rng.uniform(0.38, 0.62), rng.uniform(0.55, 0.68), rng.uniform(0.36, 0.48), rng.uniform(-25, 25))


def render(thing: Thing, rng: np.random.Generator, size: int = 64, pose: Pose | None = None) -> Image.Image:
    """One RGB picture of ``thing``, ``size`` pixels square."""
    big = size * SUPERSAMPLE
    canvas = paint_scene(thing.scene, rng, big)
    pose = pose or Pose.random(rng, studio=thing.scene == STUDIO)
    paint_object(canvas, thing, pose, rng)
    return canvas.resize((size, size), Image.Resampling.LANCZOS)


# -- scenes ---------------------------------------------------------------------------------------


def paint_scene(scene: str, rng: np.random.Generator, size: int) -> Image.Image:
    if scene not in _SCENE_PAINTERS:
        raise ValueError(f"scene: expected one of {', '.join(SCENE_NAMES)}, got {scene!r}")
    image = Image.new("RGB", (size, size))
    _SCENE_PAINTERS[scene](ImageDraw.Draw(image), rng, size)
    return image


def _jitter(rgb, rng, amount=12):
    return tuple(int(np.clip(channel + rng.integers(-amount, amount + 1), 0, 255)) for channel in rgb)


def _sky_and_ground(draw, rng, size, sky, ground, horizon):
    line = int(size * horizon)
    draw.rectangle((0, 0, size, line), fill=_jitter(sky, rng))
    draw.rectangle((0, line, size, size), fill=_jitter(ground, rng))
    return line


def _beach(draw, rng, size):
    horizon = rng.uniform(0.38, 0.48)
    _sky_and_ground(draw, rng, size, (150, 205, 245), (232, 206, 150), horizon + 0.1)
    sea_top, sea_bottom = int(size * horizon), int(size * (horizon + 0.1))
    draw.rectangle((0, sea_top, size, sea_bottom), fill=_jitter((30, 110, 190), rng))
    for _ in range(4):
        y = rng.uniform(sea_top, sea_bottom)
        x = rng.uniform(0, size)
        draw.line((x, y, x + size * 0.15, y), fill=(220, 240, 255), width=max(1, size // 90))


def _snow(draw, rng, size):
    _sky_and_ground(draw, rng, size, (190, 200, 215), (245, 247, 252), rng.uniform(0.4, 0.5))
    radius = size / 100
    for _ in range(40):
        x, y = rng.uniform(0, size, 2)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(255, 255, 255))


def _grass(draw, rng, size):
    line = _sky_and_ground(draw, rng, size, (120, 180, 240), (70, 150, 50), rng.uniform(0.4, 0.5))
    for _ in range(60):
        x, y = rng.uniform(0, size), rng.uniform(line, size)
        draw.line(
            (x, y, x + rng.uniform(-3, 3) * size / 100, y - size / 25), fill=(40, 110, 30), width=max(1, size // 120)
        )


def _jungle(draw, rng, size):
    draw.rectangle((0, 0, size, size), fill=_jitter((20, 70, 30), rng))
    for _ in range(45):
        x, y = rng.uniform(0, size, 2)
        w, h = size * rng.uniform(0.06, 0.14), size * rng.uniform(0.03, 0.06)
        shade = (int(rng.integers(20, 60)), int(rng.integers(100, 170)), int(rng.integers(20, 60)))
        draw.ellipse((x - w, y - h, x + w, y + h), fill=shade)


def _night(draw, rng, size):
    line = _sky_and_ground(draw, rng, size, (12, 16, 50), (30, 30, 40), rng.uniform(0.55, 0.65))
    radius = size / 160
    for _ in range(30):
        x, y = rng.uniform(0, size), rng.uniform(0, line)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(250, 250, 210))
    moon_x, moon_y, moon_r = rng.uniform(0.1, 0.9) * size, size * 0.15, size * 0.06
    draw.ellipse((moon_x - moon_r, moon_y - moon_r, moon_x + moon_r, moon_y + moon_r), fill=(245, 240, 200))


def _carpet(draw, rng, size):
    draw.rectangle((0, 0, size, size), fill=_jitter((35, 25, 30), rng, 8))
    top = size * rng.uniform(0.35, 0.45)
    draw.polygon(
        ((size * 0.38, top), (size * 0.62, top), (size * 0.95, size), (size * 0.05, size)),
        fill=_jitter((180, 20, 35), rng, 10),
    )
    for _ in range(6):  # spotlights on the backdrop
        x = rng.uniform(0, size)
        draw.ellipse((x - size / 50, size * 0.1, x + size / 50, size * 0.14), fill=(255, 235, 180))


def _floor(draw, rng, size):
    line = _sky_and_ground(draw, rng, size, (230, 220, 200), (150, 95, 50), rng.uniform(0.4, 0.5))
    plank = size / 12
    y = line
    while y < size:
        draw.line((0, y, size, y), fill=(100, 60, 30), width=max(1, size // 150))
        y += plank
    for _ in range(10):
        x, y = rng.uniform(0, size), rng.uniform(line, size)
        draw.line((x, y, x, y + plank), fill=(110, 70, 35), width=max(1, size // 150))


def _city(draw, rng, size):
    line = _sky_and_ground(draw, rng, size, (175, 180, 190), (90, 90, 95), rng.uniform(0.55, 0.62))
    x = -rng.uniform(0, size * 0.1)
    while x < size:
        width, height = size * rng.uniform(0.12, 0.22), size * rng.uniform(0.25, 0.5)
        grey = int(rng.integers(60, 130))
        draw.rectangle((x, line - height, x + width, line), fill=(grey, grey, grey + 10))
        for wy in np.arange(line - height + size * 0.03, line - size * 0.03, size * 0.06):
            for wx in np.arange(x + size * 0.02, x + width - size * 0.02, size * 0.05):
                draw.rectangle((wx, wy, wx + size * 0.02, wy + size * 0.025), fill=(240, 220, 120))
        x += width + size * 0.01
    draw.line((0, size * 0.85, size, size * 0.85), fill=(230, 230, 230), width=max(1, size // 100))


def _studio(draw, rng, size):
    base = [(236, 236, 236), (240, 232, 215), (220, 228, 238)][rng.integers(3)]
    draw.rectangle((0, 0, size, size), fill=_jitter(base, rng, 8))


_SCENE_PAINTERS = {
    "beach": _beach,
    "snow": _snow,
    "grass": _grass,
    "jungle": _jungle,
    "night": _night,
    "carpet": _carpet,
    "floor": _floor,
    "city": _city,
    STUDIO: _studio,
}
assert set(_SCENE_PAINTERS) == set(SCENE_NAMES)


# -- objects --------------------------------------------------------------------------------------


def paint_object(canvas: Image.Image, thing: Thing, pose: Pose, rng: np.random.Generator) -> None:
    size = canvas.size[0]
    extent = int(size * pose.scale)
    mask = shape_mask(thing.shape, extent).rotate(pose.angle, resample=Image.Resampling.BICUBIC)
    body = _body(thing, extent, rng).rotate(pose.angle, resample=Image.Resampling.BICUBIC)
    left, top = int(size * pose.x - extent / 2), int(size * pose.y - extent / 2)
    shadow = mask.filter(ImageFilter.GaussianBlur(extent / 25))
    canvas.paste((0, 0, 0), (left + extent // 30, top + extent // 20), shadow.point(lambda v: v * 0.35))
    outline = mask.filter(ImageFilter.MaxFilter(_odd(extent // 40)))
    canvas.paste((30, 30, 30), (left, top), outline)
    canvas.paste(body, (left, top), mask)


def _odd(value: int) -> int:
    return max(3, value | 1)


def shape_mask(shape: str, extent: int) -> Image.Image:
    mask = Image.new("L", (extent, extent), 0)
    draw = ImageDraw.Draw(mask)
    e = extent
    if shape == "ball":
        draw.ellipse((e * 0.05, e * 0.05, e * 0.95, e * 0.95), fill=255)
    elif shape == "box":
        draw.rectangle((e * 0.1, e * 0.1, e * 0.9, e * 0.9), fill=255)
    elif shape == "pyramid":
        draw.polygon(((e * 0.5, e * 0.05), (e * 0.97, e * 0.9), (e * 0.03, e * 0.9)), fill=255)
    elif shape == "star":
        points = []
        for k in range(10):
            radius = e * (0.48 if k % 2 == 0 else 0.2)
            angle = math.pi / 2 + k * math.pi / 5
            points.append((e / 2 + radius * math.cos(angle), e / 2 - radius * math.sin(angle)))
        draw.polygon(points, fill=255)
    elif shape == "ring":
        draw.ellipse((e * 0.04, e * 0.04, e * 0.96, e * 0.96), fill=255)
        draw.ellipse((e * 0.3, e * 0.3, e * 0.7, e * 0.7), fill=0)
    elif shape == "heart":
        draw.ellipse((e * 0.05, e * 0.12, e * 0.52, e * 0.58), fill=255)
        draw.ellipse((e * 0.48, e * 0.12, e * 0.95, e * 0.58), fill=255)
        draw.polygon(((e * 0.07, e * 0.42), (e * 0.93, e * 0.42), (e * 0.5, e * 0.94)), fill=255)
    else:
        raise ValueError(f"shape: expected one of {', '.join(SHAPES)}, got {shape!r}")
    return mask


def _body(thing: Thing, extent: int, rng: np.random.Generator) -> Image.Image:
    """The object's surface: colour, pattern and, for a subject, its marking."""
    colour = np.array(_jitter(COLOURS[thing.colour], rng, 10))
    if thing.subject is not None:
        second = np.array(COLOURS[thing.subject.second_colour])
    else:  # a lighter or darker shade of the body colour
        second = np.clip(colour * 0.55, 0, 255) if colour.mean() > 110 else np.clip(colour + 90, 0, 255)
    image = Image.new("RGB", (extent, extent), tuple(int(c) for c in colour))
    draw = ImageDraw.Draw(image)
    _paint_pattern(draw, thing.pattern, extent, tuple(int(c) for c in second))
    if thing.subject is not None:
        _paint_marking(draw, thing.subject.marking, extent)
    return image


def _paint_pattern(draw, pattern: str, e: int, ink) -> None:
    if pattern == "striped":
        width = e / 7
        for k in range(-8, 8):
            x = k * width * 2
            draw.polygon(((x, 0), (x + width, 0), (x + width + e, e), (x + e, e)), fill=ink)
    elif pattern == "dotted":
        radius = e / 18
        for row in range(6):
            for column in range(6):
                x = (column + 0.5 + 0.5 * (row % 2)) * e / 6
                y = (row + 0.5) * e / 6
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=ink)
    elif pattern == "checkered":
        cell = e / 6
        for row in range(6):
            for column in range(6):
                if (row + column) % 2:
                    draw.rectangle((column * cell, row * cell, (column + 1) * cell, (row + 1) * cell), fill=ink)
    elif pattern != "plain":
        raise ValueError(f"pattern: expected one of {', '.join(PATTERNS)}, got {pattern!r}")


def _paint_marking(draw, marking: str, e: int) -> None:
    if marking == "eyes":
        for cx in (0.38, 0.62):
            draw.ellipse((e * (cx - 0.08), e * 0.34, e * (cx + 0.08), e * 0.5), fill=(255, 255, 255))
            draw.ellipse((e * (cx - 0.04), e * 0.39, e * (cx + 0.04), e * 0.47), fill=(0, 0, 0))
    elif marking == "band":
        draw.rectangle((0, e * 0.44, e, e * 0.58), fill=(250, 250, 250))
        draw.rectangle((0, e * 0.49, e, e * 0.53), fill=(20, 20, 20))
    elif marking == "spot":
        draw.ellipse((e * 0.36, e * 0.4, e * 0.64, e * 0.68), fill=(255, 255, 255))
        draw.ellipse((e * 0.44, e * 0.48, e * 0.56, e * 0.6), fill=(200, 20, 20))
    else:
        raise ValueError(f"marking: unknown {marking!r}")
