"""Speed and honesty of the win-rate statistics, each measured against the previous default in the same run.

    .venv/bin/python bench/stats.py speed [--answers 50000] [--repeats 3]
    .venv/bin/python bench/stats.py simulate --design paper|small [--studies 2000] [--null] [--previous-studies 300]
    .venv/bin/python bench/stats.py variants --design paper|small [--studies 1000] [--null]
    .venv/bin/python bench/stats.py plan [--studies 200]

speed: the full analysis (45 cells: intervals, tests, Holm, Bradley-Terry x 3 questions, agreement
x 3, rater quality) of 50,000 answers x 3 questions x 15 comparisons, 200 raters, 30 subjects, 300
prompts, 5% gold pairs, 1,000 pairs judged three times; best of --repeats calls of the default
(crossed) procedure, of the bootstrap option, and of the previous default (two-way rater x prompt
bootstrap with 2,000 replicates, rater sign-flip test), printing the ratio.

simulate: studies shaped like the paper's (200 raters x 80 pairs, 15 comparisons x 3 questions,
rater, subject and prompt effects on the log-odds, 25% ties) with 30 subjects x 25 prompts
("paper") or 5 x 10 ("small"); true win rates spread from 35% to 75% (or all 50% with --null).
Prints coverage per cell, width against the ideal, family-wise rate of marks, and the number of
cells where the mark and the interval disagree, for the default, the bootstrap option (fewer
studies) and the previous default.

variants: on the same simulated studies, the crossed variance with other reference distributions:
the default (Satterthwaite, bounded by the pooled degrees of freedom), plug-in Satterthwaite per
cell, t with the fewest levels of a random factor minus one, and the normal.

plan: the planner checked by simulation: components from twelve pilot studies (12 subjects x 15
prompts, 3 comparisons), a plan for each target half-width, and the mean half-width of --studies
studies of the planned size.
"""

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import special
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studyapp import stats
from studyapp.stats import AnalysisSettings, AnswerTable, ComparisonSpec, bootstrap, significance, win_rates
from studyapp.stats.agreement import agreement
from studyapp.stats.bradley_terry import bt_results
from studyapp.stats.cells import build_cells
from studyapp.stats.crossed_variance import ClusterLayout, ratio_variance
from studyapp.stats.simulation import CrossedStudyDesign, SimulationSummary, run_studies, simulate_study

PREVIOUS_FACTORS = ("rater", "prompt")  # the previous default resampled raters and prompts, never subjects


