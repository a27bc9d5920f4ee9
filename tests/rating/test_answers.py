"""Recording answers: method space, replays, forged values, expired leases, closed studies, screening out."""

from datetime import timedelta

import pytest
from django.utils import timezone

from studyapp.models import Answer, Assignment, Pair
from studyapp.rating.answers import Refused, bounded_response_ms, submit_answer, to_method_space
from studyapp.rating.assignment import claim_leases
from tests.rating.factories import ALL_ONE, check_pair, open_rater, published_study


@pytest.mark.django_db
class TestSubmit:
    def test_it_stores_answers_in_method_space_and_keeps_the_screen_answer(self):
        study = published_study()
        rater = open_rater(study)
        current = claim_leases(rater).current
        submit_answer(rater, current.token, {"text": "1", "image": "2", "overall": "0"}, response_ms=900)
        answer = Answer.objects.get()
        left, right = ("a", "b") if current.left_is_a else ("b", "a")
        assert (answer.text, answer.image, answer.overall) == (left, right, "tie")
        assert answer.screen_answers == {"text": "1", "image": "2", "overall": "0"}
        assert answer.left_is_a == current.left_is_a
        assert Pair.objects.get(pk=current.pair_id).ratings_count == 1
        assert Assignment.objects.get(pk=current.pk).state == Assignment.State.ANSWERED

    def test_a_replayed_answer_stores_nothing_new(self):
        study = published_study()
        rater = open_rater(study)
        current = claim_leases(rater).current
        submit_answer(rater, current.token, ALL_ONE)
        replay = submit_answer(rater, current.token, ALL_ONE)
        assert replay.duplicate
        assert Answer.objects.count() == 1
        assert Pair.objects.get(pk=current.pair_id).ratings_count == 1

    def test_a_changed_second_answer_is_refused_and_the_first_kept(self):
        study = published_study()
        rater = open_rater(study)
        current = claim_leases(rater).current
        submit_answer(rater, current.token, ALL_ONE)
        with pytest.raises(Refused) as refusal:
            submit_answer(rater, current.token, {"text": "2", "image": "2", "overall": "2"})
        assert refusal.value.status == 409
        assert Answer.objects.get().screen_answers == ALL_ONE

    @pytest.mark.parametrize("forged", [{"text": "a"}, {"text": "3"}, {"text": ""}, {"text": None}, {"text": "1 "}])
    def test_a_forged_value_is_refused(self, forged):
        study = published_study()
        rater = open_rater(study)
        current = claim_leases(rater).current
        with pytest.raises(Refused) as refusal:
            submit_answer(rater, current.token, {**ALL_ONE, **forged})
        assert refusal.value.status == 400
        assert "expected 1, 2 or 0" in refusal.value.message
        assert not Answer.objects.exists()

    def test_an_answer_for_another_raters_pair_is_refused(self):
        study = published_study()
        owner, intruder = open_rater(study, "owner"), open_rater(study, "intruder")
        current = claim_leases(owner).current
        with pytest.raises(Refused) as refusal:
            submit_answer(intruder, current.token, ALL_ONE)
        assert refusal.value.status == 403
        assert not Answer.objects.exists()

    def test_an_expired_and_reassigned_lease_is_refused(self):
        study = published_study(seeds=1, ratings_per_pair=1, lease_seconds=60)
        slow = open_rater(study, "slow")
        lost = claim_leases(slow).current
        later = timezone.now() + timedelta(seconds=61)
        claim_leases(open_rater(study, "quick"), now=later)  # takes both pairs
        with pytest.raises(Refused) as refusal:
            submit_answer(slow, lost.token, ALL_ONE, now=later)
        assert refusal.value.status == 409
        assert "went to another rater" in refusal.value.message
        assert not Answer.objects.exists()
        assert Pair.objects.get(pk=lost.pair_id).ratings_count == 0

    def test_an_expired_lease_nobody_took_is_still_accepted(self):
        study = published_study(seeds=1, ratings_per_pair=1, lease_seconds=60)
        rater = open_rater(study)
        current = claim_leases(rater).current
        later = timezone.now() + timedelta(seconds=61)
        submit_answer(rater, current.token, ALL_ONE, now=later)
        assert Answer.objects.count() == 1

    def test_a_closed_study_refuses_answers(self):
        study = published_study()
        rater = open_rater(study)
        current = claim_leases(rater).current
        study.state = study.State.CLOSED
        study.save()
        with pytest.raises(Refused) as refusal:
            submit_answer(rater, current.token, ALL_ONE)
        assert refusal.value.status == 410
        assert not Answer.objects.exists()

    def test_failing_more_attention_checks_than_allowed_screens_out(self):
        study = published_study(
            seeds=4, pairs_per_rater=8, attention_rate=0.25, exclusion_rules={"max_attention_failures": 0}
        )
        for _ in range(2):
            check_pair(study, Pair.Kind.ATTENTION, {"text": "a", "image": "a", "overall": "a"})
        rater = open_rater(study)
        for _ in range(8):
            leases = claim_leases(rater)
            current, upcoming = leases.current, leases.upcoming
            wrong = "2" if current.left_is_a else "1"
            answer = dict.fromkeys(("text", "image", "overall"), wrong)
            result = submit_answer(rater, current.token, answer)
            if result.screened_out:
                break
        rater.refresh_from_db()
        assert rater.screened_out is not None
        assert Answer.objects.filter(rater=rater, pair__kind="attention").count() == 1
        assert not Assignment.objects.filter(rater=rater, state=Assignment.State.LEASED).exists()
        with pytest.raises(Refused) as refusal:
            submit_answer(rater, upcoming.token, ALL_ONE)
        assert refusal.value.status == 403


def test_screen_answers_map_to_methods_by_side():
    assert to_method_space("1", left_is_a=True) == "a"
    assert to_method_space("1", left_is_a=False) == "b"
    assert to_method_space("2", left_is_a=False) == "a"
    assert to_method_space("0", left_is_a=False) == "tie"


def test_response_time_is_bounded_by_the_time_since_the_lease():
    leased = timezone.now()
    now = leased + timedelta(seconds=5)
    assert bounded_response_ms("1200", leased, now) == 1200
    assert bounded_response_ms("999999", leased, now) == 5000
    assert bounded_response_ms("-4", leased, now) is None
    assert bounded_response_ms("soon", leased, now) is None
    assert bounded_response_ms(None, leased, now) is None
