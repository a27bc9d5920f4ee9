"""Pareto fronts of (TS, IS) points, the TS-vs-IS plot and the pareto command."""

from __future__ import annotations

import argparse
import json
import math
import re

import pytest

from generation.pareto import SweepPoint, params_label, pareto_front, pareto_indices, plot_pareto, varying_params
from tests.generation.metrics_fixtures import summary_row


def test_known_front_is_returned_in_order_of_ts():
    points = [(0.25, 0.4), (0.1, 0.9), (0.3, 0.5), (0.15, 0.7), (0.2, 0.8)]
    assert pareto_front(points) == [(0.1, 0.9), (0.2, 0.8), (0.3, 0.5)]
    assert pareto_indices(points) == [1, 4, 2]


def test_every_point_of_a_trade_off_curve_is_on_the_front():
    points = [(math.cos(angle / 10), math.sin(angle / 10)) for angle in range(16)]
    assert pareto_indices(points) == list(range(16))[::-1]


def test_one_point_dominating_all_others_is_the_whole_front():
    assert pareto_front([(0.1, 0.1), (0.5, 0.9), (0.4, 0.2), (0.5, 0.2)]) == [(0.5, 0.9)]


def test_identical_points_are_all_kept():
    assert pareto_indices([(0.2, 0.5), (0.3, 0.4), (0.2, 0.5)]) == [0, 2, 1]


def test_equal_ts_with_lower_is_and_equal_is_with_lower_ts_are_dominated():
    points = [(0.3, 0.6), (0.3, 0.5), (0.2, 0.6)]
    assert pareto_front(points) == [(0.3, 0.6)]


def test_single_point_and_empty_input():
    assert pareto_front([(0.2, 0.7)]) == [(0.2, 0.7)]
    assert pareto_front([]) == []


def test_non_finite_point_is_rejected_by_index():
    with pytest.raises(ValueError, match=r"point 1: expected finite \(TS, IS\)"):
        pareto_front([(0.1, 0.2), (float("nan"), 0.3)])


def test_sweep_points_and_key_function():
    points = [
        SweepPoint("mixed", "w_s=1", 0.30, 0.70),
        SweepPoint("mixed", "w_s=3", 0.25, 0.80),
        SweepPoint("base", "", 0.20, 0.75),
    ]
    assert [p.label for p in pareto_front(points)] == ["w_s=3", "w_s=1"]
    records = [{"ts": 0.1, "is": 0.2}, {"ts": 0.2, "is": 0.1}, {"ts": 0.05, "is": 0.05}]
    assert pareto_indices(records, key=lambda r: (r["ts"], r["is"])) == [0, 1]


def test_labels_show_only_varying_hyper_parameters():
    sweep = [{"w": 7.0, "t_sw": 3}, {"w": 7.0, "t_sw": 7}, {"w": 7.0, "t_sw": 10}]
    assert varying_params(sweep) == ["t_sw"]
    assert params_label(sweep[1], varying_params(sweep)) == "t_sw=7"
    assert params_label({"w_c": 3.5, "w_s": 3.0}) == "w_c=3.5, w_s=3"


def test_plot_writes_svg_and_png_with_labels(tmp_path):
    points = [SweepPoint("switching", f"t_sw={t}", 0.30 - t / 100, 0.70 + t / 100) for t in (3, 7, 10)]
    points.append(SweepPoint("mixed", "w_s=3.5", 0.27, 0.74))
    written = plot_pareto(points, tmp_path / "plots" / "front.svg", title="dog")
    assert written == [tmp_path / "plots" / "front.svg", tmp_path / "plots" / "front.png"]
    svg = written[0].read_text()
    assert "t_sw=7" in svg and "switching" in svg and "Pareto front" in svg
    assert written[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_of_nothing_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="expected at least one point"):
        plot_pareto([], tmp_path / "front.svg")


def test_pareto_command_plots_results(tmp_path, capsys):
    from generation.metrics.cli import register

    results = {
        "methods": {
            "switching(t_sw=3, w=7)": {"family": "switching", "params": {"w": 7.0, "t_sw": 3}},
            "switching(t_sw=10, w=7)": {"family": "switching", "params": {"w": 7.0, "t_sw": 10}},
            "base(w=7)": {"family": "base", "params": {"w": 7.0}},
        },
        "summary": [
            summary_row("switching(t_sw=3, w=7)", 0.30, 0.70),
            summary_row("switching(t_sw=10, w=7)", 0.25, 0.80),
            summary_row("base(w=7)", 0.24, 0.75),
        ],
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    parser = argparse.ArgumentParser(prog="generation")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["pareto", str(path), "--out", str(tmp_path / "front.svg")])
    assert args.handler(args) == 0
    front_lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert [line[0] for line in front_lines] == ["switching", "switching"]  # base is dominated
    assert [line[1] for line in front_lines] == ["t_sw=10", "t_sw=3"]
    assert "t_sw=3" in (tmp_path / "front.svg").read_text()
    assert (tmp_path / "front.png").is_file()


def test_pareto_command_names_a_bad_results_file(tmp_path):
    from generation.metrics.cli import sweep_points

    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(SystemExit, match=r"bad\.json: expected JSON written by the metrics command"):
        sweep_points([bad], "clip_is", "clip_ts")


def _paper_points():
    sweep = [SweepPoint("mixed", f"w_s={w}", 0.9612 + w / 1000, 0.9650 - w / 800, {"w_s": w}) for w in (5, 1, 3)]
    return [*sweep, SweepPoint("dreambooth", "dreambooth", 0.9618, 0.9655), SweepPoint("base", "base", 0.963, 0.962)]


def test_a_family_is_one_line_in_the_order_of_its_parameter_and_lone_methods_are_points():
    from generation.pareto import pareto_figure

    axes = pareto_figure(_paper_points()).axes[0]
    by_label = {line.get_label(): line for line in axes.get_lines()}
    sweep_line = by_label["mixed"]
    assert list(sweep_line.get_xdata()) == [0.9612 + w / 1000 for w in (1, 3, 5)]  # along w_s, not as given
    assert sweep_line.get_linestyle() == "-"
    for single in ("dreambooth", "base"):
        assert len(by_label[single].get_xdata()) == 1 and by_label[single].get_linestyle() == "None"


def test_axes_read_as_plain_labelled_decimals_without_an_offset():
    from xml.etree import ElementTree

    from generation.pareto import figure_bytes, pareto_figure

    figure = pareto_figure(_paper_points())
    svg = figure_bytes(figure, "svg").decode()
    texts = [node.text or "" for node in ElementTree.fromstring(svg).iter() if node.tag.endswith("text")]
    ticks = [text for text in texts if re.fullmatch(r"[\d.]+", text)]
    assert len(ticks) >= 6 and all(text.startswith("0.9") for text in ticks), ticks
    assert not any("e-" in text or "e+" in text or text.startswith("+") for text in texts)
    assert any("CLIP-TS" in text for text in texts) and any("CLIP-IS" in text for text in texts)


def test_a_figure_is_written_as_svg_png_and_pdf(tmp_path):
    from xml.etree import ElementTree

    from PIL import Image

    written = plot_pareto(_paper_points(), tmp_path / "front", formats=("svg", "png", "pdf"))
    assert [path.suffix for path in written] == [".svg", ".png", ".pdf"]
    ElementTree.parse(written[0])
    with Image.open(written[1]) as png:
        png.verify()
    pdf = written[2].read_bytes()
    assert pdf.startswith(b"%PDF-") and len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) == 1
