"""Constraints that the database itself enforces."""

import pytest
from django.db import IntegrityError, transaction

from studyapp.models import Answer, Assignment, Comparison, GeneratedImage, Method, Pair, Prompt, Rater
from studyapp.studies.pairs import build_pairs
from tests import factories

pytestmark = pytest.mark.django_db


def _one_pair():
    study = factories.study_with_images(methods=2, seeds=1)
    build_pairs(study)
    return study, study.pairs.first()


def _answer(rater, pair, **choices):
    values = {"text": "a", "image": "b", "overall": "tie", **choices}
    return Answer.objects.create(rater=rater, pair=pair, left_is_a=True, **values)


def test_second_answer_by_same_rater_to_same_pair_is_rejected_by_database():
    study, pair = _one_pair()
    rater = Rater.objects.create(study=study, source="open", external_id="r1")
    _answer(rater, pair)
    with pytest.raises(IntegrityError), transaction.atomic():
        _answer(rater, pair, text="b")
    assert Answer.objects.count() == 1


def test_answer_naming_anything_but_the_two_methods_or_a_tie_is_rejected():
    study, pair = _one_pair()
    rater = Rater.objects.create(study=study, source="open", external_id="r1")
    with pytest.raises(IntegrityError), transaction.atomic():
        _answer(rater, pair, overall="c")


def test_second_image_for_the_same_run_slot_is_rejected():
    prompts = factories.prompt_set()
    concept = factories.concept()
    run = factories.run(factories.method(), prompts)
    prompt = prompts.prompts.first()
    factories.generated_image(run, concept, prompt, seed_index=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        factories.generated_image(run, concept, prompt, seed_index=0)
    assert GeneratedImage.objects.count() == 1


def test_prompt_without_placeholder_is_rejected_by_database():
    prompts = factories.prompt_set()
    with pytest.raises(IntegrityError), transaction.atomic():
        Prompt.objects.create(prompt_set=prompts, position=9, template="a dog in the snow")


def test_comparison_of_a_method_with_itself_is_rejected():
    study = factories.study_with_images(methods=2, seeds=1)
    method = Method.objects.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.create(study=study, method_a=method, method_b=method)


def test_external_method_cannot_name_a_sampler():
    with pytest.raises(IntegrityError), transaction.atomic():
        Method.objects.create(name="baseline", kind=Method.Kind.EXTERNAL, sampler="mixed")


def test_regular_pair_needs_a_comparison():
    study, pair = _one_pair()
    with pytest.raises(IntegrityError), transaction.atomic():
        Pair.objects.create(
            study=study,
            kind="regular",
            image_a=pair.image_a,
            image_b=pair.image_b,
            concept=pair.concept,
            prompt=pair.prompt,
        )


def test_one_answer_per_assignment():
    study, pair = _one_pair()
    rater = Rater.objects.create(study=study, source="open", external_id="r1")
    from django.utils import timezone

    assignment = Assignment.objects.create(rater=rater, pair=pair, position=1, left_is_a=True, expires=timezone.now())
    Answer.objects.create(
        rater=rater, pair=pair, assignment=assignment, text="a", image="a", overall="a", left_is_a=True
    )
    other = Rater.objects.create(study=study, source="open", external_id="r2")
    with pytest.raises(IntegrityError), transaction.atomic():
        Answer.objects.create(
            rater=other, pair=pair, assignment=assignment, text="a", image="a", overall="a", left_is_a=True
        )


def test_prompt_renders_concept_and_superclass_prompts():
    concept = factories.concept(superclass="stuffed animal", kind="object", token="<plush>")
    prompt = factories.prompt_set().prompts.first()
    assert prompt.concept_prompt(concept) == "a <plush> stuffed animal in the snow"
    assert prompt.superclass_prompt(concept) == "a stuffed animal in the snow"
