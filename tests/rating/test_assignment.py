"""The assignment engine: leases, capacity, order, sides, check pairs; many raters at once."""

import itertools
import random
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from studyapp.models import Answer, Assignment, Pair, Rater
from studyapp.rating.answers import submit_answer
from studyapp.rating.assignment import (
    LOOKAHEAD,
    _disjoint_choice,
    balanced_side,
    claim_leases,
    kind_schedule,
    side_coin,
)
from tests.rating.factories import check_pair, open_rater, published_study, rate_all


@pytest.mark.django_db
class TestNextPair:
    def test_it_gives_the_same_pair_back_on_reload(self):
        study = published_study()
        rater = open_rater(study)
        first = claim_leases(rater)
        again = claim_leases(rater)
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
            leases = claim_leases(rater)
            assert {leases.current.pair_id, leases.upcoming.pair_id} == overlap

    def test_it_prefers_the_least_rated_pairs(self):
        study = published_study(seeds=3, ratings_per_pair=3, pairs_per_rater=3)
        rate_all(open_rater(study, "first"))
        rated_once = set(Answer.objects.values_list("pair_id", flat=True))
        leases = claim_leases(open_rater(study, "second"))
        assert leases.current.pair_id not in rated_once
        assert leases.upcoming.pair_id not in rated_once

    def test_live_leases_count_against_the_target_and_keep_others_waiting_not_finished(self):
        study = published_study(seeds=1, ratings_per_pair=1)  # two pairs, one rating each
        holder = claim_leases(open_rater(study, "holder"))
        assert {holder.current.pair_id, holder.upcoming.pair_id} == set(study.pairs.values_list("pk", flat=True))
        other = claim_leases(open_rater(study, "other"))
        assert other.current is None and other.busy and not other.finished

    def test_a_rater_is_finished_early_only_when_every_pair_is_full_with_answers(self):
        study = published_study(seeds=1, ratings_per_pair=1)
        rate_all(open_rater(study, "first"))
        late = claim_leases(open_rater(study, "late"))
        assert late.current is None and late.finished

    def test_an_idle_raters_leases_free_their_pairs_before_the_lease_time(self, settings):
        settings.RATER_IDLE_SECONDS = 60
        study = published_study(seeds=1, ratings_per_pair=1, lease_seconds=900)
        start = timezone.now()
        claim_leases(open_rater(study, "idle"), now=start)
        assert claim_leases(open_rater(study, "early"), now=start + timedelta(seconds=59)).busy
        other = claim_leases(open_rater(study, "other"), now=start + timedelta(seconds=61))
        assert other.current is not None and other.upcoming is not None

    def test_a_rater_who_keeps_loading_pages_keeps_their_leases(self, settings):
        settings.RATER_IDLE_SECONDS = 60
        study = published_study(seeds=1, ratings_per_pair=1, lease_seconds=900)
        start = timezone.now()
        active = open_rater(study, "active")
        claim_leases(active, now=start)
        claim_leases(active, now=start + timedelta(seconds=50))  # a reload: both leases last 60 s from here
        waiting = claim_leases(open_rater(study, "other"), now=start + timedelta(seconds=100))
        assert waiting.current is None and waiting.busy
        assert claim_leases(open_rater(study, "later"), now=start + timedelta(seconds=111)).current is not None

    def test_a_rater_never_holds_more_than_the_lookahead(self, settings):
        settings.RATER_IDLE_SECONDS = 30
        study = published_study(seeds=6, ratings_per_pair=2, pairs_per_rater=12)
        raters = [open_rater(study, name) for name in ("a", "b", "c")]
        now, rng = timezone.now(), random.Random(7)
        for _ in range(60):
            now += timedelta(seconds=rng.choice([1, 5, 29, 31, 70]))
            rater = rng.choice(raters)
            leases = claim_leases(rater, now=now)
            if leases.current is not None and rng.random() < 0.6:
                submit_answer(rater, leases.current.token, {"text": "1", "image": "2", "overall": "0"}, now=now)
            for each in raters:
                live = Assignment.objects.filter(rater=each, state=Assignment.State.LEASED, expires__gt=now)
                assert live.count() <= LOOKAHEAD

    def test_an_expired_lease_returns_to_the_pool(self):
        study = published_study(seeds=1, ratings_per_pair=1, lease_seconds=60)
        claim_leases(open_rater(study, "holder"))
        later = timezone.now() + timedelta(seconds=61)
        other = claim_leases(open_rater(study, "other"), now=later)
        assert other.current is not None

    def test_gold_and_attention_pairs_are_mixed_in_at_their_rates(self):
        study = published_study(seeds=10, pairs_per_rater=20, gold_rate=0.1, attention_rate=0.05)
        golds = [check_pair(study, Pair.Kind.GOLD, {"text": "a"}) for _ in range(3)]
        check_pair(study, Pair.Kind.ATTENTION, {"text": "a", "image": "a", "overall": "a"})
        rater = open_rater(study)
        rate_all(rater)
        kinds = Counter(Answer.objects.filter(rater=rater).values_list("pair__kind", flat=True))
        assert kinds == {"regular": 17, "gold": 2, "attention": 1}
        assert (
            Pair.objects.get(pk=golds[0].pk).ratings_count
            + Pair.objects.get(pk=golds[1].pk).ratings_count
            + Pair.objects.get(pk=golds[2].pk).ratings_count
            == 2
        )

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

    def test_a_rater_never_sees_an_image_twice_when_comparisons_share_a_baseline(self):
        study = published_study(methods=3, seeds=4, ratings_per_pair=5, pairs_per_rater=50)  # 2 x 8 pairs
        rater = open_rater(study)
        rated = rate_all(rater)
        images = [image for pair in Pair.objects.filter(pk__in=rated) for image in (pair.image_a_id, pair.image_b_id)]
        assert len(rated) == 8 and len(images) == len(set(images))  # one pair per baseline image
        assert claim_leases(rater).finished  # nothing is left that shows them only new images

    def test_check_pairs_made_of_study_images_still_come_and_repeat_no_image(self):
        study = published_study(seeds=15, pairs_per_rater=20, gold_rate=0.1, attention_rate=0.05)
        regular = list(study.pairs.order_by("id"))
        for index in range(3):  # gold: two study images of different regular pairs, as real gold pairs are
            first, second = regular[2 * index], regular[2 * index + 1]
            Pair.objects.create(
                study=study,
                kind=Pair.Kind.GOLD,
                image_a=first.image_a,
                image_b=second.image_a,
                concept=first.concept,
                prompt=first.prompt,
                expected={"text": "a"},
            )
        grey = check_pair(study, Pair.Kind.ATTENTION, {"text": "a"})
        Pair.objects.filter(pk=grey.pk).update(image_a=regular[9].image_b)  # a study image against its grey copy
        rater = open_rater(study)
        rated = rate_all(rater)
        kinds = Counter(Pair.objects.filter(pk__in=rated).values_list("kind", flat=True))
        assert kinds == {"regular": 17, "gold": 2, "attention": 1}
        images = [image for pair in Pair.objects.filter(pk__in=rated) for image in (pair.image_a_id, pair.image_b_id)]
        assert len(images) == len(set(images))

    def test_sides_balance_per_comparison_in_an_order_earlier_pairs_do_not_tell(self):
        study = published_study(methods=3, seeds=10, ratings_per_pair=4, pairs_per_rater=20)
        orders = []
        for name in ("a", "b", "c", "d"):
            rater = open_rater(study, name)
            rate_all(rater)
            rows = Answer.objects.filter(rater=rater).order_by("assignment__position")
            for comparison in study.comparisons.all():
                sides = list(rows.filter(pair__comparison=comparison).values_list("left_is_a", flat=True))
                assert abs(sides.count(True) - sides.count(False)) <= 1, (name, comparison, sides)
                orders.append(sides)
        alternating = [all(a != b for a, b in itertools.pairwise(order)) for order in orders]
        assert not all(alternating)


