"""The rater's pages: entry links, consent and instructions, answering, refusals, CSRF and blinding."""

import io
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from PIL import Image

from studyapp.catalog.display import normalised
from studyapp.models import Answer, Assignment, GeneratedImage, GenerationRun, Method, Pair, Rater
from studyapp.rating.admission import create_invites
from studyapp.rating.assignment import claim_leases
from tests.rating.factories import check_pair, open_rater, published_study

pytestmark = pytest.mark.django_db
ALL_ONE = {"text": "1", "image": "1", "overall": "1"}
PID, PROLIFIC_STUDY, SESSION, SESSION_2 = "5f1a2b3c4d5e6f7a8b9c0d1e", "a" * 24, "c" * 24, "d" * 24


def prolific_study(**fields):
    return published_study(accept_prolific=True, prolific_study_id=PROLIFIC_STUDY, **fields)


def prolific_link(study, pid=PID, session=SESSION):
    return f"/s/{study.open_link_token}/?PROLIFIC_PID={pid}&STUDY_ID={PROLIFIC_STUDY}&SESSION_ID={session}"


def home_url(rater):
    return f"/r/{rater.token}/"


def current_token(client, rater):
    page = client.get(home_url(rater))
    assert page.status_code == 200, page.content[:300]
    return re.search(r'name="assignment" value="([^"]+)"', page.content.decode()).group(1)


def post_answer(client, rater, token, values=ALL_ONE, **extra):
    return client.post(f"/r/{rater.token}/answer", {"assignment": token, **values, **extra})


