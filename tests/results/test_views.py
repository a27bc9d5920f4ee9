"""The results pages (studyapp.results.views): the results page, exports, snapshots, method pages."""

import re
import xml.etree.ElementTree as ET

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from studyapp.models import AnalysisSnapshot, MetricScore, Pair, Rater
from tests.results.factories import add_answers, answer, gold_pair, study_with_answers

pytestmark = pytest.mark.django_db
SVG = "{http://www.w3.org/2000/svg}"
QUERY_BOUND = 16  # a cache miss, whatever the size of the study


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


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("n_resamples=0", "n_resamples: expected 1 to 20000"),
        ("cluster=two-way", "cluster: no longer a setting; which factors are random is random_factors now"),
        ("procedure=wald", "procedure: expected one of 'crossed', 'bootstrap', got 'wald'"),
    ],
)
def test_a_bad_setting_in_the_link_is_a_400_with_a_message(owner_client, study, query, message):
    for url in (f"/studies/{study.pk}/results/", f"/studies/{study.pk}/export/results.csv"):
        response = owner_client.get(f"{url}?{query}")
        assert response.status_code == 400 and message in response.content.decode(), url


def test_the_legend_names_the_procedure_actually_used_including_the_links_overrides(owner_client, study):
    page = owner_client.get(f"/studies/{study.pk}/results/").content.decode()
    legend = page.split('class="procedure"', 1)[1].split("</p>", 1)[0]
    assert "crossed random-factor variance" in legend and "random factors: raters, prompts" in legend
    assert "fixed (their levels are the population): subjects" in legend and "Holm over 6 tests" in legend
    assert "two-way" not in page and "cluster-bootstrap" not in page

    query = "procedure=bootstrap&random_factors=rater&multiplicity=bonferroni&n_resamples=100"
    page = owner_client.get(f"/studies/{study.pk}/results/?{query}").content.decode()
    legend = page.split('class="procedure"', 1)[1].split("</p>", 1)[0]
    assert "pigeonhole bootstrap (240 resamples of raters" in legend  # raised so that 2 / (B + 1) < α / 6
    assert "fixed (their levels are the population): subjects, prompts" in legend
    assert "Bonferroni over 6 tests" in legend
    assert "<code>procedure=bootstrap</code>" in page and "raised from 100 to 240" in page


def test_cells_with_too_few_subjects_say_so_instead_of_showing_a_mark(owner_client):
    study = study_with_answers(raters=6, methods=2, fixed_factors=[])
    page = owner_client.get(f"/studies/{study.pk}/results/").content.decode()
    table = page.split('class="table-one"', 1)[1].split("</table>", 1)[0]
    assert table.count("not tested: too few subjects to test: 1 with a decided answer, 3 needed") == 3
    assert 'class="mark"' not in table and "p<sub>adj</sub>" not in table
    assert "3 of 3 cells are not tested" in page and "(Wilson)" in table


def test_the_snapshot_form_carries_and_freezes_the_settings_on_screen(owner_client, study):
    query = "procedure=bootstrap&n_resamples=1500&seed=9"
    page = owner_client.get(f"/studies/{study.pk}/results/?{query}").content.decode()
    form = page.split('action="/studies/', 1)[1].split("</form>", 1)[0]
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form))
    hidden.pop("csrfmiddlewaretoken", None)
    assert hidden == {"procedure": "bootstrap", "n_resamples": "1500", "seed": "9"}

    response = owner_client.post(f"/studies/{study.pk}/snapshots/", {"label": "as shown", **hidden})

    assert response.status_code == 302 and response["Location"].endswith(f"?{query}")
    snapshot = AnalysisSnapshot.objects.get(label="as shown")
    assert (snapshot.settings["procedure"], snapshot.settings["n_resamples"], snapshot.settings["seed"]) == (
        "bootstrap",
        1500,
        9,
    )
    assert "pigeonhole bootstrap" in snapshot.results["with_exclusions"]["procedure"]


def test_the_breakdown_pages_list_every_subject_and_prompt(owner_client, study):
    by_prompt = owner_client.get(f"/studies/{study.pk}/results/by-prompt/").content.decode()
    rows = by_prompt.split('class="breakdown"', 1)[1].split("</table>", 1)[0].count("<tr><td>")
    assert rows == 2 * 3 * 4  # comparisons x questions x prompts
    for template in ("in the snow", "on the beach", "in a city", "at night"):
        assert template in by_prompt
    by_subject = owner_client.get(f"/studies/{study.pk}/results/by-subject/").content.decode()
    assert "Benjamini-Hochberg" in by_subject and by_subject.count("<tr><td>") == 2 * 3
    assert owner_client.get(f"/studies/{study.pk}/results/by-rater/").status_code == 404


def test_the_page_shows_metric_differences_with_intervals(owner_client, study):
    images_a, images_b = set(), set()
    for pair in study.pairs.filter(kind=Pair.Kind.REGULAR):
        images_a.add(pair.image_a_id)
        images_b.add(pair.image_b_id)
    for image in images_a - images_b:
        MetricScore.objects.create(image_id=image, metric="clip_ts", value=0.3 + 0.001 * (image % 7))
    for image in images_b:
        MetricScore.objects.create(image_id=image, metric="clip_ts", value=0.28)
    page = owner_client.get(f"/studies/{study.pk}/results/").content.decode()
    table = page.split('class="metric-differences"', 1)[1].split("</table>", 1)[0]
    assert table.count("CLIP-TS") == 2 and "0.28" in table
    assert re.search(r"\[0\.\d{4}, 0\.\d{4}\]", table)


def test_the_results_page_runs_a_bounded_number_of_queries(owner_client, django_assert_max_num_queries):
    small = study_with_answers(raters=2, methods=2)
    large = study_with_answers(raters=8, methods=4)
    add_answers(large, raters=4, name_prefix="more")
    counts = []
    for study in (small, large):
        with django_assert_max_num_queries(QUERY_BOUND) as captured:
            assert owner_client.get(f"/studies/{study.pk}/results/").status_code == 200
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]  # more comparisons, raters and answers: no more queries


def test_a_cache_hit_on_the_results_page_reads_no_answer_rows(owner_client, study):
    owner_client.get(f"/studies/{study.pk}/results/")
    with CaptureQueriesContext(connection) as hit:
        assert owner_client.get(f"/studies/{study.pk}/results/").status_code == 200
    answer_reads = [q["sql"] for q in hit.captured_queries if '"studyapp_answer"' in q["sql"]]
    assert len(answer_reads) == 1 and "COUNT(" in answer_reads[0]  # the fingerprint, not the table


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
