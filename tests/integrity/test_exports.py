"""CSV exports neutralise formula-leading cells, and import_images takes only the method names the
admin takes."""

import csv
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from studyapp.models import Method, Prompt
from tests import factories
from tests.integrity.http import LiveClient
from tests.results.factories import study_with_answers

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
HOSTILE_PROMPT = '=HYPERLINK("http://evil.example","{concept}")'


def formula_cells(body: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(body)) for cell in row if cell.startswith(FORMULA_STARTS)]


@pytest.mark.services
def test_every_csv_export_neutralises_formula_leading_cells(live_server_url, owner):
    study = study_with_answers(methods=2, raters=2)
    comparison = study.comparisons.get()
    Method.objects.filter(pk=comparison.method_a_id).update(name="-2+3")
    Method.objects.filter(pk=comparison.method_b_id).update(name="@SUM(A1)")
    Prompt.objects.filter(pk=study.pairs.first().prompt_id).update(template=HOSTILE_PROMPT)
    client = LiveClient(live_server_url)
    assert client.admin_login("owner", "owner-pass-123").status == 302
    for path in (
        f"/studies/{study.pk}/export/answers.csv",
        f"/studies/{study.pk}/export/results.csv",
        f"/api/studies/{study.pk}/export/answers.csv",
    ):
        answer = client.get(path)
        assert answer.status == 200, path
        assert formula_cells(answer.body) == [], path
    answers = client.get(f"/studies/{study.pk}/export/answers.csv").body
    cells = {cell for row in csv.reader(io.StringIO(answers)) for cell in row}
    assert {"'-2+3", "'@SUM(A1)", "'" + HOSTILE_PROMPT} <= cells


@pytest.mark.django_db
def test_the_invite_list_is_neutralised_too():
    from studyapp.results.exports import csv_lines

    body = "".join(csv_lines(["code", "link"], [["-abc", "=1"], ["ok", "+1"], [None, 3.5], ["\tx", "\rx"]]))
    assert formula_cells(body) == []
    assert list(csv.reader(io.StringIO(body)))[1:] == [["'-abc", "'=1"], ["ok", "'+1"], ["", "3.5"], ["'\tx", "'\rx"]]


BAD_NAMES = ["=cmd|' /C calc'!A0", "has space", "x" * 101, "ünïcode", "semi;colon"]


@pytest.fixture
def catalog(db):
    call_command("load_prompt_sets")
    return factories.concept(slug="dog", superclass="dog", kind="live")


def _manifest(tmp_path, method: str):
    (tmp_path / "img.png").write_bytes(factories.png_bytes())
    path = tmp_path / "manifest.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "concept", "prompt", "seed_index", "file"])
        writer.writerow([method, "dog", "a {concept} in the snow", 0, "img.png"])
    return path


def _admin_accepts(client, name: str) -> bool:
    fields = {"name": name, "description": "", "kind": "external", "sampler": "", "params": "{}", "steps": 50}
    response = client.post("/admin/studyapp/method/add/", fields)
    return response.status_code == 302


@pytest.mark.parametrize("name", BAD_NAMES)
def test_import_images_refuses_a_method_name_the_admin_refuses(tmp_path, catalog, owner_client, name):
    assert not _admin_accepts(owner_client, name)
    with pytest.raises(CommandError, match=r"row 1: method .*(slug|at most 100 characters)"):
        call_command("import_images", str(_manifest(tmp_path, name)))
    assert not Method.objects.filter(name=name).exists()


def test_import_images_takes_a_name_the_admin_takes(tmp_path, catalog, owner_client):
    call_command("import_images", str(_manifest(tmp_path, "textual-inversion_v2")))
    assert Method.objects.get(name="textual-inversion_v2").kind == Method.Kind.EXTERNAL
    assert _admin_accepts(owner_client, "another-external_v2")