class TestEntry:
    def test_it_creates_an_anonymous_rater_and_resumes_them_by_cookie(self, client):
        study = published_study()
        first = client.get(f"/s/{study.open_link_token}/")
        again = client.get(f"/s/{study.open_link_token}/")
        assert first.status_code == again.status_code == 302
        assert first["Location"] == again["Location"]
        assert Rater.objects.filter(study=study, source="open").count() == 1

    def test_a_new_browser_becomes_a_new_rater(self, client):
        study = published_study()
        client.get(f"/s/{study.open_link_token}/")
        Client().get(f"/s/{study.open_link_token}/")
        assert Rater.objects.filter(study=study).count() == 2

    def test_a_prolific_participant_is_one_rater_resumed_only_in_their_own_browser(self, client):
        study = prolific_study()
        first = client.get(prolific_link(study))
        again = client.get(prolific_link(study))
        taken = Client().get(prolific_link(study, session=SESSION_2))  # someone else who knows the PID
        assert first.status_code == again.status_code == 302 and first["Location"] == again["Location"]
        assert taken.status_code == 403 and b"another browser" in taken.content
        rater = Rater.objects.get(study=study)
        assert (rater.source, rater.external_id) == ("prolific", PID)
        assert (rater.prolific_study_id, rater.prolific_session_id) == (PROLIFIC_STUDY, SESSION)

    def test_another_session_of_the_same_participant_is_refused(self, client):
        study = prolific_study()
        client.get(prolific_link(study))
        response = client.get(prolific_link(study, session=SESSION_2))
        assert response.status_code == 403 and b"another Prolific session" in response.content

    @pytest.mark.parametrize(
        ("query", "status"),
        [
            ("PROLIFIC_PID=%3Cscript%3E&STUDY_ID=" + PROLIFIC_STUDY + "&SESSION_ID=" + SESSION, 400),
            ("PROLIFIC_PID=" + PID + "&STUDY_ID=" + PROLIFIC_STUDY, 400),  # no session id
            ("PROLIFIC_PID=" + PID[:-1] + "&STUDY_ID=" + PROLIFIC_STUDY + "&SESSION_ID=" + SESSION, 400),
            ("PROLIFIC_PID=&STUDY_ID=&SESSION_ID=", 400),
            ("PROLIFIC_PID=" + PID + "&STUDY_ID=" + "b" * 24 + "&SESSION_ID=" + SESSION, 403),  # another study
        ],
    )
    def test_malformed_or_foreign_prolific_links_are_refused(self, client, query, status):
        study = prolific_study()
        response = client.get(f"/s/{study.open_link_token}/?{query}")
        assert response.status_code == status
        assert not Rater.objects.exists()

    def test_prolific_links_are_refused_when_the_study_does_not_use_prolific(self, client):
        study = published_study()
        response = client.get(prolific_link(study))
        assert response.status_code == 403 and b"Prolific" in response.content
        assert not Rater.objects.exists()

    def test_with_the_open_link_off_a_bare_link_makes_no_rater_but_a_returning_one_resumes(self, client):
        study = published_study()
        first = client.get(f"/s/{study.open_link_token}/")
        type(study).objects.filter(pk=study.pk).update(accept_open_link=False)
        assert client.get(f"/s/{study.open_link_token}/")["Location"] == first["Location"]
        refused = Client().get(f"/s/{study.open_link_token}/")
        assert refused.status_code == 403 and b"invitation" in refused.content
        assert Rater.objects.filter(study=study).count() == 1

    def test_invite_codes_are_refused_when_invites_are_off(self, client):
        study = published_study(accept_invites=False)
        create_invites(study, ["alice-01"])
        assert client.get(f"/s/{study.open_link_token}/?invite=alice-01").status_code == 403

    def test_new_raters_per_address_and_minute_are_limited(self, settings):
        settings.RATER_NEW_PER_ADDRESS_PER_MINUTE = 3
        study = published_study()
        replies = [Client().get(f"/s/{study.open_link_token}/") for _ in range(5)]
        assert [reply.status_code for reply in replies] == [302, 302, 302, 429, 429]
        assert replies[-1]["Retry-After"] == "60" and b"in a minute" in replies[-1].content
        other = Client(REMOTE_ADDR="192.0.2.7").get(f"/s/{study.open_link_token}/")
        assert other.status_code == 302  # another address has its own allowance
        assert Rater.objects.filter(study=study).count() == 4
        assert "192.0.2.7" not in set(Rater.objects.values_list("admitted_from", flat=True))

    def test_behind_the_proxy_the_address_is_the_one_it_appended(self, settings):
        settings.RATER_NEW_PER_ADDRESS_PER_MINUTE, settings.BEHIND_PROXY = 1, True
        study = published_study()

        def visit(forwarded: str) -> int:
            return Client(HTTP_X_FORWARDED_FOR=forwarded).get(f"/s/{study.open_link_token}/").status_code

        assert visit("198.51.100.1") == 302
        assert visit("203.0.113.9, 198.51.100.1") == 429  # a forged first entry does not make a new address
        assert visit("198.51.100.2") == 302

    def test_raters_at_once_are_limited_per_study(self, settings):
        settings.RATER_MAX_ACTIVE = 2
        study = published_study()
        replies = [Client().get(f"/s/{study.open_link_token}/") for _ in range(3)]
        assert [reply.status_code for reply in replies] == [302, 302, 429]
        Rater.objects.filter(study=study).update(completed=timezone.now())  # finished raters free their places
        assert Client().get(f"/s/{study.open_link_token}/").status_code == 302

    def test_an_invite_code_leads_to_its_rater_and_an_unknown_code_is_refused(self, client):
        study = published_study()
        [invited] = create_invites(study, ["alice-01"])
        response = client.get(f"/s/{study.open_link_token}/?invite=alice-01")
        assert response["Location"] == home_url(invited)
        refused = client.get(f"/s/{study.open_link_token}/?invite=made-up")
        assert refused.status_code == 404
        assert b"invite is not valid" in refused.content
        assert Rater.objects.count() == 1

    def test_a_draft_study_takes_no_raters(self, client):
        study = published_study()
        type(study).objects.filter(pk=study.pk).update(state="draft")
        response = client.get(f"/s/{study.open_link_token}/")
        assert response.status_code == 404
        assert not Rater.objects.exists()

    def test_a_closed_study_says_so(self, client):
        study = published_study()
        rater = open_rater(study)
        type(study).objects.filter(pk=study.pk).update(state="closed")
        for url in (f"/s/{study.open_link_token}/", home_url(rater)):
            response = client.get(url)
            assert response.status_code == 410
            assert b"This study is closed" in response.content

    def test_an_unknown_link_is_not_found(self, client):
        assert client.get("/s/no-such-link/").status_code == 404
        assert client.get("/r/no-such-rater/").status_code == 404


