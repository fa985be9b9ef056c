"""Tests of the pairwise accuracy report (tacitly.evaluate.pairwise)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tacitly.errors import InputError
from tacitly.evaluate.metrics import bootstrap_ci
from tacitly.evaluate.pairwise import accuracy_report, row_subsets

# Hand-checkable pairs: subset "a" has 3 pairs (right, tie, wrong), "b" has 1 (right),
# "c" has 2 (right, NaN).
CHOSEN = [2.0, 1.0, 0.0, 5.0, 3.0, math.nan]
REJECTED = [1.0, 1.0, 1.0, 4.0, 2.0, 0.0]
SUBSETS = ["a", "a", "a", "b", "c", "c"]


def test_accuracy_per_subset_and_overall_literal() -> None:
    report = accuracy_report(CHOSEN, REJECTED, subsets=SUBSETS, n_boot=200)
    assert list(report)[:3] == ["accuracy", "n", "subsets"]
    assert report["accuracy"] == 0.5  # 3 right of 6: ties and NaNs are wrong
    assert report["n"] == 6
    assert report["subsets"] == {"a": pytest.approx(1 / 3), "b": 1.0, "c": 0.5}
    assert report["subset_n"] == {"a": 3, "b": 1, "c": 2}
    assert report["subset_mean_accuracy"] == pytest.approx((1 / 3 + 1.0 + 0.5) / 3)
    assert (report["ties"], report["nan"]) == (1, 1)


def test_overall_is_the_size_weighted_mean_of_subsets() -> None:
    report = accuracy_report(CHOSEN, REJECTED, subsets=SUBSETS, n_boot=10)
    weighted = sum(report["subsets"][s] * n for s, n in report["subset_n"].items()) / report["n"]
    assert report["accuracy"] == pytest.approx(weighted)


def test_intervals_use_the_shared_bootstrap() -> None:
    report = accuracy_report(CHOSEN, REJECTED, subsets=SUBSETS, n_boot=300, seed=4)
    hits = np.array([1, 0, 0, 1, 1, 0], dtype=float)
    assert report["ci95"] == list(bootstrap_ci(hits, n=300, seed=4))
    assert report["subset_ci95"]["b"] == [1.0, 1.0]
    assert report["subset_ci95"]["a"] == list(bootstrap_ci(hits[:3], n=300, seed=4))


def test_subset_mean_interval_resamples_within_subsets() -> None:
    # two subsets of constant correctness: every stratified resample gives (1 + 0) / 2
    report = accuracy_report([1, 1, 0, 0], [0, 0, 1, 1], subsets=["x", "x", "y", "y"])
    assert report["subset_mean_ci95"] == [0.5, 0.5]
    # pooled resampling, by contrast, varies
    assert report["ci95"][0] < 0.5 < report["ci95"][1]


def test_without_subsets_everything_is_all() -> None:
    report = accuracy_report([1.0, 0.0], [0.0, 1.0], n_boot=10)
    assert report["subsets"] == {"all": 0.5}
    assert report["subset_mean_accuracy"] == report["accuracy"]


def test_same_keys_as_the_rm_eval_json_convention() -> None:
    report = accuracy_report([1.0], [0.0], subsets=[None], n_boot=5)
    assert {"accuracy", "n", "subsets"} <= set(report)
    assert report["subsets"] == {"all": 1.0}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"chosen_rewards": [], "rejected_rewards": []}, "chosen_rewards", id="empty"),
        pytest.param(
            {"chosen_rewards": [1.0, 2.0], "rejected_rewards": [1.0]},
            "rejected_rewards",
            id="sides-differ",
        ),
        pytest.param(
            {"chosen_rewards": [1.0], "rejected_rewards": [0.0], "subsets": ["a", "b"]},
            "subsets",
            id="subsets-differ",
        ),
        pytest.param(
            {"chosen_rewards": [1.0], "rejected_rewards": [0.0], "n_boot": 0},
            "n_boot",
            id="no-resamples",
        ),
    ],
)
def test_bad_input(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as error:
        accuracy_report(**kwargs)
    assert error.value.field == field


@pytest.mark.parametrize(
    ("row", "by", "expected"),
    [
        pytest.param(
            {"meta": {"source": "autoj", "scenario": "code"}}, None, "code", id="scenario"
        ),
        pytest.param({"meta": {"source": "hh-rlhf"}}, None, "hh-rlhf", id="source"),
        pytest.param({"meta": {"subset": ""}, "subset": "chat"}, None, "chat", id="top-level"),
        pytest.param({"meta": {"scenario": "x", "task": 3}}, "task", "3", id="by"),
        pytest.param({"meta": {"scenario": "x"}}, "task", "all", id="by-missing"),
        pytest.param({}, None, "all", id="nothing"),
    ],
)
def test_row_subsets(row: dict[str, Any], by: str | None, expected: str) -> None:
    assert row_subsets([row], by=by) == [expected]
