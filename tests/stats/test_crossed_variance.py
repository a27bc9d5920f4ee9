"""The crossed random-factor variance: its moment equations, unbiasedness, fixed factors, degenerate designs."""

import itertools

import numpy as np
import pytest

from studyapp.stats.crossed_variance import ClusterLayout, _SharedDenominator, ratio_variance, ratio_variances

FACTORS = ("rater", "subject", "prompt")


def random_design(rng, n_rows, n_raters, n_subjects, n_prompts, n_cells=1):
    return {
        "cell": rng.integers(0, n_cells, n_rows),
        "rater": rng.integers(0, n_raters, n_rows),
        "subject": rng.integers(0, n_subjects, n_rows),
        "prompt": rng.integers(0, n_prompts, n_rows),
    }


def layout_of(design, n_cells=1):
    return ClusterLayout.build(design["cell"], {f: design[f] for f in FACTORS}, n_cells)


def shares(design, members):
    """Row x row matrix: 1 where two rows share every factor in ``members``."""
    same = np.ones((design["rater"].size,) * 2, bool)
    for factor in members:
        same &= design[factor][:, None] == design[factor][None, :]
    return same.astype(float)


def test_moment_equations_equal_the_expectation_of_centred_cluster_sums():
    # E[û' A_K û] = tr(A_K P Σ P') with P = I - x 1'/X and Σ = Σ_T σ²_T D B_T D, written out in full
    rng = np.random.default_rng(3)
    design = random_design(rng, 40, 6, 4, 5)
    x = rng.integers(0, 2, 40).astype(float)
    x[:3] = 1.0
    layout = layout_of(design)
    moments = _SharedDenominator.build(layout, x).moments[0]
    centring = np.eye(40) - np.outer(x, np.ones(40)) / x.sum()
    sets = [tuple(FACTORS[i] for i in range(3) if mask >> i & 1) for mask in layout.masks]
    for (a, k), (b, t) in itertools.product(enumerate(sets), repeat=2):
        covariance = np.diag(x) @ shares(design, t) @ np.diag(x)
        expected = np.trace(shares(design, k) @ centring @ covariance @ centring.T)
        assert moments[a, b] == pytest.approx(expected, rel=1e-9, abs=1e-9), (k, t)


def test_variance_is_unbiased_under_the_crossed_model_where_plain_multiway_clustering_is_not():
    # five subjects dominate: centring at the estimate removes about a fifth of their variance
    rng = np.random.default_rng(11)
    design = random_design(rng, 600, 40, 5, 8)
    layout = layout_of(design)
    sd = {"rater": 0.3, "subject": 1.0, "prompt": 0.5}
    n_draws = 400
    draws = [
        sum(rng.normal(0, s, design[f].max() + 1)[design[f]] for f, s in sd.items()) + rng.normal(0, 1.0, 600)
        for _ in range(n_draws)
    ]
    counts = {f: np.bincount(design[f]) for f in FACTORS}
    truth = sum(s**2 * (counts[f] ** 2).sum() for f, s in sd.items()) / 600**2 + 1.0 / 600
    found = ratio_variances(layout, draws, np.ones(600), FACTORS, pool_df=False)
    variances = np.array([v.variance[0] for v in found])
    assert variances.mean() / truth == pytest.approx(1.0, abs=0.08)  # Monte Carlo SE about 0.03
    # plain CGM inclusion-exclusion of the centred one-way sums is biased low here
    cgm = []
    for y in draws:
        u = y - y.mean()
        total = 0.0
        for members in itertools.chain.from_iterable(itertools.combinations(FACTORS, r) for r in (1, 2, 3)):
            keys = np.stack([design[f] for f in members], axis=1)
            _, index = np.unique(keys, axis=0, return_inverse=True)
            total += (-1) ** (len(members) + 1) * (np.bincount(index.ravel(), weights=u) ** 2).sum()
        cgm.append(total / 600**2)
    assert np.mean(cgm) / truth < 0.9


def test_a_fixed_factor_drops_exactly_its_own_component():
    rng = np.random.default_rng(5)
    design = random_design(rng, 800, 30, 6, 10)
    y = rng.normal(0, 1, 6)[design["subject"]] + rng.normal(0, 1, 800)
    layout = layout_of(design)
    everything = ratio_variance(layout, y, np.ones(800), FACTORS)
    subjects_fixed = ratio_variance(layout, y, np.ones(800), ("rater", "prompt"))
    expected = everything.variance[0] - everything.components["subject"][0]
    assert subjects_fixed.variance[0] == pytest.approx(expected)
    assert subjects_fixed.variance[0] < 0.5 * everything.variance[0]
    assert subjects_fixed.random == ("rater", "prompt")


def test_degrees_of_freedom_follow_the_factor_that_dominates():
    rng = np.random.default_rng(8)
    design = random_design(rng, 3000, 100, 6, 40)
    y = rng.normal(0, 3.0, 6)[design["subject"]] + rng.normal(0, 0.5, 3000)
    found = ratio_variance(layout_of(design), y, np.ones(3000), FACTORS, pool_df=False)
    assert 4.0 <= found.df[0] <= 5.5  # six subjects: about five degrees of freedom
    assert found.clusters == {"rater": 100, "subject": 6, "prompt": 40}


def test_a_random_factor_with_one_level_cannot_be_estimated():
    rng = np.random.default_rng(2)
    design = random_design(rng, 200, 10, 1, 10)
    found = ratio_variance(layout_of(design), rng.random(200), np.ones(200), FACTORS)
    assert not found.estimable[0]
    assert ratio_variance(layout_of(design), rng.random(200), np.ones(200), ("rater", "prompt")).estimable[0]


def test_variance_never_falls_below_its_answer_level_component():
    rng = np.random.default_rng(4)
    design = random_design(rng, 300, 20, 5, 6)
    layout = layout_of(design)
    for seed in range(20):
        y = np.random.default_rng(seed).random(300)
        for random in (FACTORS, ("rater",), ()):
            found = ratio_variance(layout, y, np.ones(300), random)
            assert found.variance[0] >= max(found.components["rater×subject×prompt"][0], 0) > 0


def test_cells_are_independent_problems():
    rng = np.random.default_rng(6)
    design = random_design(rng, 1000, 25, 6, 12, n_cells=3)
    y, x = rng.random(1000), (rng.random(1000) < 0.8).astype(float)
    together = ratio_variance(layout_of(design, 3), y, x, FACTORS, pool_df=False)
    for cell in range(3):
        rows = design["cell"] == cell
        alone_design = {k: v[rows] for k, v in design.items()}
        alone_design["cell"] = np.zeros(rows.sum(), np.int64)
        alone = ratio_variance(layout_of(alone_design), y[rows], x[rows], FACTORS, pool_df=False)
        assert together.estimate[cell] == pytest.approx(alone.estimate[0])
        assert together.variance[cell] == pytest.approx(alone.variance[0])
        assert together.df[cell] == pytest.approx(alone.df[0])


def test_unknown_random_factors_are_refused():
    design = random_design(np.random.default_rng(0), 20, 3, 3, 3)
    with pytest.raises(ValueError, match="random: expected factors from"):
        ratio_variance(layout_of(design), np.ones(20), np.ones(20), ("seed",))
