"""The assignment engine: leases, capacity, order, sides, check pairs, answers in method space."""

import random
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from studyapp.assignment import (
    Refused,
    balanced_side,
    bounded_response_ms,
    kind_schedule,
    progress,
    submit_answer,
    to_method_space,
)
from studyapp.models import Answer, Assignment, Pair, Rater
from tests.rating_fixtures import check_pair, open_rater, published_study
from tests.rating_fixtures import empty_cache  # noqa: F401 - autouse

ALL_ONE = {"text": "1", "image": "1", "overall": "1"}


def rate_all(rater, answer=ALL_ONE, limit=200):
    """Answer whatever the engine hands out until it says the rater is done; returns the pairs rated."""
    rated = []
    for _ in range(limit):
        state = progress(rater)
        if state.current is None:
            return rated
        submit_answer(rater, state.current.token, answer, response_ms=1000)
        rated.append(state.current.pair_id)
    raise AssertionError(f"rater {rater.pk} was still being given pairs after {limit}")


@pytest.mark.django_db
class TestNextPair:
    def test_it_gives_the_same_pair_back_on_reload(self):
        study = published_study()
        rater = open_rater(study)
        first = progress(rater)
        again = progress(rater)
        assert again.current.pk == first.current.pk
        assert again.upcoming.pk == first.upcoming.pk
        assert Assignment.objects.filter(rater=rater).count() == 2

    def test_it_never_gives_a_rater_the_same_pair_twice(self):
        study = published_study(seeds=3, ratings_per_pair=5, pairs_per_rater=50)
        rater = open_rater(study)
        rated = rate_all(rater)
        assert len(rated) == len(set(rated)) == study.pairs.count()

    def test_it_stops_at_the_quota_and_marks_the_rater_complete(self):
        study = published_study(seeds=3, pairs_per_rater=4)
        rater = open_rater(study)
        assert len(rate_all(rater)) == 4
        rater.refresh_from_db()
        assert rater.completed is not None
        assert not Assignment.objects.filter(rater=rater, state=Assignment.State.LEASED).exists()

    def test_it_serves_the_overlap_subset_first(self):
        study = published_study(seeds=5, overlap_fraction=0.2, overlap_ratings=3, ratings_per_pair=1)
        overlap = set(study.pairs.filter(in_overlap=True).values_list("pk", flat=True))
        assert len(overlap) == 2
        for name in ("a", "b", "c"):
            rater = open_rater(study, name)
            state = progress(rater)
            assert {state.current.pair_id, state.upcoming.pair_id} == overlap

    def test_it_prefers_the_least_rated_pairs(self):
        study = published_study(seeds=3, ratings_per_pair=3, pairs_per_rater=3)
        rate_all(open_rater(study, "first"))
        rated_once = set(Answer.objects.values_list("pair_id", flat=True))
        state = progress(open_rater(study, "second"))
        assert state.current.pair_id not in rated_once
        assert state.upcoming.pair_id not in rated_once

    def test_live_leases_count_against_the_target(self):
        study = published_study(seeds=1, ratings_per_pair=1)  # two pairs, one rating each
        holder = progress(open_rater(study, "holder"))
        assert {holder.current.pair_id, holder.upcoming.pair_id} == set(study.pairs.values_list("pk", flat=True))
        other = progress(open_rater(study, "other"))
        assert other.current is None and other.finished

    def test_an_expired_lease_returns_to_the_pool(self):
        study = published_study(seeds=1, ratings_per_pair=1, lease_seconds=60)
        progress(open_rater(study, "holder"))
        later = timezone.now() + timedelta(seconds=61)
        other = progress(open_rater(study, "other"), now=later)
        assert other.current is not None

    def test_gold_and_attention_pairs_are_mixed_in_at_their_rates(self):
        study = published_study(seeds=10, pairs_per_rater=20, gold_rate=0.1, attention_rate=0.05)
        golds = [check_pair(study, Pair.Kind.GOLD, {"text": "a"}) for _ in range(3)]
        check_pair(study, Pair.Kind.ATTENTION, {"text": "a", "image": "a", "overall": "a"})
        rater = open_rater(study)
        rate_all(rater)
        kinds = Counter(Answer.objects.filter(rater=rater).values_list("pair__kind", flat=True))
        assert kinds == {"regular": 17, "gold": 2, "attention": 1}
        assert Pair.objects.get(pk=golds[0].pk).ratings_count + Pair.objects.get(pk=golds[1].pk).ratings_count + Pair.objects.get(pk=golds[2].pk).ratings_count == 2

    def test_the_first_pair_is_never_a_check(self):
        study = published_study(pairs_per_rater=10, gold_rate=0.5, attention_rate=0.4)
        schedules = [kind_schedule(study, Rater(pk=pk)) for pk in range(1, 30)]
        assert all(schedule[0] == Pair.Kind.REGULAR for schedule in schedules)
        assert all(Counter(schedule) == {"gold": 5, "attention": 4, "regular": 1} for schedule in schedules)

    def test_sides_stay_balanced_for_each_rater(self):
        study = published_study(seeds=6, pairs_per_rater=24, ratings_per_pair=1)
        rater = open_rater(study)
        rate_all(rater)
        sides = Counter(Answer.objects.filter(rater=rater).values_list("left_is_a", flat=True))
        assert abs(sides[True] - sides[False]) <= 1
        rater.refresh_from_db()
        assert rater.left_shown == sides[True]


