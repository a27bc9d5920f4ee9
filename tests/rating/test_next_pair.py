"""The rating page's JSON: the answer that replies with the next pair, and the pair on screen."""

import json
import re

import pytest
from django.test import Client

from studyapp.models import Answer, Assignment, GeneratedImage, GenerationRun, Method
from tests.rating.factories import ALL_ONE, open_rater, published_study

pytestmark = pytest.mark.django_db
OPAQUE_IMAGE = re.compile(r"/i/[A-Za-z0-9_-]{20,}/[12]|/p/[A-Za-z0-9_-]{20,}")


def home_url(rater):
    return f"/r/{rater.token}/"


def page_token(client, rater) -> str:
    html = client.get(home_url(rater)).content.decode()
    return re.search(r'name="assignment" value="([^"]+)"', html).group(1)


def post_json_answer(client, rater, token, values=ALL_ONE, **extra):
    return client.post(f"/r/{rater.token}/answer.json", {"assignment": token, **values, **extra})


class TestAnswerJson:
    def test_it_stores_the_answer_and_replies_with_the_next_pair(self, client):
        rater = open_rater(published_study(seeds=3, pairs_per_rater=3))
        token = page_token(client, rater)
        response = post_json_answer(client, rater, token, response_ms="1500")
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        reply = response.json()
        assert reply["state"] == "pair"
        assert (reply["number"], reply["total"]) == (2, 3)
        assert reply["assignment"] != token
        assert Assignment.objects.get(token=reply["assignment"]).rater == rater
        assert re.fullmatch(r"a dog (in the snow|on the beach)", reply["prompt"])
        assert len(reply["references"]) == 2 and len(reply["preload"]) == 2
        answer = Answer.objects.get()
        assert answer.screen_answers == ALL_ONE and answer.response_ms is not None

    def test_the_next_pair_is_the_one_the_page_preloaded_and_the_page_would_show(self, client):
        rater = open_rater(published_study(seeds=3, pairs_per_rater=3))
        html = client.get(home_url(rater)).content.decode()
        preloaded = re.search(r'data-preload="([^"]*)"', html).group(1).split()
        token = re.search(r'name="assignment" value="([^"]+)"', html).group(1)
        reply = post_json_answer(client, rater, token).json()
        assert reply["images"] == preloaded
        assert page_token(client, rater) == reply["assignment"]  # a reload shows the same pair

    def test_the_same_answer_twice_stores_one_row_and_replies_with_the_same_pair(self, client):
        rater = open_rater(published_study(seeds=3, pairs_per_rater=3))
        token = page_token(client, rater)
        first = post_json_answer(client, rater, token)
        second = post_json_answer(client, rater, token)
        assert first.status_code == second.status_code == 200
        assert first.json() == second.json()
        assert Answer.objects.count() == 1

    def test_a_changed_replay_is_refused_with_the_reason(self, client):
        rater = open_rater(published_study())
        token = page_token(client, rater)
        post_json_answer(client, rater, token)
        response = post_json_answer(client, rater, token, {"text": "2", "image": "2", "overall": "2"})
        assert response.status_code == 409
        assert response.json() == {"detail": "You already answered this pair; the first answer is kept."}
        assert Answer.objects.get().screen_answers == ALL_ONE

    def test_a_forged_value_is_a_400_with_the_reason(self, client):
        rater = open_rater(published_study())
        response = post_json_answer(client, rater, page_token(client, rater), {**ALL_ONE, "image": "left"})
        assert response.status_code == 400
        assert "expected 1, 2 or 0" in response.json()["detail"]
        assert not Answer.objects.exists()

    def test_a_pair_of_another_rater_is_refused(self, client):
        study = published_study()
        owner, intruder = open_rater(study, "owner"), open_rater(study, "intruder")
        response = post_json_answer(client, intruder, page_token(client, owner))
        assert response.status_code == 403
        assert not Answer.objects.exists()

    def test_the_last_answer_sends_the_browser_to_the_page_with_the_code(self, client):
        rater = open_rater(published_study(pairs_per_rater=1, completion_code="THANKS-9"))
        reply = post_json_answer(client, rater, page_token(client, rater)).json()
        assert reply == {"state": "page", "url": home_url(rater)}
        assert b"THANKS-9" in client.get(reply["url"]).content

    def test_a_closed_study_refuses_the_answer(self, client):
        study = published_study()
        rater = open_rater(study)
        token = page_token(client, rater)
        type(study).objects.filter(pk=study.pk).update(state="closed")
        response = post_json_answer(client, rater, token)
        assert response.status_code == 410
        assert not Answer.objects.exists()

    def test_get_is_not_allowed(self, client):
        rater = open_rater(published_study())
        assert client.get(f"/r/{rater.token}/answer.json").status_code == 405

    def test_an_unknown_rater_is_not_found(self, client):
        assert client.post("/r/nobody/answer.json", ALL_ONE).status_code == 404


