"""Tests for the embedded pipeline-demo preference set (tacitly.data.demo)."""

from __future__ import annotations

from collections import Counter

from tacitly.data import load_demo


def test_demo_size_splits_and_labels() -> None:
    demo = load_demo()
    assert len(demo) == 76
    assert {name: len(rows) for name, rows in demo.splits.items()} == {
        "train": 61,
        "validation": 7,
        "test": 8,
    }
    assert all(row["meta"]["pipeline_demo"] is True for row in demo)
    assert all(row["meta"]["source"] == "demo" for row in demo)
    assert "PIPELINE DEMO" in demo.description
    assert load_demo().splits == demo.splits
    assert load_demo(seed=1).splits != demo.splits


def test_demo_rows_are_well_formed_and_unique() -> None:
    rows = load_demo().rows
    assert len({row["meta"]["id"] for row in rows}) == len(rows)
    assert len({row["meta"]["group"] for row in rows}) == len(rows)
    for row in rows:
        assert row["prompt"][-1]["role"] == "user"
        assert [turn["role"] for turn in row["chosen"] + row["rejected"]] == ["assistant"] * 2
        assert row["chosen"][0]["content"] != row["rejected"][0]["content"]
    assert Counter(len(row["prompt"]) for row in rows) == {1: 70, 3: 6}


def test_demo_length_does_not_give_the_label_away() -> None:
    rows = load_demo().rows
    chosen_longer = sum(
        len(row["chosen"][0]["content"]) > len(row["rejected"][0]["content"]) for row in rows
    )
    assert chosen_longer == 33  # 43% of 76: neither "longer wins" nor "shorter wins" works
