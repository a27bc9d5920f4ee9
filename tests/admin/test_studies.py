"""The study set-up in the admin: pages render, actions work for the owner and are refused to others."""

import csv
import io
import re
from collections import Counter

import pytest
from django.urls import reverse
from django.utils import timezone

from studyapp.models import QUESTIONS, Comparison, Pair, Rater, Study
from studyapp.rating.answers import submit_answer
from studyapp.rating.assignment import claim_leases
from studyapp.studies.check_images import CHECK_METHODS
from studyapp.studies.publishing import build_study_pairs, publish
from tests import factories
from tests.results.factories import study_with_answers

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    study = factories.study_with_images(methods=2, concepts=2, seeds=2)
    Study.objects.filter(pk=study.pk).update(pairs_per_rater=20, gold_rate=0.1, attention_rate=0.05)
    study.refresh_from_db()
    return study


def _setup_url(study):
    return reverse("admin:studyapp_study_setup", args=[study.pk])


def _change_url(study):
    return reverse("admin:studyapp_study_change", args=[study.pk])


def _post_action(client, study, action):
    return client.post(_setup_url(study), {"action": action})


def _confirm_url(study, action):
    return reverse("admin:studyapp_study_confirm", args=[study.pk, action])


def _change_form_data(study, **changes):
    """What the study page posts: the editable fields plus the comparison inline's management form."""
    comparisons = list(study.comparisons.all())
    data = {
        "comparisons-TOTAL_FORMS": len(comparisons),
        "comparisons-INITIAL_FORMS": len(comparisons),
        "comparisons-MIN_NUM_FORMS": 0,
        "comparisons-MAX_NUM_FORMS": 1000,
    }
    for index, comparison in enumerate(comparisons):
        data.update(
            {
                f"comparisons-{index}-id": comparison.pk,
                f"comparisons-{index}-study": study.pk,
                f"comparisons-{index}-position": comparison.position,
                f"comparisons-{index}-method_a": comparison.method_a_id,
                f"comparisons-{index}-method_b": comparison.method_b_id,
            }
        )
    fields = [
        "title",
        "slug",
        "ratings_per_pair",
        "overlap_fraction",
        "overlap_ratings",
        "pairs_per_rater",
        "gold_rate",
        "attention_rate",
        "display_size",
        "random_seed",
        "question_text",
        "question_image",
        "question_overall",
        "consent_text",
        "instructions",
        "completion_code",
        "completion_url",
        "screenout_url",
        "lease_seconds",
        "prolific_study_id",
    ]
    data.update({name: getattr(study, name) for name in fields})
    boxes = ("accept_open_link", "accept_invites", "accept_prolific")
    data.update({name: "on" for name in boxes if getattr(study, name)})
    data["exclusion_rules"] = "{}"
    data.update(changes)
    return data


def test_study_list_and_draft_page_render_with_editable_design(owner_client, study):
    listing = owner_client.get(reverse("admin:studyapp_study_changelist"))
    assert listing.status_code == 200 and _setup_url(study) in listing.content.decode()
    page = owner_client.get(_change_url(study)).content.decode()
    for name in ("ratings_per_pair", "overlap_fraction", "question_text", "consent_text", "gold_rate", "screenout_url"):
        assert f'name="{name}"' in page
    assert _setup_url(study) in page


