"""The world's words: shapes, colours, patterns, scenes and the personal subjects.

Every prompt in the world is built from these, in the form of the paper's prompts ("a sks dog in the
snow" / "a dog in the snow"): the shape word is the superclass, a subject's concept prompt puts the
concept token before it.
"""

from __future__ import annotations

from dataclasses import dataclass

SHAPES = ("ball", "box", "pyramid", "star", "ring", "heart")

COLOURS = {
    "red": (214, 40, 40),
    "orange": (245, 130, 30),
    "yellow": (240, 210, 40),
    "green": (60, 170, 60),
    "cyan": (40, 200, 210),
    "blue": (40, 80, 210),
    "purple": (140, 60, 190),
    "pink": (245, 130, 190),
}

# "plain" has no word in captions; the other three are adjectives before the shape word.
PATTERNS = ("plain", "striped", "dotted", "checkered")

# Scene name -> the phrase that follows the object in a caption ("a red ball on the beach").
SCENES = {
    "beach": "on the beach",
    "snow": "in the snow",
    "grass": "on the grass",
    "jungle": "in the jungle",
    "night": "at night",
    "carpet": "on a red carpet",
    "floor": "on a wooden floor",
    "city": "in the city",
}
# Studio backgrounds: the reference photos' setting, captioned without a scene phrase.
STUDIO = "studio"
SCENE_NAMES = (*SCENES, STUDIO)

CONCEPT_TOKEN = "sks"
MARKINGS = ("eyes", "band", "spot")


@dataclass(frozen=True)
class Subject:
    """One personal subject: a distinctive instance of a shape that the base world never shows.

    General objects are one colour with a pattern in a lighter or darker shade of it and carry no
    marking; a subject's pattern is in a second colour of the palette and it bears a marking.
    """

    slug: str
    shape: str
    colour: str
    pattern: str
    second_colour: str
    marking: str

    @property
    def superclass(self) -> str:
        return self.shape


SUBJECTS = (
    Subject("sunny_ball", "ball", "yellow", "striped", "blue", "eyes"),
    Subject("checker_box", "box", "pink", "checkered", "green", "band"),
    Subject("spotted_star", "star", "purple", "dotted", "orange", "eyes"),
    Subject("candy_heart", "heart", "cyan", "striped", "red", "spot"),
    Subject("dotted_ring", "ring", "orange", "dotted", "blue", "band"),
    Subject("stone_pyramid", "pyramid", "green", "checkered", "purple", "spot"),
)
SUBJECTS_BY_SLUG = {subject.slug: subject for subject in SUBJECTS}

# The world prompt set: the paper's recontextualisation prompts, one per scene, and property prompts.
PROMPT_TEMPLATES = (
    *(f"a {{concept}} {phrase}" for phrase in SCENES.values()),
    "a red {concept} on the grass",
    "a blue {concept} in the snow",
    "a striped {concept} on the beach",
    "a dotted {concept} in the city",
)


def world_words() -> list[str]:
    """Every word a world caption can use, for the world's tokenizer."""
    words = ["a", "an", "photo", "of", CONCEPT_TOKEN, *SHAPES, *COLOURS, *PATTERNS[1:]]
    for phrase in SCENES.values():
        words += phrase.split()
    return list(dict.fromkeys(words))
