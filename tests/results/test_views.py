"""The results pages (studyapp.results.views): the results page, exports, snapshots, method pages."""

import re
import xml.etree.ElementTree as ET

import pytest
from django.urls import reverse

from studyapp.models import AnalysisSnapshot, MetricScore, Pair, Rater
from tests.results.factories import add_answers, answer, gold_pair, study_with_answers

pytestmark = pytest.mark.django_db
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def fast_bootstrap(settings):
    settings.RESULTS_BOOTSTRAP_RESAMPLES = 200


@pytest.fixture
def study():
    return study_with_answers(raters=4, methods=3)


def page_urls(study, snapshot) -> list[str]:
    method = study.comparisons.first().method_a
    return [
        f"/studies/{study.pk}/results/",
        f"/studies/{study.pk}/export/results.csv",
        f"/studies/{study.pk}/export/results.json",
        f"/studies/{study.pk}/export/answers.csv",
        f"/studies/{study.pk}/export/answers.json",
        f"/studies/{study.pk}/snapshots/{snapshot.pk}.json",
        f"/methods/{method.pk}/",
    ]


@pytest.fixture
def snapshot(study):
    return AnalysisSnapshot.objects.create(study=study, data_hash="0" * 64, results={"frozen": True})


def test_the_owner_sees_every_page(owner_client, study, snapshot):
    for url in page_urls(study, snapshot):
        assert owner_client.get(url).status_code == 200, url


@pytest.mark.parametrize("persona", ["outsider", "anonymous"])
def test_outsiders_and_anonymous_visitors_are_sent_to_the_login(client, django_user_model, persona, study, snapshot):
    if persona == "outsider":
        client.force_login(django_user_model.objects.create_user("someone", password="pass-1234567"))
    for url in page_urls(study, snapshot):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    assert client.post(f"/studies/{study.pk}/snapshots/").status_code == 302
    assert AnalysisSnapshot.objects.count() == 1


def test_the_page_shows_table_one_with_every_cell(owner_client, study):
    page = owner_client.get(f"/studies/{study.pk}/results/").content.decode()
    table = page.split('class="table-one"', 1)[1].split("</table>", 1)[0]
    assert table.count('<th scope="row">text</th>') == 1
    for question in ("text", "image", "overall"):
        assert f'<th scope="row">{question}</th>' in table
    for label in ("CLIP-TS", "CLIP-IS", "DINO-IS"):
        assert label in table
    cells = re.findall(r"<strong>(\d+\.\d)%</strong>", table)
    assert len(cells) == 3 * 2  # questions x comparisons
    assert table.count("p<sub>adj</sub>") == 6 and table.count("ties ") == 6
    for comparison in study.comparisons.all():
        assert comparison.method_a.name in table


def test_the_chart_is_svg_with_a_whisker_and_stacked_bar_per_cell(owner_client, study):
    page = owner_client.get(f"/studies/{study.pk}/results/").content.decode()
    svg = ET.fromstring(re.search(r"<svg class=\"chart\".*?</svg>", page, re.S).group(0))
    bars = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "bar"]
    assert len(bars) == 6
    for bar in bars:
        assert len(bar.findall(f".//{SVG}rect")) == 3  # wins, ties, losses
        assert bar.find(f".//{SVG}circle") is not None
        assert any(line.get("class") == "whisker" for line in bar.iter(f"{SVG}line"))
        widths = sum(float(r.get("width")) for r in bar.findall(f".//{SVG}rect"))
        assert widths == pytest.approx(300, abs=0.1)  # the three shares fill the bar


def test_the_page_says_how_many_raters_were_excluded_and_shows_both_analyses(owner_client, study):
    page = owner_client.get(f"/studies/{study.pk}/results/").content.decode()
    assert "0 of 4 raters excluded" in page and page.count('class="table-one"') == 1

    Rater.objects.filter(pk=Rater.objects.filter(study=study).first().pk).update(excluded=True)

    page = owner_client.get(f"/studies/{study.pk}/results/").content.decode()
    assert "1 of 4 raters excluded" in page and "(1 by hand" in page
    assert page.count('class="table-one"') == 2  # without the excluded rater, then everyone
    assert "excluded by hand" in page