def test_the_side_coin_is_keyed_by_the_secret_and_the_rater(settings):
    settings.SECRET_KEY = "one-secret-" + "k" * 40

    def sides(rater_pk: int, count: int = 40) -> list[bool]:
        shown = []
        for _ in range(count):
            left = sum(shown)
            shown.append(balanced_side(left, len(shown), coin=side_coin(Rater(pk=rater_pk), 7, len(shown))))
        return shown

    orders = {pk: sides(pk) for pk in range(1, 9)}
    assert all(abs(sum(order) - (len(order) - sum(order))) == 0 for order in orders.values())
    assert not any(all(a != b for a, b in itertools.pairwise(o)) for o in orders.values())
    assert len({tuple(order) for order in orders.values()}) == len(orders)
    settings.SECRET_KEY = "another-secret-" + "k" * 40
    assert sides(1) != orders[1]


def test_the_check_pair_search_looks_past_a_first_choice_that_blocks_the_rest():
    rows = [(1, "gold", 1, 2), (2, "gold", 3, 4), (3, "gold", 1, 5), (4, "gold", 2, 6)]  # (id, kind, images)
    chosen = _disjoint_choice(["gold"] * 3, {"gold": rows, "attention": []})
    assert sorted(row[0] for row in chosen) == [2, 3, 4]  # taking pair 1 first would leave room for one more
    assert len(_disjoint_choice(["gold"] * 4, {"gold": rows, "attention": []})) == 3  # the longest there is


def test_the_side_that_is_behind_goes_next():
    assert balanced_side(left_shown=2, shown=5) is True
    assert balanced_side(left_shown=3, shown=5) is False
    assert {balanced_side(left_shown=2, shown=4) for _ in range(64)} == {True, False}


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
                leases = claim_leases(rater)
                if leases.current is None and not leases.busy:
                    return
                if leases.current is not None:
                    values = {q: rng.choice("120") for q in ("text", "image", "overall")}
                    submit_answer(rater, leases.current.token, values)
        except Exception as exc:
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
    sides = Counter(Answer.objects.values_list("rater_id", "pair__comparison_id", "left_is_a"))
    for rater, comparison, _ in list(sides):
        assert abs(sides[rater, comparison, True] - sides[rater, comparison, False]) <= 1, (rater, comparison)
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
            leases = claim_leases(Rater.objects.select_related("study").get(pk=rater.pk))
            seen.append((leases.current.pk, leases.upcoming.pk))
        except Exception as exc:
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
