"""Tests of pairwise accuracy (RewardBench's tie rule) and the bootstrap CI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tacitly.errors import InputError
from tacitly.evaluate.metrics import bootstrap_ci, pairwise_accuracy, pairwise_correct


@pytest.mark.parametrize(
    ("chosen", "rejected", "expected"),
    [
        pytest.param([2.0, 3.0, 1.0, 0.0], [1.0, 1.0, 1.0, 5.0], 0.5, id="tie-counts-wrong"),
        pytest.param([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], 0.0, id="all-ties-score-zero"),
        pytest.param([0.1, -2.0, 7.0, 3.0], [0.0, -3.0, 6.5, 2.9], 1.0, id="all-right"),
        pytest.param([math.nan, 2.0], [0.0, 1.0], 0.5, id="nan-counts-wrong"),
        pytest.param([1.0, 1.0 + 1e-9], [1.0 + 1e-9, 1.0], 0.5, id="tiny-gaps-count"),
    ],
)
def test_pairwise_accuracy_literal(
    chosen: list[float], rejected: list[float], expected: float
) -> None:
    assert pairwise_accuracy(chosen, rejected) == expected


def test_pairwise_correct_per_pair() -> None:
    assert pairwise_correct(np.array([3, 1, 2]), np.array([1, 1, 4])).tolist() == [
        True,
        False,
        False,
    ]


@pytest.mark.parametrize(
    ("chosen", "rejected", "field"),
    [
        pytest.param([], [], "chosen_rewards", id="empty"),
        pytest.param([1.0, 2.0], [1.0], "rejected_rewards", id="lengths-differ"),
        pytest.param([[1.0]], [[0.0]], "chosen_rewards", id="two-dimensional"),
        pytest.param(["a"], [1.0], "chosen_rewards", id="not-numeric"),
    ],
)
def test_pairwise_accuracy_bad_input(chosen: object, rejected: object, field: str) -> None:
    with pytest.raises(InputError) as error:
        pairwise_accuracy(chosen, rejected)  # type: ignore[arg-type]
    assert error.value.field == field


def test_bootstrap_ci_brackets_the_mean_and_is_reproducible() -> None:
    values = np.r_[np.ones(70), np.zeros(30)]
    low, high = bootstrap_ci(values, n=2000, seed=1)
    assert low < 0.7 < high
    # binomial standard error sqrt(0.7 · 0.3 / 100) ≈ 0.046: a 95% interval ≈ ±0.09
    assert 0.12 < high - low < 0.24
    assert bootstrap_ci(values, n=2000, seed=1) == (low, high)


def test_bootstrap_ci_of_constant_values_is_a_point() -> None:
    assert bootstrap_ci([0.25, 0.25, 0.25], n=50) == (0.25, 0.25)


def test_bootstrap_ci_chunks_large_inputs_consistently() -> None:
    values = np.random.default_rng(0).random(200_000)
    low, high = bootstrap_ci(values, n=60, seed=0)
    assert low < values.mean() < high


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"values": []}, "values", id="empty"),
        pytest.param({"values": [1.0, math.nan]}, "values", id="nan"),
        pytest.param({"values": [1.0], "n": 0}, "n", id="no-resamples"),
        pytest.param({"values": [1.0], "confidence": 1.0}, "confidence", id="confidence"),
    ],
)
def test_bootstrap_ci_bad_input(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as error:
        bootstrap_ci(**kwargs)  # type: ignore[arg-type]
    assert error.value.field == field