def test_the_rater_quality_table_lists_gold_accuracy(owner_client):
    study = study_with_answers(raters=2, methods=2, exclusion_rules={"min_gold_accuracy": 0.5})
    gold = gold_pair(study, {"image": "a"})
    careless = Rater.objects.filter(study=study).first()
    answer(careless, gold, "b").save()

    page = owner_client.get(f"/studies/{study.pk}/results/").content.decode()

    assert "0/1" in page and "min_gold_accuracy: 0.000 &lt; 0.5" in page
    assert "1 of 2 raters excluded" in page and "1 by min_gold_accuracy" in page


def test_malformed_rules_show_an_error_instead_of_numbers(owner_client):
    study = study_with_answers(raters=1, methods=2, exclusion_rules={"gold": 1})
    response = owner_client.get(f"/studies/{study.pk}/results/")
    assert response.status_code == 200
    assert "The results cannot be computed" in response.content.decode() and "unknown gold" in response.content.decode()
    assert owner_client.get(f"/studies/{study.pk}/results/?n_resamples=lots").status_code == 400


def test_the_results_page_runs_a_bounded_number_of_queries(owner_client, django_assert_max_num_queries):
    small = study_with_answers(raters=2, methods=2)
    large = study_with_answers(raters=8, methods=4)
    add_answers(large, raters=4, name_prefix="more")
    counts = []
    for study in (small, large):
        with django_assert_max_num_queries(12) as captured:
            assert owner_client.get(f"/studies/{study.pk}/results/").status_code == 200
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]  # more comparisons, raters and answers: no more queries


def test_posting_the_snapshot_form_freezes_the_numbers(owner_client, study):
    response = owner_client.post(f"/studies/{study.pk}/snapshots/", {"label": "camera-ready"})
    assert response.status_code == 302
    snapshot = AnalysisSnapshot.objects.get(label="camera-ready")
    add_answers(study, raters=2, name_prefix="late")
    frozen = owner_client.get(f"/studies/{study.pk}/snapshots/{snapshot.pk}.json").json()
    assert frozen["results"] == snapshot.results and frozen["answer_count"] == 4 * 16


def test_the_method_page_shows_metrics_overall_and_per_concept(owner_client):
    study = study_with_answers(raters=0, methods=2)
    pair = study.pairs.filter(kind=Pair.Kind.REGULAR).select_related("image_a__method", "image_a__concept").first()
    method = pair.image_a.method
    for image, value in zip(method.images.all(), (0.25, 0.35), strict=False):
        MetricScore.objects.create(image=image, metric="clip_ts", value=value)
        MetricScore.objects.create(image=image, metric="clip_is", value=value + 0.4)

    page = owner_client.get(f"/methods/{method.pk}/").content.decode()

    overall = page.split('class="overall"', 1)[1].split("</tr>", 1)[0]
    assert "0.3000 ± 0.0500 (2)" in overall and "0.7000 ± 0.0500 (2)" in overall
    assert pair.image_a.concept.slug in page
    assert reverse("study-pareto", args=[study.pk]) in page


def test_the_pareto_plot_is_an_svg_of_the_study_methods(owner_client):
    study = study_with_answers(raters=0, methods=2)
    assert owner_client.get(f"/studies/{study.pk}/pareto.svg").status_code == 404  # no metrics yet
    for comparison in study.comparisons.all():
        for method, value in ((comparison.method_a, 0.3), (comparison.method_b, 0.2)):
            image = method.images.first()
            MetricScore.objects.create(image=image, metric="clip_ts", value=value)
            MetricScore.objects.create(image=image, metric="clip_is", value=0.9 - value)
    response = owner_client.get(f"/studies/{study.pk}/pareto.svg")
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert b"<svg" in response.content and comparison.method_a.name.encode() in response.content