@pytest.mark.django_db
class TestSubmit:
    def test_it_stores_answers_in_method_space_and_keeps_the_screen_answer(self):
        study = published_study()
        rater = open_rater(study)
        current = progress(rater).current
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
        current = progress(rater).current
        submit_answer(rater, current.token, ALL_ONE)
        replay = submit_answer(rater, current.token, ALL_ONE)
        assert replay.duplicate
        assert Answer.objects.count() == 1
        assert Pair.objects.get(pk=current.pair_id).ratings_count == 1

    def test_a_changed_second_answer_is_refused_and_the_first_kept(self):
        study = published_study()
        rater = open_rater(study)
        current = progress(rater).current
        submit_answer(rater, current.token, ALL_ONE)
        with pytest.raises(Refused) as refusal:
            submit_answer(rater, current.token, {"text": "2", "image": "2", "overall": "2"})
        assert refusal.value.status == 409
        assert Answer.objects.get().screen_answers == ALL_ONE

    @pytest.mark.parametrize("forged", [{"text": "a"}, {"text": "3"}, {"text": ""}, {"text": None}, {"text": "1 "}])
    def test_a_forged_value_is_refused(self, forged):
        study = published_study()
        rater = open_rater(study)
        current = progress(rater).current
        with pytest.raises(Refused) as refusal:
            submit_answer(rater, current.token, {**ALL_ONE, **forged})
        assert refusal.value.status == 400
        assert "expected 1, 2 or 0" in refusal.value.message
        assert not Answer.objects.exists()

    def test_an_answer_for_another_raters_pair_is_refused(self):
        study = published_study()
        owner, intruder = open_rater(study, "owner"), open_rater(study, "intruder")
        current = progress(owner).current
        with pytest.raises(Refused) as refusal:
            submit_answer(intruder, current.token, ALL_ONE)
        assert refusal.value.status == 403
        assert not Answer.objects.exists()

    def test_an_expired_and_reassigned_lease_is_refused(self):
        study = published_study(seeds=1, ratings_per_pair=1, lease_seconds=60)
        slow = open_rater(study, "slow")
        lost = progress(slow).current
        later = timezone.now() + timedelta(seconds=61)
        progress(open_rater(study, "quick"), now=later)  # takes both pairs
        with pytest.raises(Refused) as refusal:
            submit_answer(slow, lost.token, ALL_ONE, now=later)
        assert refusal.value.status == 409
        assert "went to another rater" in refusal.value.message
        assert not Answer.objects.exists()
        assert Pair.objects.get(pk=lost.pair_id).ratings_count == 0

    def test_an_expired_lease_nobody_took_is_still_accepted(self):
        study = published_study(seeds=1, ratings_per_pair=1, lease_seconds=60)
        rater = open_rater(study)
        current = progress(rater).current
        later = timezone.now() + timedelta(seconds=61)
        submit_answer(rater, current.token, ALL_ONE, now=later)
        assert Answer.objects.count() == 1

    def test_a_closed_study_refuses_answers(self):
        study = published_study()
        rater = open_rater(study)
        current = progress(rater).current
        study.state = study.State.CLOSED
        study.save()
        with pytest.raises(Refused) as refusal:
            submit_answer(rater, current.token, ALL_ONE)
        assert refusal.value.status == 410
        assert not Answer.objects.exists()

    def test_failing_more_attention_checks_than_allowed_screens_out(self):
        study = published_study(seeds=4, pairs_per_rater=8, attention_rate=0.25, exclusion_rules={"max_attention_failures": 0})
        for _ in range(2):
            check_pair(study, Pair.Kind.ATTENTION, {"text": "a", "image": "a", "overall": "a"})
        rater = open_rater(study)
        for _ in range(8):
            state = progress(rater)
            current, upcoming = state.current, state.upcoming
            wrong = "2" if current.left_is_a else "1"
            answer = {q: wrong for q in ("text", "image", "overall")}
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


