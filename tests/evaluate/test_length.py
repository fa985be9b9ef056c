"""Tests of the length-bias report, the rank correlation and the length residualiser."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from tacitly.errors import InputError
from tacitly.evaluate.length import (
    LengthResidualiser,
    average_ranks,
    length_bias_report,
    pair_lengths,
    pearson,
    response_length,
    spearman,
)

# Four pairs, lengths in characters (chosen, rejected):
#   1: 4 vs 2 (chosen longer)   rewards 2 vs 1  → right
#   2: 1 vs 3 (chosen shorter)  rewards 1 vs 2  → wrong
#   3: 2 vs 6 (chosen shorter)  rewards 0 vs -1 → right
#   4: 3 vs 3 (equal)           rewards 5 vs 5  → tie, wrong
ROWS: list[dict[str, Any]] = [
    {"chosen": "aaaa", "rejected": "bb"},
    {"chosen": [{"role": "assistant", "content": "c"}], "rejected": "ddd"},
    {"chosen": "ee", "rejected": [{"role": "assistant", "content": "ffffff"}]},
    {"chosen": "ggg", "rejected": "hhh"},
]
CHOSEN = [2.0, 1.0, 0.0, 5.0]
REJECTED = [1.0, 2.0, -1.0, 5.0]


def test_report_accuracies_by_length_group() -> None:
    report = length_bias_report(ROWS, CHOSEN, REJECTED)
    assert report.n == 4
    assert report.unit == "chars"
    assert report.accuracy == 0.5
    assert report.chosen_longer_share == 0.25
    assert report.longer_wins_accuracy == 0.25
    assert (report.n_chosen_shorter, report.accuracy_chosen_shorter) == (2, 0.5)
    assert (report.n_chosen_longer, report.accuracy_chosen_longer) == (1, 1.0)
    assert (report.n_equal_length, report.accuracy_equal_length) == (1, 0.0)
    # Two pairs, one right: every resample's mean is 0, 0.5 or 1.
    assert report.accuracy_chosen_shorter_ci95 is not None
    low, high = report.accuracy_chosen_shorter_ci95
    assert low in (0.0, 0.5) and high in (0.5, 1.0) and low <= 0.5 <= high


def test_report_correlations_by_hand() -> None:
    report = length_bias_report(ROWS, CHOSEN, REJECTED)
    # Responses: rewards [2, 1, 0, 5, 1, 2, -1, 5], lengths [4, 1, 2, 3, 2, 3, 6, 3];
    # deviations from the means (15/8, 3): Σ dr·dl = -4, Σ dl² = 16, Σ dr² = 32.875.
    assert report.reward_length_pearson == pytest.approx(-4 / math.sqrt(16 * 32.875))
    # Average ranks: rewards [5.5, 3.5, 2, 7.5, 3.5, 5.5, 1, 7.5],
    # lengths [7, 1, 2.5, 5, 2.5, 5, 8, 5]; Σ products of deviations 4.25, Σ squares 40.5, 39.5.
    assert report.reward_length_spearman == pytest.approx(4.25 / math.sqrt(40.5 * 39.5))
    # Pairs: reward gaps [1, -1, 1, 0], length gaps [2, -2, -4, 0].
    assert report.difference_pearson == pytest.approx(1 / math.sqrt(2.75 * 20))
    # Ranks of the gaps [3.5, 1, 3.5, 2] and [4, 2, 1, 3].
    assert report.difference_spearman == pytest.approx(0.5 / math.sqrt(4.5 * 5))


def test_report_words_unit() -> None:
    rows = [{"chosen": "one two three", "rejected": "a b"}, {"chosen": "x", "rejected": "y z"}]
    report = length_bias_report(rows, [1.0, 1.0], [0.0, 0.0], unit="words")
    assert report.unit == "words"
    assert (report.n_chosen_longer, report.n_chosen_shorter, report.n_equal_length) == (1, 1, 0)
    assert report.accuracy_equal_length is None


def test_report_empty_groups_are_none_and_dict_is_json_ready() -> None:
    rows = [{"chosen": "long one", "rejected": "short"}] * 3
    report = length_bias_report(rows, [1.0, 0.0, 2.0], [0.0, 1.0, 1.0])
    assert report.n_chosen_shorter == 0
    assert report.accuracy_chosen_shorter is None
    assert report.accuracy_chosen_shorter_ci95 is None
    assert report.longer_wins_accuracy == 1.0
    # Every response pair has the same two lengths: the length gap is constant.
    assert report.difference_pearson is None
    data = json.loads(json.dumps(report.to_dict()))
    assert data["accuracy_ci95"] == list(report.accuracy_ci95)
    assert data["accuracy_chosen_shorter"] is None


def test_nan_reward_is_wrong_and_left_out_of_correlations() -> None:
    report = length_bias_report(ROWS, [2.0, 1.0, 0.0, math.nan], REJECTED)
    assert report.accuracy == 0.5
    # Only the chosen side of pair 4 is dropped from the response correlation.
    rewards = [2.0, 1.0, 0.0, 1.0, 2.0, -1.0, 5.0]
    lengths = [4, 1, 2, 2, 3, 6, 3]
    assert report.reward_length_pearson == pytest.approx(float(np.corrcoef(rewards, lengths)[0, 1]))


@pytest.mark.parametrize(
    ("rows", "chosen", "rejected", "field", "row"),
    [
        pytest.param([], [], [], "rows", None, id="no-rows"),
        pytest.param(ROWS, [1.0, 2.0], [1.0, 2.0], "chosen_rewards", None, id="too-few-rewards"),
        pytest.param(ROWS, CHOSEN, REJECTED[:3], "rejected_rewards", None, id="sides-differ"),
        pytest.param([{"chosen": "a"}], [1.0], [0.0], "rejected", 1, id="no-rejected"),
        pytest.param(
            [ROWS[0], {"chosen": [], "rejected": "b"}], [1, 1], [0, 0], "chosen", 2, id="empty-side"
        ),
        pytest.param(
            [{"chosen": [{"role": "assistant"}], "rejected": "b"}],
            [1.0],
            [0.0],
            "chosen",
            1,
            id="message-without-content",
        ),
    ],
)
def test_report_bad_input(
    rows: list[dict[str, Any]],
    chosen: list[float],
    rejected: list[float],
    field: str,
    row: int | None,
) -> None:
    with pytest.raises(InputError) as error:
        length_bias_report(rows, chosen, rejected)
    assert error.value.field == field
    assert error.value.row == row


def test_pair_lengths() -> None:
    chosen, rejected = pair_lengths(ROWS)
    assert chosen.tolist() == [4, 1, 2, 3]
    assert rejected.tolist() == [2, 3, 6, 3]


def test_response_length_messages_and_words() -> None:
    messages = [{"role": "assistant", "content": "ab"}, {"role": "assistant", "content": "c d"}]
    assert response_length(messages) == 5
    assert response_length(messages, unit="words") == 3


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([10, 30, 20, 30], [1.0, 3.5, 2.0, 3.5], id="one-tie"),
        pytest.param([5, 5, 5], [2.0, 2.0, 2.0], id="all-tied"),
        pytest.param([3.0, -1.0], [2.0, 1.0], id="no-tie"),
        pytest.param([], [], id="empty"),
    ],
)
def test_average_ranks(values: list[float], expected: list[float]) -> None:
    assert average_ranks(values).tolist() == expected


def test_correlations_undefined_are_none() -> None:
    assert pearson([1.0], [2.0]) is None
    assert spearman([1.0, 2.0], [3.0, 3.0]) is None
    assert pearson([1.0, math.nan, 2.0], [1.0, 5.0, math.inf]) is None


def test_spearman_matches_scipy_with_ties() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for _ in range(5):
        x = rng.integers(0, 6, size=40).astype(float)
        y = x + rng.integers(0, 4, size=40)
        assert spearman(x, y) == pytest.approx(float(stats.spearmanr(x, y).statistic), abs=1e-12)
        assert pearson(x, y) == pytest.approx(float(stats.pearsonr(x, y).statistic), abs=1e-12)


# -- the residualiser ------------------------------------------------------------------------


def test_residualiser_recovers_a_planted_slope_exactly() -> None:
    lengths = np.array([0, 9, 99, 999, 9, 99])
    rewards = -0.5 + 0.25 * np.log1p(lengths)
    residualiser = LengthResidualiser().fit(rewards, lengths)
    assert residualiser.slope == pytest.approx(0.25, abs=1e-12)
    assert residualiser.intercept == pytest.approx(-0.5, abs=1e-12)
    # The length trend goes, the level stays: every response now scores the intercept.
    assert residualiser.transform(rewards, lengths) == pytest.approx(np.full(6, -0.5), abs=1e-12)


def test_residualiser_keeps_what_length_does_not_explain() -> None:
    lengths = np.array([1.0, 10.0, 100.0, 1000.0])
    quality = np.array([1.0, -1.0, -1.0, 1.0])  # orthogonal to nothing in particular
    rewards = quality + 2.0 * np.log1p(lengths)
    residualiser = LengthResidualiser().fit(rewards, lengths)
    adjusted = residualiser.transform(rewards, lengths)
    # Least squares leaves residuals uncorrelated with the regressor.
    residuals = adjusted - residualiser.intercept
    assert float(np.dot(residuals, np.log1p(lengths) - np.log1p(lengths).mean())) == (
        pytest.approx(0.0, abs=1e-9)
    )


def test_residualiser_round_trip() -> None:
    residualiser = LengthResidualiser(unit="words").fit([0.0, 1.0, 3.0], [0, 1, 3])
    saved = json.loads(json.dumps(residualiser.to_dict()))
    loaded = LengthResidualiser.from_dict(saved)
    assert (loaded.unit, loaded.slope, loaded.intercept) == (
        "words",
        residualiser.slope,
        residualiser.intercept,
    )
    assert loaded.transform([2.0], [5]).tolist() == residualiser.transform([2.0], [5]).tolist()


@pytest.mark.parametrize(
    ("rewards", "lengths", "field"),
    [
        pytest.param([1.0, 2.0], [1, 2, 3], "lengths", id="sizes-differ"),
        pytest.param([1.0, 2.0], [1, -2], "lengths", id="negative-length"),
        pytest.param([1.0, 2.0], [4, 4], "lengths", id="one-length-only"),
        pytest.param([1.0], [4], "rewards", id="one-response"),
        pytest.param([1.0, math.nan], [1, 2], "rewards", id="nan-reward"),
    ],
)
def test_residualiser_fit_errors(rewards: list[float], lengths: list[int], field: str) -> None:
    with pytest.raises(InputError) as error:
        LengthResidualiser().fit(rewards, lengths)
    assert error.value.field == field


def test_residualiser_unfitted_and_bad_saved_values() -> None:
    residualiser = LengthResidualiser()
    assert not residualiser.fitted
    with pytest.raises(InputError, match="not fitted"):
        residualiser.transform([1.0], [1])
    with pytest.raises(InputError, match="not fitted"):
        residualiser.to_dict()
    with pytest.raises(InputError):
        LengthResidualiser.from_dict({"slope": 1.0})
    with pytest.raises(InputError, match="unit"):
        LengthResidualiser(unit="tokens")  # type: ignore[arg-type]
    fitted = LengthResidualiser().fit([0.0, 1.0], [0, 3])
    with pytest.raises(InputError, match="negative"):
        fitted.transform([1.0], [-1])