class TestFlow:
    def test_consent_then_instructions_come_before_the_first_pair(self, client):
        study = published_study(consent_text="We keep answers anonymous.", instructions="Look closely.")
        rater = open_rater(study, ready=False)
        page = client.get(home_url(rater))
        assert b"We keep answers anonymous." in page.content and b'name="assignment"' not in page.content
        client.post(f"/r/{rater.token}/consent", {"consent": "yes"})
        page = client.get(home_url(rater))
        assert b"Look closely." in page.content and b'name="assignment"' not in page.content
        assert not Assignment.objects.filter(rater=rater).exists()
        client.post(f"/r/{rater.token}/start")
        page = client.get(home_url(rater))
        assert b'name="assignment"' in page.content

    def test_starting_without_consent_is_ignored(self, client):
        rater = open_rater(published_study(), ready=False)
        client.post(f"/r/{rater.token}/start")
        rater.refresh_from_db()
        assert rater.instructed is None

    def test_declining_consent_records_nothing(self, client):
        rater = open_rater(published_study(), ready=False)
        response = client.post(f"/r/{rater.token}/consent", {"consent": "no"})
        assert b"You chose not to take part" in response.content
        rater.refresh_from_db()
        assert rater.consented is None

    def test_the_page_shows_progress_the_superclass_prompt_and_the_three_questions(self, client):
        study = published_study(pairs_per_rater=3, question_text="Which one fits the words?")
        rater = open_rater(study)
        html = client.get(home_url(rater)).content.decode()
        assert "<strong>1</strong> of 3" in html
        assert re.search(r"a dog (in the snow|on the beach)", html)
        assert "sks" not in html
        assert "Which one fits the words?" in html
        assert html.count('type="radio"') == 9
        assert len(re.findall(r'src="/p/[^"]+"', html)) == 2  # the subject's reference photos

    def test_answering_every_pair_ends_with_the_completion_code(self, client):
        study = published_study(pairs_per_rater=2, completion_code="THANKS-42")
        rater = open_rater(study)
        for _ in range(2):
            assert post_answer(client, rater, current_token(client, rater)).status_code == 303
        page = client.get(home_url(rater))
        assert b"THANKS-42" in page.content

    def test_a_completion_url_is_a_redirect(self, client):
        study = published_study(pairs_per_rater=1, completion_url="https://app.prolific.com/submissions/complete?cc=C1")
        rater = open_rater(study)
        post_answer(client, rater, current_token(client, rater))
        response = client.get(home_url(rater))
        assert response.status_code == 302
        assert response["Location"] == "https://app.prolific.com/submissions/complete?cc=C1"

    def test_a_screened_out_rater_goes_to_the_screen_out_url(self, client):
        study = published_study(screenout_url="https://app.prolific.com/submissions/complete?cc=OUT")
        rater = open_rater(study)
        Rater.objects.filter(pk=rater.pk).update(screened_out=timezone.now())
        response = client.get(home_url(rater))
        assert response["Location"].endswith("cc=OUT")

    def test_a_rater_mid_study_waits_while_others_hold_the_last_pairs_and_is_not_completed(self, client):
        study = published_study(seeds=2, ratings_per_pair=1, pairs_per_rater=4)  # four pairs, one rating each
        rater = open_rater(study, "mid")
        post_answer(client, rater, current_token(client, rater))
        client.get(home_url(rater))  # holds the pair on screen and the next one
        claim_leases(open_rater(study, "holder"))  # takes the one pair nobody holds
        for _ in range(2):
            post_answer(client, rater, current_token(client, rater))
        page = client.get(home_url(rater))
        assert page.status_code == 503 and b"One moment" in page.content
        rater.refresh_from_db()
        assert rater.completed is None and Answer.objects.filter(rater=rater).count() == 3


class TestSubmit:
    def test_a_double_submit_stores_one_answer(self, client):
        rater = open_rater(published_study())
        token = current_token(client, rater)
        first = post_answer(client, rater, token)
        second = post_answer(client, rater, token)
        assert first.status_code == second.status_code == 303
        assert Answer.objects.count() == 1

    def test_a_changed_replay_is_refused_with_a_message(self, client):
        rater = open_rater(published_study())
        token = current_token(client, rater)
        post_answer(client, rater, token)
        response = post_answer(client, rater, token, {"text": "2", "image": "2", "overall": "2"})
        assert response.status_code == 409
        assert b"the first answer is kept" in response.content
        assert Answer.objects.get().screen_answers == ALL_ONE

    def test_a_forged_value_is_refused(self, client):
        rater = open_rater(published_study())
        response = post_answer(client, rater, current_token(client, rater), {**ALL_ONE, "overall": "b"})
        assert response.status_code == 400
        assert b"expected 1, 2 or 0" in response.content
        assert not Answer.objects.exists()

    def test_a_missing_answer_is_refused(self, client):
        rater = open_rater(published_study())
        response = post_answer(client, rater, current_token(client, rater), {"text": "1", "image": "2"})
        assert response.status_code == 400
        assert not Answer.objects.exists()

    def test_an_answer_for_a_pair_leased_to_someone_else_is_refused(self, client):
        study = published_study()
        owner, intruder = open_rater(study, "owner"), open_rater(study, "intruder")
        token = current_token(client, owner)
        response = post_answer(client, intruder, token)
        assert response.status_code == 403
        assert b"not given to you" in response.content
        assert not Answer.objects.exists()

    def test_a_closed_study_refuses_answers(self, client):
        study = published_study()
        rater = open_rater(study)
        token = current_token(client, rater)
        type(study).objects.filter(pk=study.pk).update(state="closed")
        response = post_answer(client, rater, token)
        assert response.status_code == 410
        assert not Answer.objects.exists()

    def test_response_time_comes_from_the_page(self, client):
        rater = open_rater(published_study())
        post_answer(client, rater, current_token(client, rater), response_ms="0")
        assert Answer.objects.get().response_ms == 0

    def test_get_is_not_allowed_on_the_answer_url(self, client):
        rater = open_rater(published_study())
        assert client.get(f"/r/{rater.token}/answer").status_code == 405


