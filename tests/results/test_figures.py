"""The results page's figures as files: the win-rate chart and the Pareto plot, in SVG, PNG and PDF."""

import io
import re
import xml.etree.ElementTree as ET

import pytest
from django.urls import reverse
from PIL import Image

from studyapp.models import MetricScore
from tests.results.factories import study_with_answers

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_bootstrap(settings):
    settings.RESULTS_BOOTSTRAP_RESAMPLES = 200


@pytest.fixture
def study():
    study = study_with_answers(raters=4, methods=3)
    for comparison in study.comparisons.all():
        for method, value in ((comparison.method_a, 0.96), (comparison.method_b, 0.95)):
            for image in method.images.all()[:2]:
                MetricScore.objects.get_or_create(image=image, metric="clip_ts", defaults={"value": value})
                MetricScore.objects.get_or_create(image=image, metric="clip_is", defaults={"value": 1.92 - value})
    return study


def _opens(file_format: str, content: bytes) -> None:
    if file_format == "svg":
        assert ET.fromstring(content).tag.endswith("svg")
    elif file_format == "png":
        with Image.open(io.BytesIO(content)) as png:
            png.verify()
            assert png.format == "PNG" and png.size[0] > 400
    else:
        assert content.startswith(b"%PDF-") and content.rstrip().endswith(b"%%EOF")
        assert len(re.findall(rb"/Type\s*/Page\b(?!s)", content)) == 1


@pytest.mark.parametrize("file_format", ["svg", "png", "pdf"])
@pytest.mark.parametrize("name", ["win-rates", "pareto"])
def test_every_figure_downloads_and_opens_in_every_format(owner_client, study, name, file_format):
    url = reverse("study-figure", args=[study.pk, name, file_format])
    response = owner_client.get(url, {"download": 1})
    assert response.status_code == 200
    assert (
        response["Content-Type"] == {"svg": "image/svg+xml", "png": "image/png", "pdf": "application/pdf"}[file_format]
    )
    assert f'filename="{study.slug}-{name}.{file_format}"' in response["Content-Disposition"]
    _opens(file_format, response.content)


def test_the_results_page_links_each_figure_in_each_format(owner_client, study):
    page = owner_client.get(reverse("study-results", args=[study.pk])).content.decode()
    for name in ("win-rates", "pareto"):
        for file_format in ("svg", "png", "pdf"):
            assert reverse("study-figure", args=[study.pk, name, file_format]) in page


def test_the_win_rate_figure_names_every_comparison_and_question(owner_client, study):
    svg = owner_client.get(reverse("study-figure", args=[study.pk, "win-rates", "svg"])).content.decode()
    texts = {node.text for node in ET.fromstring(svg).iter() if node.tag.endswith("text")}
    for comparison in study.comparisons.all():
        for question in ("text", "image", "overall"):
            assert any(comparison.method_a.name in t and question in t for t in texts if t), (comparison, question)


@pytest.mark.parametrize(
    ("name", "file_format", "message"),
    [("histogram", "svg", "expected one of win-rates, pareto"), ("pareto", "gif", "expected one of svg, png, pdf")],
)
def test_an_unknown_figure_or_format_is_a_404_that_says_what_exists(owner_client, study, name, file_format, message):
    response = owner_client.get(reverse("study-figure", args=[study.pk, name, file_format]))
    assert response.status_code == 404 and message in response.content.decode()


def test_without_metrics_the_pareto_figure_is_a_404(owner_client):
    bare = study_with_answers(raters=1, methods=2)
    response = owner_client.get(reverse("study-figure", args=[bare.pk, "pareto", "png"]))
    assert response.status_code == 404 and "no method has both CLIP-TS and CLIP-IS yet" in response.content.decode()


def test_the_pareto_plot_joins_only_a_sweeps_methods(owner_client, study):
    svg = owner_client.get(reverse("study-figure", args=[study.pk, "pareto", "svg"])).content.decode()
    texts = [node.text or "" for node in ET.fromstring(svg).iter() if node.tag.endswith("text")]
    names = {c.method_a.name for c in study.comparisons.all()} | {c.method_b.name for c in study.comparisons.all()}
    assert names <= set(texts)  # each method outside a sweep is its own legend entry
    assert not any("e-0" in text or text.startswith("+") for text in texts)
