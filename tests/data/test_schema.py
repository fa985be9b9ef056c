"""Tests for the preference row, the dataset container and the grouped split."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tacitly.data import (
    DroppedRow,
    Message,
    PreferenceDataset,
    PreferenceRow,
    grouped_split,
    load_preferences,
    make_row,
)
from tacitly.data.schema import pair_problem
from tacitly.errors import InputError

THIRDS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def _user(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


def _assistant(text: str) -> list[Message]:
    return [Message(role="assistant", content=text)]


def _row(prompt: str, chosen: str = "good", rejected: str = "bad") -> PreferenceRow:
    meta = {"source": "t", "id": prompt, "group": prompt}
    return make_row(
        prompt=_user(prompt), chosen=_assistant(chosen), rejected=_assistant(rejected), meta=meta
    )


def _dataset() -> PreferenceDataset:
    return PreferenceDataset(
        name="t",
        splits={"train": [_row("a"), _row("b")], "validation": [_row("c")], "test": []},
        dropped=(DroppedRow("4", "tie"), DroppedRow("5", "tie"), DroppedRow("6", "empty")),
    )


# --- grouped_split ------------------------------------------------------------------------


def test_grouped_split_keeps_groups_together_and_is_deterministic() -> None:
    groups = [f"g{i % 37}" for i in range(500)]
    first = grouped_split(groups, fractions=THIRDS, seed=42)
    assert first == grouped_split(groups, fractions=THIRDS, seed=42)
    split_of_group: dict[str, set[str]] = {}
    for group, split in zip(groups, first, strict=True):
        split_of_group.setdefault(group, set()).add(split)
    assert all(len(splits) == 1 for splits in split_of_group.values())


def test_grouped_split_meets_fractions_with_equal_groups() -> None:
    groups = [str(i) for i in range(1000)]
    counts = Counter(grouped_split(groups, fractions=THIRDS, seed=1))
    assert counts == {"train": 800, "validation": 100, "test": 100}


def test_grouped_split_changes_with_seed_and_ignores_row_order() -> None:
    groups = [str(i) for i in range(200)]
    by_seed_1 = dict(zip(groups, grouped_split(groups, fractions=THIRDS, seed=1), strict=True))
    by_seed_2 = dict(zip(groups, grouped_split(groups, fractions=THIRDS, seed=2), strict=True))
    assert by_seed_1 != by_seed_2
    reversed_groups = groups[::-1]
    reversed_split = grouped_split(reversed_groups, fractions=THIRDS, seed=1)
    assert dict(zip(reversed_groups, reversed_split, strict=True)) == by_seed_1


@pytest.mark.parametrize(
    "fractions",
    [
        pytest.param({"train": 0.8, "test": 0.1}, id="sum-below-one"),
        pytest.param({"train": 1.2, "test": -0.2}, id="negative"),
    ],
)
def test_grouped_split_rejects_bad_fractions(fractions: dict[str, float]) -> None:
    with pytest.raises(InputError, match="fractions"):
        grouped_split(["a"], fractions=fractions)


# --- pair_problem -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "chosen", "rejected", "expected"),
    [
        pytest.param(_user("Q"), _assistant("A"), _assistant("B"), None, id="fine"),
        pytest.param(_user(" "), _assistant("A"), _assistant("B"), "empty prompt turn", id="p"),
        pytest.param(
            [*_user("Q"), *_assistant("x")],
            _assistant("A"),
            _assistant("B"),
            "prompt does not end with a user turn",
            id="prompt-ends-with-assistant",
        ),
        pytest.param(_user("Q"), [], _assistant("B"), "missing response", id="missing"),
        pytest.param(
            _user("Q"),
            [*_user("x"), *_assistant("A")],
            _assistant("B"),
            "conversations differ before the final assistant turn",
            id="user-turn-in-answer",
        ),
        pytest.param(_user("Q"), _assistant(""), _assistant("B"), "empty response", id="empty"),
        pytest.param(_user("Q"), _assistant("A "), _assistant("A"), "identical responses", id="="),
    ],
)
def test_pair_problem(
    prompt: list[Message], chosen: list[Message], rejected: list[Message], expected: str | None
) -> None:
    assert pair_problem(prompt, chosen, rejected) == expected


# --- PreferenceDataset --------------------------------------------------------------------


def test_dataset_access_and_drop_summary() -> None:
    dataset = _dataset()
    assert len(dataset) == 3
    assert [row["meta"]["id"] for row in dataset.rows] == ["a", "b", "c"]
    assert dataset["validation"][0]["prompt"] == [{"role": "user", "content": "c"}]
    assert dataset.drop_summary() == {"tie": 2, "empty": 1}
    assert list(dataset.select("train").splits) == ["train"]


def test_dataset_unknown_split_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no split 'dev'"):
        _dataset()["dev"]


def test_to_jsonl_writes_trl_rows_and_reads_back(tmp_path: Path) -> None:
    written = _dataset().to_jsonl(tmp_path)
    assert sorted(written) == ["test", "train", "validation"]
    first = json.loads(written["train"].read_text(encoding="utf-8").splitlines()[0])
    assert first == {
        "prompt": [{"role": "user", "content": "a"}],
        "chosen": [{"role": "assistant", "content": "good"}],
        "rejected": [{"role": "assistant", "content": "bad"}],
        "margin": None,
        "weight": None,
        "meta": {"source": "t", "id": "a", "group": "a"},
    }
    again = load_preferences(tmp_path)
    assert {name: rows for name, rows in again.splits.items()} == dict(_dataset().splits)


def test_to_polars_adds_split_column() -> None:
    frame = _dataset().to_polars()
    assert frame["split"].to_list() == ["train", "train", "validation"]
    assert frame["chosen"][0].to_list() == [{"role": "assistant", "content": "good"}]


def test_to_hf_builds_a_dataset_dict_without_empty_margin() -> None:
    pytest.importorskip("datasets")
    converted = _dataset().to_hf()
    assert {name: len(part) for name, part in converted.items()} == {
        "train": 2,
        "validation": 1,
        "test": 0,
    }
    assert converted["train"].column_names == ["prompt", "chosen", "rejected", "meta"]
    assert converted["test"].column_names == converted["train"].column_names
    assert converted["train"][1]["chosen"] == [{"role": "assistant", "content": "good"}]
    assert "meta" not in _dataset().to_hf(keep_meta=False)["train"].column_names


def test_to_hf_keeps_margin_when_given() -> None:
    pytest.importorskip("datasets")
    row = make_row(
        prompt=_user("q"), chosen=_assistant("a"), rejected=_assistant("b"), meta={}, margin=2.0
    )
    converted = PreferenceDataset(name="m", splits={"train": [row]}).to_hf()
    assert converted["train"]["margin"] == [2.0]