def test_the_side_that_is_behind_goes_next():
    assert balanced_side(left_shown=2, shown=5) is True
    assert balanced_side(left_shown=3, shown=5) is False
    assert {balanced_side(left_shown=2, shown=4) for _ in range(64)} == {True, False}


def test_response_time_is_bounded_by_the_time_since_the_lease():
    leased = timezone.now()
    now = leased + timedelta(seconds=5)
    assert bounded_response_ms("1200", leased, now) == 1200
    assert bounded_response_ms("999999", leased, now) == 5000
    assert bounded_response_ms("-4", leased, now) is None
    assert bounded_response_ms("soon", leased, now) is None
    assert bounded_response_ms(None, leased, now) is None


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_raters_fill_every_pair_exactly_to_target(postgres):
    study = published_study(methods=3, seeds=10, ratings_per_pair=3, pairs_per_rater=4)  # 40 pairs, 120 slots
    raters = [open_rater(study, f"r{i}") for i in range(50)]
    start = threading.Barrier(len(raters))
    errors = []

    def work(rater):
        try:
            start.wait()
            rng = random.Random(rater.pk)
            for _ in range(100):
                state = progress(rater)
                if state.current is None and not state.busy:
                    return
                if state.current is not None:
                    values = {q: rng.choice("120") for q in ("text", "image", "overall")}
                    submit_answer(rater, state.current.token, values)
        except Exception as exc:  # noqa: BLE001 - reported below with the rater
            errors.append(f"rater {rater.pk}: {exc!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(rater,)) for rater in raters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:5]

    per_pair = Counter(Answer.objects.values_list("pair_id", flat=True))
    assert len(per_pair) == 40
    assert set(per_pair.values()) == {3}
    assert all(pair.ratings_count == 3 for pair in study.pairs.all())
    per_rater_pair = Counter(Answer.objects.values_list("rater_id", "pair_id"))
    assert set(per_rater_pair.values()) == {1}
    for rater in raters:
        sides = Counter(Answer.objects.filter(rater=rater).values_list("left_is_a", flat=True))
        assert abs(sides[True] - sides[False]) <= 1, (rater.pk, sides)
    assert not Assignment.objects.filter(state=Assignment.State.LEASED).exists()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_one_rater_reloading_in_many_tabs_at_once_holds_one_set_of_leases(postgres):
    study = published_study(seeds=5)
    rater = open_rater(study)
    start = threading.Barrier(10)
    seen, errors = [], []

    def reload():
        try:
            start.wait()
            state = progress(Rater.objects.select_related("study").get(pk=rater.pk))
            seen.append((state.current.pk, state.upcoming.pk))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=reload) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors[:3]
    assert len(set(seen)) == 1
    assert Assignment.objects.filter(rater=rater).count() == 2