def build_study(n_answers: int, n_raters: int = 200, n_subjects: int = 30, n_prompts: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    specs = [ComparisonSpec(i, a, b, f"M{a} vs M{b}") for i, (a, b) in enumerate(itertools.combinations(range(6), 2))]
    n_overlap_pairs = min(1000, n_answers // 30)
    n_single = n_answers - 3 * n_overlap_pairs
    pair = np.concatenate([np.arange(n_single), np.repeat(n_single + np.arange(n_overlap_pairs), 3)])
    n_pairs = n_single + n_overlap_pairs
    pair_comparison = rng.integers(0, len(specs), n_pairs)
    pair_subject = rng.integers(0, n_subjects, n_pairs)
    pair_prompt = rng.integers(0, n_prompts, n_pairs)
    rater = rng.integers(0, n_raters, n_answers)
    left_is_a = rng.random(n_answers) < 0.5
    strength = np.linspace(-0.5, 0.5, 6)
    rater_effect = rng.normal(0, 0.5, n_raters)
    subject_effect = rng.normal(0, 0.4, n_subjects)
    prompt_effect = rng.normal(0, 0.4, n_prompts)
    is_gold = np.repeat(rng.random(n_pairs) < 0.05, np.bincount(pair, minlength=n_pairs))
    comparison, subject, prompt = pair_comparison[pair], pair_subject[pair], pair_prompt[pair]
    a = strength[[s.method_a for s in specs]][comparison]
    b = strength[[s.method_b for s in specs]][comparison]
    outcomes = []
    for _ in range(3):
        logit = a - b + rater_effect[rater] + subject_effect[subject] + prompt_effect[prompt]
        logit = logit + np.where(left_is_a, 0.1, -0.1)
        a_wins = rng.random(n_answers) < special.expit(logit)
        outcomes.append(np.where(rng.random(n_answers) < 0.2, 0, np.where(a_wins, 1, -1)))
    tile = lambda x: np.tile(x, 3)  # noqa: E731
    table = AnswerTable(
        comparison=tile(comparison),
        question=np.repeat(np.arange(3), n_answers),
        rater=tile(rater),
        subject=tile(subject),
        prompt=tile(prompt),
        pair=tile(pair),
        outcome=np.concatenate(outcomes),
        left_is_a=tile(left_is_a),
        time_ms=tile(rng.gamma(4, 1500, n_answers)),
        is_gold=tile(is_gold),
        is_attention=tile(np.zeros(n_answers, bool)),
        check_passed=tile(rng.random(n_answers) < 0.9),
    )
    return table, specs


def previous_default(table: AnswerTable, specs, n_resamples: int = 2000, seed: int = 0):
    """The previous default, from the same building blocks: a two-way (rater x prompt) pigeonhole
    bootstrap interval, the rater sign-flip test Holm-adjusted for the marks, Bradley-Terry on the
    same replicates, agreement and rater quality. Returns (low, high, marks) per cell."""
    cells = build_cells(table, specs, None)
    rng = np.random.default_rng(seed)
    replicates = bootstrap.replicate_counts(cells, n_resamples, rng, PREVIOUS_FACTORS, "multinomial")
    rates = win_rates._rates(replicates.sum(axis=2).astype(np.float64))["win_rate"]
    low, high = bootstrap.order_statistic_interval(rates, 0.95)
    n_raters = cells.labels["rater"].size
    score, present = significance._per_rater_net(
        cells.cell, cells.factor_codes["rater"], cells.outcome, cells.n_cells, n_raters
    )
    _, pvalues, _ = significance._sign_flip_pvalues(score, present, n_resamples, seed)
    adjusted = stats.holm(np.where(np.isnan(pvalues), 1.0, pvalues))
    bt_results(
        cells,
        procedure="bootstrap",
        random_factors=PREVIOUS_FACTORS,
        ties="half",
        ridge=0.01,
        confidence_level=0.95,
        n_resamples=n_resamples,
        seed=seed,
        replicates=replicates,
    )
    for question in cells.questions:
        agreement(table, question=int(question), n_resamples=n_resamples, seed=seed)
    stats.rater_quality(table)
    return low, high, adjusted < 0.05


def best_of(repeats: int, function) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def speed(args) -> None:
    table, specs = build_study(args.answers)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(
        f"study: {args.answers} answers x 3 questions = {len(table)} rows, {np.unique(table.rater).size} raters, "
        f"{np.unique(table.subject).size} subjects, {np.unique(table.prompt).size} prompts, "
        f"{len(specs)} comparisons"
    )
    default, result = best_of(args.repeats, lambda: stats.analyse(table, specs))
    boot, _ = best_of(args.repeats, lambda: stats.analyse(table, specs, AnalysisSettings(procedure="bootstrap")))
    previous, _ = best_of(args.repeats, lambda: previous_default(table, specs))
    print(f"analyse, default (crossed):                      {default:7.3f} s  (best of {args.repeats})")
    print(f"analyse, procedure='bootstrap' (B = 2000):       {boot:7.3f} s")
    print(f"previous default (two-way bootstrap + sign flip): {previous:7.3f} s")
    print(f"ratio default / previous default: {default / previous:.2f} ({previous / default:.1f}x faster)")
    row = result.row(0, 0)
    print(
        f"example cell {row.label}, question 0: {row.estimate.win_rate:.3f} "
        f"[{row.estimate.win_rate_ci.low:.3f}, {row.estimate.win_rate_ci.high:.3f}], df {row.estimate.df:.1f}, "
        f"design effect {row.estimate.design_effect:.2f}, adjusted p {row.adjusted_pvalue:.3g}"
    )


def design_for(name: str, null: bool) -> CrossedStudyDesign:
    shapes = {"paper": (30, 25), "small": (5, 10)}
    n_subjects, n_prompts = shapes[name]
    rates = () if null else tuple(np.round(np.linspace(0.35, 0.75, 45), 4))
    return CrossedStudyDesign(n_subjects=n_subjects, n_prompts=n_prompts, win_rates=rates)


def report(label: str, summary: SimulationSummary, seconds: float) -> None:
    n = summary.n_studies
    coverage = summary.coverage()
    ratio = summary.width_ratio()
    fwer = summary.family_wise_rate()
    print(f"{label}: {n} studies in {seconds:.0f} s")
    print(
        f"  coverage of the 95% interval: mean {coverage.mean():.3f}, min {coverage.min():.3f}, "
        f"max {coverage.max():.3f} over {coverage.size} cells (Monte Carlo SE per cell "
        f"{np.sqrt(0.95 * 0.05 / n):.3f})"
    )
    print(
        f"  mean width / ideal (2 x 1.96 x sd of the estimate): mean {ratio.mean():.3f}, "
        f"min {ratio.min():.3f}, max {ratio.max():.3f}"
    )
    if (summary.truth == 0.5).any():
        null = summary.truth == 0.5
        se = np.sqrt(max(fwer * (1 - fwer), 0.05 * 0.95) / n)
        line = f"  family-wise rate of marks (true win rate 50%): {fwer:.3f} (Monte Carlo SE {se:.3f})"
        if np.isfinite(summary.pvalue).any():
            line += (
                f"; p < 0.05: {summary.rejection_rate(0.05):.4f}; p < 0.05/45: "
                f"{summary.rejection_rate(0.05 / 45):.5f} over {null.sum() * n} tests"
            )
        print(line)
    print(
        f"  cells marked although the interval beside the mark contains 50%: {summary.marked_but_covering()}; "
        f"unmarked although it excludes 50%: {summary.unmarked_but_excluding()}"
    )


def previous_summary(design: CrossedStudyDesign, n_studies: int, seed: int) -> SimulationSummary:
    rng = np.random.default_rng(seed)
    collected = {name: [] for name in ("estimate", "low", "high", "marked")}
    for study in range(n_studies):
        table, specs = simulate_study(design, rng)
        low, high, marked = previous_default(table, specs, seed=study)
        cells = build_cells(table, specs, None)
        counts = cells.counts().sum(axis=1)
        collected["estimate"].append(counts[:, 0] / (counts[:, 0] + counts[:, 2]))
        collected["low"].append(low)
        collected["high"].append(high)
        collected["marked"].append(marked)
    arrays = {name: np.array(values) for name, values in collected.items()}
    nan = np.full(arrays["low"].shape, np.nan)
    # the previous page showed the marginal interval beside the mark
    return SimulationSummary(
        design.true_win_rates().ravel(),
        arrays["estimate"],
        arrays["low"],
        arrays["high"],
        arrays["low"],
        arrays["high"],
        nan,
        arrays["marked"],
        0.95,
    )


def simulate(args) -> None:
    design = design_for(args.design, args.null)
    print(
        f"design {args.design}: {design.n_subjects} subjects x {design.n_prompts} prompts, {design.n_raters} raters "
        f"x {design.pairs_per_rater} pairs, SDs rater {design.rater_sd}, subject {design.subject_sd}, prompt "
        f"{design.prompt_sd}, subject x prompt {design.subject_prompt_sd}; "
        f"{'all true win rates 50%' if args.null else 'true win rates 35%..75%'}"
    )
    if args.studies:
        start = time.perf_counter()
        report("default (crossed)", run_studies(design, args.studies, seed=args.seed), time.perf_counter() - start)
    if args.bootstrap_studies:
        start = time.perf_counter()
        summary = run_studies(design, args.bootstrap_studies, AnalysisSettings(procedure="bootstrap"), seed=args.seed)
        report("procedure='bootstrap'", summary, time.perf_counter() - start)
    if args.previous_studies:
        start = time.perf_counter()
        summary = previous_summary(design, args.previous_studies, args.seed)
        report("previous default (two-way bootstrap, sign-flip marks)", summary, time.perf_counter() - start)


def variants(args) -> None:
    design = design_for(args.design, args.null)
    rng = np.random.default_rng(args.seed)
    names = (
        "default (Satterthwaite, pooled bound)",
        "plug-in Satterthwaite per cell",
        "t, fewest levels - 1",
        "normal",
    )
    found = {name: {"low": [], "high": [], "p": []} for name in names}
    estimates, errors = [], []
    for _ in range(args.studies):
        table, specs = simulate_study(design, rng)
        cells = build_cells(table, specs, None)
        layout = ClusterLayout.build(cells.cell, cells.factor_codes, cells.n_cells)
        a_won, decided = (cells.outcome == 1).astype(float), (cells.outcome != 0).astype(float)
        pooled = ratio_variance(layout, a_won, decided, stats.FACTORS)
        plug_in = ratio_variance(layout, a_won, decided, stats.FACTORS, pool_df=False)
        fewest = np.min([pooled.clusters[f] for f in stats.FACTORS], axis=0) - 1.0
        estimates.append(pooled.estimate)
        se = np.sqrt(pooled.variance)
        errors.append(se)
        for name, df in zip(names, (pooled.df, plug_in.df, fewest, np.full(fewest.shape, np.inf)), strict=True):
            half = sps.t.ppf(0.975, df) * se
            found[name]["low"].append(pooled.estimate - half)
            found[name]["high"].append(pooled.estimate + half)
            found[name]["p"].append(2 * sps.t.sf(np.abs(pooled.estimate - 0.5) / se, df))
    estimates = np.array(estimates)
    truth = design.true_win_rates().ravel()
    ideal = 2 * 1.96 * estimates.std(axis=0, ddof=1)
    print(f"design {args.design}, {args.studies} studies, {'null' if args.null else 'true win rates 35%..75%'}")
    errors = np.array(errors)
    quantile = np.quantile(np.abs(estimates - truth) / errors, 0.95)
    floor = (quantile * errors.mean(axis=0) / ideal * 2).mean()
    print(
        f"  the 95% quantile of |estimate - truth| / SE over all cells is {quantile:.2f} (1.96 for a normal): an "
        f"interval estimate +- q SE that covers 95% has mean width {floor:.3f} x the ideal"
    )
    for name in names:
        low, high, p = (np.array(found[name][k]) for k in ("low", "high", "p"))
        coverage = ((low <= truth) & (truth <= high)).mean(axis=0)
        marks = np.array([stats.holm(row) < 0.05 for row in p])
        line = (
            f"  {name:<40} coverage {coverage.mean():.3f} (min {coverage.min():.3f}), width/ideal "
            f"{((high - low).mean(axis=0) / ideal).mean():.3f}"
        )
        if args.null:
            line += f", family-wise rate {marks.any(axis=1).mean():.3f}, p < 0.05/45: {(p < 0.05 / 45).mean():.5f}"
        print(line)


PLAN_SHAPE = {
    "n_subjects": 12,
    "n_prompts": 15,
    "n_comparisons": 3,
    "n_questions": 1,
    "pairs_per_rater": 30,
    "win_rates": (0.6, 0.55, 0.5),
}


def plan(args) -> None:
    rng = np.random.default_rng(args.seed)
    pilot_rows = []
    for _ in range(12):
        table, specs = simulate_study(CrossedStudyDesign(n_raters=300, **PLAN_SHAPE), rng)
        pilot_rows += [row.estimate for row in stats.analyse(table, specs).rows]
    components = stats.VarianceComponents.from_results(pilot_rows)
    design = stats.CrossedDesign(n_subjects=12, n_prompts=15, decided_per_rater=30 / 3 * 0.75)
    print(f"components from 12 pilot studies: {components}")
    for half_width in (0.06, 0.08, 0.10, 0.12):
        found = stats.plan_for_width(half_width, components=components, design=design, win_rate=0.55, tie_rate=0.25)
        if not found.reachable:
            print(
                f"  half-width {half_width}: out of reach, the floor with 12 subjects x 15 prompts is "
                f"{found.smallest_half_width:.3f}"
            )
            continue
        summary = run_studies(CrossedStudyDesign(n_raters=found.raters, **PLAN_SHAPE), args.studies, seed=args.seed)
        realised = (summary.high - summary.low).mean() / 2
        print(
            f"  half-width {half_width}: plan {found.n_decisive} decided answers per cell ({found.raters} raters, "
            f"df {found.df:.1f}), promised {found.promised_half_width:.4f}, realised {realised:.4f} over "
            f"{args.studies} studies"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    timing = commands.add_parser("speed")
    timing.add_argument("--answers", type=int, default=50_000)
    timing.add_argument("--repeats", type=int, default=3)
    simulation = commands.add_parser("simulate")
    simulation.add_argument("--design", choices=("paper", "small"), default="paper")
    simulation.add_argument("--studies", type=int, default=2000)
    simulation.add_argument("--bootstrap-studies", type=int, default=0)
    simulation.add_argument("--previous-studies", type=int, default=0)
    simulation.add_argument("--null", action="store_true")
    simulation.add_argument("--seed", type=int, default=20260)
    other = commands.add_parser("variants")
    other.add_argument("--design", choices=("paper", "small"), default="paper")
    other.add_argument("--studies", type=int, default=1000)
    other.add_argument("--null", action="store_true")
    other.add_argument("--seed", type=int, default=20260)
    planning = commands.add_parser("plan")
    planning.add_argument("--studies", type=int, default=200)
    planning.add_argument("--seed", type=int, default=20260)
    args = parser.parse_args()
    {"speed": speed, "simulate": simulate, "variants": variants, "plan": plan}[args.command](args)


if __name__ == "__main__":
    main()