class TestCsrf:
    def test_without_the_token_the_answer_is_refused(self):
        client = Client(enforce_csrf_checks=True)
        rater = open_rater(published_study())
        response = post_json_answer(client, rater, page_token(client, rater))
        assert response.status_code == 403
        assert not Answer.objects.exists()

    def test_with_the_pages_token_the_answer_is_stored(self):
        client = Client(enforce_csrf_checks=True)
        rater = open_rater(published_study())
        html = client.get(home_url(rater)).content.decode()
        token = re.search(r'name="assignment" value="([^"]+)"', html).group(1)
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
        assert post_json_answer(client, rater, token, csrfmiddlewaretoken=csrf).status_code == 200
        assert Answer.objects.count() == 1


class TestNextPairJson:
    def test_it_is_the_pair_on_screen(self, client):
        rater = open_rater(published_study())
        token = page_token(client, rater)
        reply = client.get(f"/r/{rater.token}/next.json").json()
        assert (reply["state"], reply["assignment"], reply["number"]) == ("pair", token, 1)

    def test_before_consent_it_points_to_the_page(self, client):
        rater = open_rater(published_study(), ready=False)
        reply = client.get(f"/r/{rater.token}/next.json").json()
        assert reply == {"state": "page", "url": home_url(rater)}
        assert not Assignment.objects.exists()

    def test_post_is_not_allowed(self, client):
        rater = open_rater(published_study())
        assert client.post(f"/r/{rater.token}/next.json").status_code == 405


class TestBlinding:
    def test_the_json_carries_no_method_run_or_file_name_and_only_opaque_image_urls(self, client):
        study = published_study(seeds=3, concepts=2, pairs_per_rater=4)
        Method.objects.update(description="")
        rater = open_rater(study)
        replies = [client.get(f"/r/{rater.token}/next.json").content.decode()]
        for _ in range(3):
            token = json.loads(replies[-1])["assignment"]
            replies.append(post_json_answer(client, rater, token).content.decode())
        secrets = [m.name for m in Method.objects.all()] + [
            r.label or f"run {r.pk}" for r in GenerationRun.objects.all()
        ]
        secrets += [image.content_hash[:12] for image in GeneratedImage.objects.all()]
        secrets += [image.file.name for image in GeneratedImage.objects.all()] + ["/media/", "generated/"]
        for text in replies:
            assert [secret for secret in secrets if secret in text] == []
            reply = json.loads(text)
            assert set(reply) == {"state", "assignment", "number", "total", "prompt", "images", "references", "preload"}
            for url in reply["images"] + reply["references"] + reply["preload"]:
                assert OPAQUE_IMAGE.fullmatch(url), url


class TestQueryCounts:
    def test_answer_and_next_pair_in_one_request_use_a_handful_of_statements(
        self, client, django_assert_max_num_queries
    ):
        rater = open_rater(published_study(seeds=4))
        token = page_token(client, rater)  # the first page claims two pairs; later ones claim one
        with django_assert_max_num_queries(18):  # the submit's 8 and a later page's 10, less one rater lookup
            post_json_answer(client, rater, token)
