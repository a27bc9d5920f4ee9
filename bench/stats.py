"""Time the whole results computation of studyapp.stats against a replicate-by-replicate loop.

    .venv/bin/python bench/stats.py [--answers 50000] [--resamples 2000] [--naive-resamples 40]

Study: 50,000 answers (pair judgments), each with 3 questions (150,000 answer rows), 200
raters, 300 prompts, 6 methods in 15 comparisons, 5% gold pairs and 1,000 pairs judged by three
raters for agreement. The fast path is `stats.analyse` (win rates, intervals, sign-flip tests,
Holm, Bradley-Terry with bootstrap, agreement, rater quality). The naive baseline computes the
same bootstrap one replicate at a time (row weights + bincount, and a scipy L-BFGS
Bradley-Terry fit per question); it runs ``--naive-resamples`` replicates and is scaled up.
"""

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import optimize, special

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studyapp import stats  # noqa: E402
from studyapp.stats import AnalysisSettings, AnswerTable, ComparisonSpec  # noqa: E402


def build_study(n_answers: int, n_raters: int = 200, n_prompts: int = 300, n_questions: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    specs = [ComparisonSpec(i, a, b, f"M{a} vs M{b}") for i, (a, b) in enumerate(itertools.combinations(range(6), 2))]
    n_overlap_pairs = min(1000, n_answers // 30)
    n_single = n_answers - 3 * n_overlap_pairs
    pair = np.concatenate([np.arange(n_single), np.repeat(n_single + np.arange(n_overlap_pairs), 3)])
    n_pairs = n_single + n_overlap_pairs
    pair_comparison = rng.integers(0, len(specs), n_pairs)
    pair_prompt = rng.integers(0, n_prompts, n_pairs)
    rater = rng.integers(0, n_raters, n_answers)
    left_is_a = rng.random(n_answers) < 0.5
    strength = np.linspace(-0.5, 0.5, 6)
    rater_effect = rng.normal(0, 0.5, n_raters)
    prompt_effect = rng.normal(0, 0.4, n_prompts)
    is_gold = np.repeat(rng.random(n_pairs) < 0.05, np.bincount(pair, minlength=n_pairs))
    comparison, prompt = pair_comparison[pair], pair_prompt[pair]
    a = strength[[s.method_a for s in specs]][comparison]
    b = strength[[s.method_b for s in specs]][comparison]
    outcomes = []
    for _ in range(n_questions):
        logit = a - b + rater_effect[rater] + prompt_effect[prompt] + np.where(left_is_a, 0.1, -0.1)
        a_wins = rng.random(n_answers) < special.expit(logit)
        outcomes.append(np.where(rng.random(n_answers) < 0.2, 0, np.where(a_wins, 1, -1)))
    tile = lambda x: np.tile(x, n_questions)  # noqa: E731
    table = AnswerTable(
        comparison=tile(comparison), question=np.repeat(np.arange(n_questions), n_answers), rater=tile(rater),
        item=tile(prompt), pair=tile(pair), outcome=np.concatenate(outcomes), left_is_a=tile(left_is_a),
        time_ms=tile(rng.gamma(4, 1500, n_answers)), is_gold=tile(is_gold),
        is_attention=tile(np.zeros(n_answers, bool)), check_passed=tile(rng.random(n_answers) < 0.9),
    )  # fmt: skip
    return table, specs


def naive_replicates(table: AnswerTable, specs, n_resamples: int, seed: int = 0) -> tuple[float, float]:
    """The obvious loop: per replicate, weight every row, count, and fit BT with scipy.

    Returns seconds spent on (win-rate counts, Bradley-Terry fits)."""
    keep = ~table.is_check
    comparison, question, outcome = table.comparison[keep], table.question[keep], table.outcome[keep]
    left = table.left_is_a[keep]
    raters, rater = np.unique(table.rater[keep], return_inverse=True)
    prompts, prompt = np.unique(table.item[keep], return_inverse=True)
    n_questions = int(question.max()) + 1
    cell = (comparison * n_questions + question) * 3 + (1 - outcome)
    n_methods = 6
    method_a = np.array([s.method_a for s in specs])[comparison]
    method_b = np.array([s.method_b for s in specs])[comparison]
    winner_left = np.where(left, method_a, method_b)
    loser_right = np.where(left, method_b, method_a)
    rng = np.random.default_rng(seed)
    counting = fitting = 0.0
    for _ in range(n_resamples):
        start = time.perf_counter()
        rater_w = rng.multinomial(raters.size, np.full(raters.size, 1 / raters.size))
        prompt_w = rng.multinomial(prompts.size, np.full(prompts.size, 1 / prompts.size))
        weight = rater_w[rater] * prompt_w[prompt]
        counts = np.bincount(cell, weights=weight, minlength=len(specs) * n_questions * 3).reshape(-1, 3)
        with np.errstate(invalid="ignore", divide="ignore"):
            _ = counts[:, 0] / (counts[:, 0] + counts[:, 2]), counts[:, 1] / counts.sum(axis=1)
        counting += time.perf_counter() - start
        start = time.perf_counter()
        for q in range(n_questions):
            mask = question == q
            score = np.where(outcome[mask] == 0, 0.5, np.where(outcome[mask] == 1, 1.0, 0.0))
            score = np.where(left[mask], score, 1 - score)  # left player's score
            w = weight[mask]

            def loss(theta, w=w, score=score, mask=mask):
                eta = theta[winner_left[mask]] - theta[loser_right[mask]] + theta[n_methods]
                log_p, log_q = special.log_expit(eta), special.log_expit(-eta)
                value = -(w * (score * log_p + (1 - score) * log_q)).sum() + 0.005 * (theta @ theta)
                residual = w * (score - special.expit(eta))
                grad = np.zeros(n_methods + 1)
                np.add.at(grad, winner_left[mask], -residual)
                np.add.at(grad, loser_right[mask], residual)
                grad[n_methods] = -residual.sum()
                return value, grad + 0.01 * theta

            optimize.minimize(loss, np.zeros(n_methods + 1), jac=True, method="L-BFGS-B")
        fitting += time.perf_counter() - start
    return counting, fitting


def best_of(repeats: int, function) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=50_000)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--naive-resamples", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    table, specs = build_study(args.answers)
    settings = AnalysisSettings(n_resamples=args.resamples, seed=1)
    load = os.getloadavg()[0]
    print(f"load average before: {load:.2f} on {os.cpu_count()} CPUs (other work on the machine slows every line)")
    print(f"study: {args.answers} answers x 3 questions = {len(table)} rows, "
          f"{np.unique(table.rater).size} raters, {np.unique(table.item).size} prompts, "
          f"{len(specs)} comparisons, B = {args.resamples}")  # fmt: skip

    fast, result = best_of(args.repeats, lambda: stats.analyse(table, specs, settings))
    print(f"analyse (everything, two-way cluster bootstrap):  {fast:7.3f} s  (best of {args.repeats})")
    parts = {
        "  one cell via win_rate()": lambda: stats.win_rate(table, 0, 0, n_resamples=args.resamples),
        "  Bradley-Terry, 3 questions": lambda: stats.bradley_terry(table, specs, n_resamples=args.resamples),
        "  rater quality": lambda: stats.rater_quality(table),
        "  agreement, 1 question": lambda: stats.agreement(table, question=0, n_resamples=args.resamples),
    }
    for name, function in parts.items():
        print(f"{name:<50}{best_of(args.repeats, function)[0]:7.3f} s")

    counting, fitting = naive_replicates(table, specs, args.naive_resamples)
    scale = args.resamples / args.naive_resamples
    cells = stats._cells(table, specs, None)
    fast_counts = best_of(args.repeats, lambda: stats._replicate_counts(
        cells, args.resamples, np.random.default_rng(0), "two-way", "multinomial"))[0]  # fmt: skip
    print(f"naive loop, {args.naive_resamples} replicates measured, scaled to {args.resamples}:")
    print(f"  win-rate counts (row weights + bincount)        {counting * scale:7.2f} s")
    print(f"  Bradley-Terry (scipy L-BFGS per question)       {fitting * scale:7.2f} s")
    print(f"  total                                           {(counting + fitting) * scale:7.2f} s")
    naive_total = (counting + fitting) * scale
    print(f"speed-up, everything: {naive_total / fast:.0f}x (naive {naive_total:.1f} s vs analyse {fast:.3f} s)")
    print(f"speed-up, bootstrap counts for all {cells.n_cells} cells: {counting * scale / fast_counts:.0f}x "
          f"(naive {counting * scale:.2f} s vs vectorised {fast_counts:.3f} s)")  # fmt: skip
    row = result.row(0, 0)
    print(f"example cell {row.label}, question 0: win rate {row.estimate.win_rate:.3f} "
          f"[{row.estimate.win_rate_ci.low:.3f}, {row.estimate.win_rate_ci.high:.3f}] (Wilson "
          f"[{row.wilson_ci.low:.3f}, {row.wilson_ci.high:.3f}]), design effect {row.estimate.design_effect:.2f}, "
          f"adjusted p {row.adjusted_pvalue:.3g}")  # fmt: skip


if __name__ == "__main__":
    main()
