"""Tests of score and ranking correlations (tacitly.evaluate.correlation).

Hand-computed fixtures fix the definitions; scipy.stats (the ``bench`` extra) is the peer on
random data with many ties.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tacitly.errors import InputError
from tacitly.evaluate.correlation import kendall_tau_b, ranking_correlation, score_correlations


def test_one_swap_in_five_literal() -> None:
    # y swaps two neighbouring pairs of x: 2 of 10 pairs discordant, Σd² = 4
    result = score_correlations([1, 2, 3, 4, 5], [1, 3, 2, 5, 4])
    assert result["n"] == 5
    assert result["dropped"] == 0
    assert result["kendall_tau_b"] == pytest.approx((8 - 2) / 10)
    assert result["spearman"] == pytest.approx(1 - 6 * 4 / (5 * 24))
    assert result["pearson"] == pytest.approx(0.8)
    # t = 0.8·√(3 / 0.36) on 3 degrees of freedom
    assert result["pearson_p"] == pytest.approx(0.104088, abs=1e-6)
    # z = S / √(n(n−1)(2n+5)/18) = 6 / √(100/6)
    assert result["kendall_p"] == pytest.approx(math.erfc(6 / math.sqrt(100 / 6) / math.sqrt(2)))


def test_tau_b_with_ties_on_both_sides_literal() -> None:
    # pairs: (1,2) tied in x, (2,3) tied in y, the other 4 concordant; n0 = 6, n1 = n2 = 1
    tau, _ = kendall_tau_b([1, 1, 2, 3], [1, 2, 2, 3])
    assert tau == pytest.approx(4 / math.sqrt(5 * 5))


def test_perfect_agreement() -> None:
    result = score_correlations([0.1, 0.2, 0.7, 0.9], [1, 2, 3, 5])
    # Pearson: Σxy = 1.875, Σxx = 0.4475, Σyy = 8.75 (deviations from the means)
    assert (result["pearson"], result["spearman"], result["kendall_tau_b"]) == (
        pytest.approx(1.875 / math.sqrt(0.4475 * 8.75)),
        1.0,
        1.0,
    )
    assert result["spearman_p"] == 0.0


def test_non_finite_pairs_are_dropped_and_counted() -> None:
    result = score_correlations([1.0, math.nan, 2.0, 3.0, math.inf], [1, 2, 2, 3, 4])
    assert (result["n"], result["dropped"]) == (3, 2)
    assert result["kendall_tau_b"] == 1.0


def test_constant_side_gives_none() -> None:
    result = score_correlations([1.0, 1.0, 1.0], [1, 2, 3])
    assert all(result[key] is None for key in ("pearson", "spearman", "kendall_tau_b"))
    assert all(result[key] is None for key in ("pearson_p", "spearman_p", "kendall_p"))


def test_bootstrap_intervals() -> None:
    x = np.arange(20.0)
    result = score_correlations(x, 2 * x + 1, n_boot=200)
    # every resample with two distinct values is perfectly monotone
    assert result["pearson_ci95"] == [1.0, 1.0]
    assert result["kendall_ci95"] == [1.0, 1.0]
    noisy = score_correlations(x, x + np.random.default_rng(0).normal(0, 8, 20), n_boot=200)
    low, high = noisy["spearman_ci95"]
    assert low < noisy["spearman"] < high


@pytest.mark.parametrize(
    ("scores", "ratings", "field"),
    [
        pytest.param([1.0, 2.0], [1.0, 2.0], "scores", id="two-pairs"),
        pytest.param([1.0, 2.0, 3.0], [1.0, 2.0], "ratings", id="lengths-differ"),
        pytest.param([[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]], "ratings", id="two-dimensional"),
        pytest.param(["a", "b", "c"], [1, 2, 3], "scores", id="not-numeric"),
        pytest.param([1.0, 2.0, math.nan], [1, 2, 3], "scores", id="too-few-finite"),
    ],
)
def test_score_correlations_bad_input(scores: Any, ratings: Any, field: str) -> None:
    with pytest.raises(InputError) as error:
        score_correlations(scores, ratings)
    assert error.value.field == field


# --- model ranking -------------------------------------------------------------------------


def test_ranking_correlation_literal() -> None:
    rewards = {"b": [0.5, 0.7], "a": [0.1, 0.3], "c": [0.2, 0.4], "d": np.array([1.0, 2.0])}
    elo = {"a": 1000.0, "b": 1100.0, "c": 1250.0, "d": 1300.0}
    result = ranking_correlation(rewards, elo)
    assert result["n_models"] == 4
    assert list(result["models"]) == ["a", "b", "c", "d"]
    assert result["models"]["d"] == {"mean_reward": 1.5, "elo": 1300.0, "n": 2}
    # mean-reward order a < c < b < d, Elo order a < b < c < d: one swapped pair of six
    assert result["kendall_tau_b"] == pytest.approx((5 - 1) / 6)
    assert result["spearman"] == pytest.approx(1 - 6 * 2 / (4 * 15))


@pytest.mark.parametrize(
    ("rewards", "elo", "message"),
    [
        pytest.param({"a": [1], "b": [2]}, {"a": 1, "b": 2}, "2 models", id="two-models"),
        pytest.param(
            {"a": [1], "b": [2], "c": [3]}, {"a": 1, "b": 2, "d": 3}, "without", id="mismatch"
        ),
        pytest.param(
            {"a": [1], "b": [2], "c": []}, {"a": 1, "b": 2, "c": 3}, "no rewards", id="empty"
        ),
        pytest.param(
            {"a": [1], "b": [2], "c": [math.nan]}, {"a": 1, "b": 2, "c": 3}, "NaN", id="nan-reward"
        ),
        pytest.param(
            {"a": [1], "b": [2], "c": [3]}, {"a": 1, "b": 2, "c": math.inf}, "Elo", id="bad-elo"
        ),
    ],
)
def test_ranking_correlation_bad_input(
    rewards: dict[str, Any], elo: dict[str, float], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        ranking_correlation(rewards, elo)


# --- peer: scipy.stats ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "levels", "seed"),
    [
        pytest.param(3, 3, 0, id="n3"),
        pytest.param(12, 3, 1, id="n12-heavy-ties"),
        pytest.param(80, 5, 2, id="n80-likert"),
        pytest.param(320, 9, 3, id="n320-vicuna-size"),
        pytest.param(3000, 1000, 4, id="n3000-few-ties"),
    ],
)
def test_agrees_with_scipy(n: int, levels: int, seed: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(seed)
    ratings = rng.integers(1, levels + 1, n).astype(float)
    scores = np.round(ratings + rng.normal(0, 1.5, n), 1)  # rounding adds ties to the scores
    result = score_correlations(scores, ratings)
    peers = {
        "pearson": stats.pearsonr(scores, ratings),
        "spearman": stats.spearmanr(scores, ratings),
        "kendall": stats.kendalltau(scores, ratings, method="asymptotic"),
    }
    for name, key in (
        ("pearson", "pearson"),
        ("spearman", "spearman"),
        ("kendall", "kendall_tau_b"),
    ):
        assert result[key] == pytest.approx(peers[name].statistic, abs=1e-12)
        assert result[f"{name}_p"] == pytest.approx(peers[name].pvalue, rel=1e-8, abs=1e-300)


def test_kendall_agrees_with_scipy_on_a_large_input() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    x = rng.integers(0, 50, 20_000)
    y = x + rng.integers(0, 30, 20_000)
    tau, p = kendall_tau_b(x, y)
    peer = stats.kendalltau(x, y, method="asymptotic")
    assert tau == pytest.approx(peer.statistic, abs=1e-12)
    assert p == pytest.approx(peer.pvalue, rel=1e-8, abs=1e-300)


def test_ranking_correlation_agrees_with_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(6)
    elo = {f"m{i}": float(rng.integers(900, 1300)) for i in range(7)}
    rewards = {name: rng.normal(rating / 1000, 0.3, 40) for name, rating in elo.items()}
    result = ranking_correlation(rewards, elo)
    means = [np.mean(rewards[name]) for name in sorted(elo)]
    ratings = [elo[name] for name in sorted(elo)]
    assert result["spearman"] == pytest.approx(stats.spearmanr(means, ratings).statistic)
    assert result["pearson_p"] == pytest.approx(stats.pearsonr(means, ratings).pvalue)
