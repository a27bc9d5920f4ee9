"""What the world's judge sees in a pair: per image, the oracle scores of the three questions.

Judge outputs are cached per image and per concept (its reference photos), so a study's raters run
each picture through the judge once.
"""

from __future__ import annotations

from studyapp.models import Concept, GeneratedImage, Pair


class JudgeView:
    def __init__(self, judge=None):
        if judge is None:
            from generation.world.judge import Judge
            from generation.world.paths import JUDGE

            judge = Judge(JUDGE)
        self.judge = judge
        self._images: dict[int, dict] = {}
        self._subjects: dict[int, str] = {}

    def scores(self, pair: Pair) -> tuple[dict[str, float], dict[str, float]]:
        from generation.world.oracle import image_scores

        prompt = pair.prompt.superclass_prompt(pair.concept)
        subject = self.subject_of(pair.concept)
        return tuple(image_scores(self.probabilities(image), prompt, subject) for image in (pair.image_a, pair.image_b))

    def probabilities(self, image: GeneratedImage) -> dict:
        if image.pk not in self._images:
            self._images[image.pk] = {
                head: values[0] for head, values in self.judge.probabilities([_pil(image.file)]).items()
            }
        return self._images[image.pk]

    def subject_of(self, concept: Concept) -> str:
        from generation.world.oracle import reference_subject

        if concept.pk not in self._subjects:
            photos = [_pil(reference.image) for reference in concept.references.all()]
            self._subjects[concept.pk] = reference_subject(self.judge.probabilities(photos)) if photos else "none"
        return self._subjects[concept.pk]


def _pil(file_field):
    from PIL import Image

    with file_field.open("rb") as handle:
        image = Image.open(handle)
        image.load()
    return image.convert("RGB")