def test_owner_edits_a_draft_through_the_study_page(owner_client, study):
    response = owner_client.post(
        _change_url(study), _change_form_data(study, ratings_per_pair=5, question_text="Which fits the words?")
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    study.refresh_from_db()
    assert (study.ratings_per_pair, study.question_text) == (5, "Which fits the words?")


@pytest.mark.parametrize(
    ("study_id", "error"),
    [("", "needed to accept Prolific participants"), ("not-an-id", "expected Prolific&#x27;s 24 hex characters")],
)
def test_accepting_prolific_needs_a_well_formed_prolific_study_id(owner_client, study, study_id, error):
    data = _change_form_data(study, accept_prolific="on", prolific_study_id=study_id)
    response = owner_client.post(_change_url(study), data)
    assert response.status_code == 200 and error in response.content.decode()
    study.refresh_from_db()
    assert not study.accept_prolific


def test_admission_can_be_switched_on_a_published_study(owner_client, study):
    type(study).objects.filter(pk=study.pk).update(state="published")
    study.refresh_from_db()
    data = _change_form_data(study, accept_prolific="on", prolific_study_id="ABCDEF0123456789abcdef01")
    data.pop("accept_open_link")  # an unticked box is absent from the form
    assert owner_client.post(_change_url(study), data).status_code == 302
    study.refresh_from_db()
    assert (study.accept_open_link, study.accept_prolific) == (False, True)
    assert study.prolific_study_id == "abcdef0123456789abcdef01"


def test_comparison_choices_leave_out_the_hidden_check_methods(owner_client, study):
    build_study_pairs(study)  # creates the gold-corrupted and attention-grey methods
    page = owner_client.get(_change_url(study)).content.decode()
    options = re.findall(r"<option[^>]*>([^<]+)</option>", page)
    assert not set(CHECK_METHODS) & set(options)
    assert study.comparisons.first().method_a.name in options


def test_setup_page_shows_counts_and_planner_numbers(owner_client, study):
    page = owner_client.get(_setup_url(study)).content.decode()
    assert 'id="study-state">draft' in page
    assert "The crossed model is the variance the results page uses" in page
    # Two subjects cannot carry a claim about subjects in general: the default shares put it out of reach.
    assert 'id="plan-unreachable"' in page and "out of reach: power at most" in page
    assert "2 &times; 2" in page  # the comparison's subjects x prompts
    assert "8 / 0" in page  # usable slots / built pairs


DESIGN_EFFECT_MODEL = {
    "model": "design effect",
    "rater_share": 0,
    "subject_share": 0,
    "prompt_share": 0,
    "subject_prompt_share": 0,
}


def test_the_planner_takes_its_shares_from_the_studys_answers_when_asked(owner_client):
    study = study_with_answers(raters=8)
    shares = {"rater_share": 0.05, "subject_share": 0.03, "prompt_share": 0.03, "subject_prompt_share": 0.02}
    query = {"win_rate": 0.6, "power": 0.8, "alpha": 0.05, "tie_rate": 0.25, "model": "crossed", "design_effect": 2}
    query.update(shares)
    assumed = owner_client.get(_setup_url(study), query).content.decode()
    piloted = owner_client.get(_setup_url(study), {**query, "use_pilot": "on"}).content.decode()
    assert 'id="pilot-used"' in piloted and 'id="pilot-used"' not in assumed
    assert "errornote" not in piloted


def test_planner_form_recomputes_from_the_given_numbers(owner_client, study):
    query = {"win_rate": 0.6, "power": 0.8, "alpha": 0.15, "tie_rate": 0.25, "design_effect": 2, **DESIGN_EFFECT_MODEL}
    # alpha 0.15 over 3 tests = 0.05 per test: N = 193.85 * 2 / 0.75 -> 517
    page = owner_client.get(_setup_url(study), query).content.decode()
    assert 'id="n-total">517<' in page and 'id="n-decisive">194<' in page
    invalid = owner_client.get(_setup_url(study), {**query, "win_rate": 0.5}).content.decode()
    assert "errornote" in invalid


def test_build_publish_new_version_and_close_from_the_setup_page(owner_client, study):
    response = _post_action(owner_client, study, "build")
    assert response.status_code == 302
    assert study.pairs.filter(kind=Pair.Kind.REGULAR).count() == 8
    assert study.pairs.filter(kind=Pair.Kind.GOLD).count() == 6
    assert study.pairs.filter(kind=Pair.Kind.ATTENTION).count() == 2
    page = owner_client.get(_setup_url(study)).content.decode()
    assert "8 / 8" in page

    owner_client.post(_confirm_url(study, "publish"))
    study.refresh_from_db()
    assert study.state == Study.State.PUBLISHED

    response = _post_action(owner_client, study, "new_version")
    follower = Study.objects.get(previous_version=study)
    assert response.status_code == 302 and response.url == _change_url(follower)
    assert follower.state == Study.State.DRAFT and follower.comparisons.count() == 1

    owner_client.post(_confirm_url(study, "close"))
    study.refresh_from_db()
    assert study.state == Study.State.CLOSED


@pytest.mark.parametrize("action", ["publish", "close"])
def test_publish_and_close_act_only_from_their_confirmation_page(owner_client, study, action):
    if action == "close":
        publish(study)
    before = Study.objects.get(pk=study.pk).state
    response = _post_action(owner_client, study, action)
    assert response.status_code == 302 and response.url == _confirm_url(study, action)
    page = owner_client.get(_confirm_url(study, action)).content.decode()
    assert "cannot be undone" in page and 'name="csrfmiddlewaretoken"' in page
    assert Study.objects.get(pk=study.pk).state == before
    owner_client.post(_confirm_url(study, action))
    assert Study.objects.get(pk=study.pk).state == {"publish": "published", "close": "closed"}[action]


def test_a_confirmation_post_without_the_csrf_token_is_refused(owner, study):
    from django.test import Client

    checking = Client(enforce_csrf_checks=True)
    checking.force_login(owner)
    assert checking.post(_confirm_url(study, "publish")).status_code == 403
    assert Study.objects.get(pk=study.pk).state == Study.State.DRAFT
    assert checking.get(_confirm_url(study, "explode")).status_code == 404


def test_a_refused_action_says_why_and_changes_nothing(owner_client, study):
    publish(study)
    response = owner_client.post(_setup_url(study), {"action": "build"}, follow=True)
    assert "is published, so its design is fixed" in response.content.decode()
    response = owner_client.post(_setup_url(study), {"action": "explode"}, follow=True)
    assert "unknown action" in response.content.decode().lower()


def test_published_study_page_shows_the_design_read_only(owner_client, study):
    publish(study)
    page = owner_client.get(_change_url(study)).content.decode()
    for name in ("ratings_per_pair", "overlap_fraction", "question_text", "instructions", "gold_rate"):
        assert f'name="{name}"' not in page
    assert 'name="completion_code"' in page
    assert 'name="comparisons-0-method_a"' not in page
    assert "design is frozen" in page


def test_published_study_page_saves_the_completion_code_and_ignores_design_fields(owner_client, study):
    publish(study)
    study.refresh_from_db()
    data = _change_form_data(study, completion_code="C0DE-42", ratings_per_pair=9)
    response = owner_client.post(_change_url(study), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    study.refresh_from_db()
    assert (study.completion_code, study.ratings_per_pair) == ("C0DE-42", 3)
    assert study.comparisons.count() == 1


def test_design_edits_posted_after_publishing_are_not_saved_and_the_owner_is_told(owner_client, study):
    data = _change_form_data(study, ratings_per_pair=9)
    publish(study)
    response = owner_client.post(_change_url(study), data, follow=True)
    assert "changes to ratings_per_pair were not saved" in response.content.decode()
    study.refresh_from_db()
    assert study.ratings_per_pair == 3


def test_list_actions_publish_the_selected_studies_after_a_confirmation(owner_client, study):
    other = factories.study_with_images(methods=2, seeds=1)
    selected = {"action": "publish_action", "_selected_action": [study.pk, other.pk]}
    response = owner_client.post(reverse("admin:studyapp_study_changelist"), selected)
    assert response.status_code == 200 and "cannot be undone" in response.content.decode()
    assert set(Study.objects.values_list("state", flat=True)) == {Study.State.DRAFT}
    response = owner_client.post(
        reverse("admin:studyapp_study_changelist"), {**selected, "confirmed": "yes"}, follow=True
    )
    assert response.status_code == 200
    assert set(Study.objects.values_list("state", flat=True)) == {Study.State.PUBLISHED}
    owner_client.post(
        reverse("admin:studyapp_study_changelist"), {"action": "new_version_action", "_selected_action": [study.pk]}
    )
    assert Study.objects.filter(previous_version=study, state=Study.State.DRAFT).exists()


def test_pair_pages_are_read_only(owner_client, study):
    build_study_pairs(study)
    gold = study.pairs.filter(kind=Pair.Kind.GOLD).first()
    assert owner_client.get(reverse("admin:studyapp_pair_changelist")).status_code == 200
    page = owner_client.get(reverse("admin:studyapp_pair_change", args=[gold.pk])).content.decode()
    assert 'name="expected"' not in page and "images (a, b)" in page.lower()
    assert owner_client.get(reverse("admin:studyapp_pair_add")).status_code == 403


def test_a_non_staff_user_is_sent_to_login_and_changes_nothing(client, outsider, study):
    client.force_login(outsider)
    for response in (
        client.get(_setup_url(study)),
        _post_action(client, study, "build"),
        _post_action(client, study, "publish"),
    ):
        assert response.status_code == 302 and reverse("admin:login") in response.url
    study.refresh_from_db()
    assert study.state == Study.State.DRAFT and not study.pairs.exists()


def test_staff_without_change_permission_can_look_but_not_act(client, django_user_model, study):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", "viewer@example.org", "viewer-pass-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_study"))
    client.force_login(viewer)
    page = client.get(_setup_url(study))
    assert page.status_code == 200 and 'name="action"' not in page.content.decode()
    assert _post_action(client, study, "publish").status_code == 403
    study.refresh_from_db()
    assert study.state == Study.State.DRAFT
    assert not Comparison.objects.filter(study__previous_version=study).exists()


def _rate_checks_right(rater) -> Counter:
    """Answer every pair the engine hands out (checks correctly) until done; the kinds of pairs answered."""
    kinds = Counter()
    while (leases := claim_leases(rater)).current is not None:
        assignment = leases.current
        side = {"a": "1" if assignment.left_is_a else "2", "b": "2" if assignment.left_is_a else "1"}
        answer = {q: side[assignment.pair.expected.get(q, "a")] for q in QUESTIONS}
        result = submit_answer(rater, assignment.token, answer, response_ms=3000)
        kinds[assignment.pair.kind] += 1
        assert not result.screened_out
    return kinds


# Halves round up, the tolerance absorbs float error: 0.5 -> 1 (Python's round gives 0), 1.5000000000000002 -> 2.
@pytest.mark.parametrize(
    ("gold_rate", "attention_rate", "expected"), [(0.05, 0.05, (1, 1)), (0.15, 0.1, (2, 1)), (0.04, 0.25, (0, 3))]
)
def test_the_checks_the_setup_page_promises_are_the_checks_raters_get(
    owner_client, gold_rate, attention_rate, expected
):
    study = factories.study_with_images(methods=2, concepts=2, seeds=4)
    Study.objects.filter(pk=study.pk).update(
        pairs_per_rater=10, gold_rate=gold_rate, attention_rate=attention_rate, ratings_per_pair=5
    )
    publish(study)
    study.refresh_from_db()
    page = owner_client.get(_setup_url(study)).content.decode()
    promised = {kind: int(re.search(rf'id="{kind}-per-rater">(\d+)<', page).group(1)) for kind in ("gold", "attention")}
    assert (promised["gold"], promised["attention"]) == expected
    assert ("gold rate 0.04 x 10 pairs rounds to 0" in page) == (gold_rate == 0.04)
    for number in range(3):
        rater = Rater.objects.create(study=study, source=Rater.Source.OPEN, external_id=f"rater-{number}")
        rater.consented = rater.instructed = timezone.now()
        rater.save()
        kinds = _rate_checks_right(rater)
        assert sum(kinds.values()) == 10
        assert (kinds[Pair.Kind.GOLD], kinds[Pair.Kind.ATTENTION]) == (promised["gold"], promised["attention"])


def test_setup_and_study_pages_show_the_open_link_and_the_prolific_url(owner_client, study):
    open_link = f"http://testserver/s/{study.open_link_token}/"
    prolific = (
        open_link + "?PROLIFIC_PID={{%PROLIFIC_PID%}}&amp;STUDY_ID={{%STUDY_ID%}}&amp;SESSION_ID={{%SESSION_ID%}}"
    )
    for url in (_setup_url(study), _change_url(study)):
        page = owner_client.get(url).content.decode()
        assert f'id="open-link" value="{open_link}"' in page
        assert f'id="prolific-link" value="{prolific}"' in page


def test_invites_download_as_csv_and_each_link_admits_its_rater(owner_client, client, study):
    publish(study)
    response = owner_client.post(reverse("admin:studyapp_study_invites", args=[study.pk]), {"count": "5"})
    assert response["Content-Type"].startswith("text/csv")
    assert f'filename="{study.slug}-invites.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 5 == len({row["code"] for row in rows})
    assert Rater.objects.filter(study=study, source=Rater.Source.INVITE).count() == 5
    path = rows[0]["link"].removeprefix("http://testserver")
    entered = client.get(path)
    invited = Rater.objects.get(study=study, external_id=rows[0]["code"])
    assert entered.status_code == 302 and invited.token in entered.url


@pytest.mark.parametrize("count", ["0", "abc", "10001", ""])
def test_a_bad_invite_count_is_an_error_message_not_a_download(owner_client, study, count):
    url = reverse("admin:studyapp_study_invites", args=[study.pk])
    response = owner_client.post(url, {"count": count}, follow=True)
    assert response.status_code == 200 and "expected a whole number from 1 to 10000" in response.content.decode()
    assert not Rater.objects.filter(study=study).exists()


def test_the_monitor_counts_answers_raters_and_what_is_left(owner_client, study):
    Study.objects.filter(pk=study.pk).update(
        gold_rate=0, attention_rate=0, pairs_per_rater=3, ratings_per_pair=2, overlap_fraction=0
    )
    publish(study)
    study.refresh_from_db()
    url = reverse("admin:studyapp_study_monitor", args=[study.pk])
    before = owner_client.get(url).json()
    assert (before["answers"], before["ratings_remaining"], before["projected_finish"]) == (0, 16, None)
    rater = Rater.objects.create(study=study, source=Rater.Source.OPEN, external_id="monitored")
    rater.consented = rater.instructed = timezone.now()
    rater.save()
    _rate_checks_right(rater)
    after = owner_client.get(url).json()
    assert after["answers"] == after["answers_last_hour"] == 3
    assert after["active_raters"] == 1
    assert after["ratings_remaining"] == 13
    assert after["pairs_remaining"] == 8
    assert 3.9 < after["hours_left"] < 4.4  # 13 ratings at 3 an hour
    page = owner_client.get(_setup_url(study)).content.decode()
    assert 'data-field="answers_last_hour">3<' in page


def test_the_links_say_when_the_study_does_not_accept_that_way_in(owner_client, study):
    page = owner_client.get(_setup_url(study)).content.decode()
    assert "Prolific participants are not accepted yet" in page and "accept open link" not in page
    Study.objects.filter(pk=study.pk).update(accept_prolific=True, prolific_study_id="a" * 24, accept_open_link=False)
    page = owner_client.get(_change_url(study)).content.decode()
    assert "Prolific participants are not accepted yet" not in page
    assert "The open link admits only invited people and Prolific participants" in page