class TestCsrf:
    def test_an_anonymous_answer_without_the_token_is_refused(self):
        client = Client(enforce_csrf_checks=True)
        rater = open_rater(published_study())
        token = current_token(client, rater)
        response = post_answer(client, rater, token)
        assert response.status_code == 403
        assert not Answer.objects.exists()

    def test_an_anonymous_answer_with_the_pages_token_is_stored(self):
        client = Client(enforce_csrf_checks=True)
        rater = open_rater(published_study())
        html = client.get(home_url(rater)).content.decode()
        token = re.search(r'name="assignment" value="([^"]+)"', html).group(1)
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
        response = post_answer(client, rater, token, csrfmiddlewaretoken=csrf)
        assert response.status_code == 303
        assert Answer.objects.count() == 1

    def test_consent_needs_the_token_too(self):
        client = Client(enforce_csrf_checks=True)
        rater = open_rater(published_study(), ready=False)
        assert client.post(f"/r/{rater.token}/consent", {"consent": "yes"}).status_code == 403
        rater.refresh_from_db()
        assert rater.consented is None


class TestBlinding:
    def test_no_method_run_or_file_name_reaches_the_page(self, client):
        study = published_study()
        Method.objects.update(description="")
        rater = open_rater(study)
        html = client.get(home_url(rater)).content.decode()
        secrets = [m.name for m in Method.objects.all()] + [
            r.label or f"run {r.pk}" for r in GenerationRun.objects.all()
        ]
        secrets += [image.content_hash[:12] for image in GeneratedImage.objects.all()]
        secrets += [image.file.name for image in GeneratedImage.objects.all()] + ["/media/", "generated/"]
        assert [secret for secret in secrets if secret in html] == []

    def test_image_urls_are_opaque_and_served_without_the_file_name(self, client):
        rater = open_rater(published_study())
        html = client.get(home_url(rater)).content.decode()
        urls = re.findall(r'src="(/[ip]/[^"]+)"', html) + re.search(r'data-preload="([^"]*)"', html).group(1).split()
        assert len(urls) == 6  # two images, two reference photos, the next pair's two images
        for url in urls:
            assert re.fullmatch(r"/i/[A-Za-z0-9_-]{20,}/[12]|/p/[A-Za-z0-9_-]{20,}", url), url
            response = client.get(url)
            assert response.status_code == 200
            pair_image = url.startswith("/i/")
            assert response["Content-Type"] == ("image/jpeg" if pair_image else "image/png")
            assert "Content-Disposition" not in response
            assert "max-age" in response["Cache-Control"] and "private" in response["Cache-Control"]
            assert b"".join(response.streaming_content)[:4] == (b"\xff\xd8\xff\xe0" if pair_image else b"\x89PNG")

    def test_image_1_is_the_left_image_of_this_assignment(self, client):
        rater = open_rater(published_study(display_size=64))
        token = current_token(client, rater)
        assignment = Assignment.objects.select_related("pair__image_a", "pair__image_b").get(token=token)
        left = b"".join(client.get(f"/i/{token}/1").streaming_content)
        expected = assignment.pair.image_a if assignment.left_is_a else assignment.pair.image_b
        assert left == normalised(expected.file.open("rb").read(), 64)

    def test_check_pairs_are_served_like_every_other_pair(self, client):
        study = published_study(display_size=64, pairs_per_rater=3)
        gold = check_pair(study, Pair.Kind.GOLD, {"overall": "a"})
        rater = open_rater(study)
        assignment = Assignment.objects.create(
            rater=rater, pair=gold, position=1, left_is_a=True, expires=timezone.now() + timedelta(minutes=5)
        )
        response = client.get(f"/i/{assignment.token}/2")
        assert response["Content-Type"] == "image/jpeg"
        with Image.open(io.BytesIO(b"".join(response.streaming_content))) as image:
            assert (image.format, image.size) == ("JPEG", (64, 64))

    def test_unknown_image_tokens_are_not_found(self, client):
        assert client.get("/i/nothing-here/1").status_code == 404
        assert client.get("/p/nothing-here").status_code == 404


class TestQueryCounts:
    def test_the_next_pair_page_and_submit_use_a_handful_of_statements(self, client, django_assert_max_num_queries):
        rater = open_rater(published_study(seeds=4))
        token = current_token(client, rater)  # the first page claims two pairs; later pages claim one
        with django_assert_max_num_queries(8):  # in a test, atomic() adds a SAVEPOINT and its RELEASE
            post_answer(client, rater, token)
        with django_assert_max_num_queries(10):
            client.get(home_url(rater))
