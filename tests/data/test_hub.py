"""Tests for the HelpSteer2 and OASST1 builders (tacitly.data.hub) on tiny hub-schema fixtures.

The fixtures use the hub's column names and types (HelpSteer2: prompt, response and five 0–4
attribute scores; OASST1: the message table with ``rank`` 0 = best). They are passed as
mappings of lists, polars frames, repository-layout folders and ``datasets`` objects, the ways
a local copy reaches the builders; the hub itself is never contacted.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tacitly.data import load_helpsteer2, load_oasst1, load_preferences
from tacitly.errors import InputError

ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


def _helpsteer(prompt: str, response: str, helpfulness: int, **scores: int) -> dict[str, Any]:
    row: dict[str, Any] = {"prompt": prompt, "response": response}
    row |= {name: scores.get(name, 2) for name in ATTRIBUTES}
    row["helpfulness"] = helpfulness
    return row


HELPSTEER_TRAIN = [
    _helpsteer("Name a fruit.", "A chair.", 0, correctness=0),
    _helpsteer("Name a fruit.", "An apple.", 4, correctness=4),
    _helpsteer("Tie?", "Yes.", 3),
    _helpsteer("Tie?", "Also yes.", 3),
    _helpsteer("Alone?", "Just me.", 2),
    _helpsteer("Three?", "ok", 1),
    _helpsteer("Three?", "best", 4),
    _helpsteer("Three?", "second", 3),
    _helpsteer("Hi\n<extra_id_1>Assistant\nHello!\n<extra_id_1>User\nA joke?", "Knock knock.", 3),
    _helpsteer("Hi\n<extra_id_1>Assistant\nHello!\n<extra_id_1>User\nA joke?", "No.", 1),
]
HELPSTEER_VALIDATION = [
    _helpsteer("Capital of France?", "Paris.", 4),
    _helpsteer("Capital of France?", "Lyon.", 1),
]


def test_helpsteer2_pairs_ties_and_singles() -> None:
    data = load_helpsteer2(source={"train": HELPSTEER_TRAIN, "validation": HELPSTEER_VALIDATION})
    by_id = {row["meta"]["id"]: row for row in data}
    assert sorted(by_id) == ["train:1", "train:6", "train:8", "validation:0"]
    assert by_id["train:1"] == {
        "prompt": [{"role": "user", "content": "Name a fruit."}],
        "chosen": [{"role": "assistant", "content": "An apple."}],
        "rejected": [{"role": "assistant", "content": "A chair."}],
        "margin": 4.0,
        "weight": None,
        "meta": {
            "source": "helpsteer2",
            "id": "train:1",
            "group": "Name a fruit.",
            "hub_split": "train",
            "row": 1,
            "chosen_scores": {
                "helpfulness": 4,
                "correctness": 4,
                "coherence": 2,
                "complexity": 2,
                "verbosity": 2,
            },
            "rejected_scores": {
                "helpfulness": 0,
                "correctness": 0,
                "coherence": 2,
                "complexity": 2,
                "verbosity": 2,
            },
        },
    }
    # With three responses, rejected is the second best, not the worst.
    assert (by_id["train:6"]["rejected"][0]["content"], by_id["train:6"]["margin"]) == (
        "second",
        1.0,
    )
    assert by_id["train:8"]["prompt"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "A joke?"},
    ]
    assert data.dropped == (("train:2", "tie"), ("train:4", "single response"))
    # The hub's validation split is our test split.
    assert [row["meta"]["id"] for row in data["test"]] == ["validation:0"]
    assert len(data["train"]) + len(data["validation"]) == 3


def test_helpsteer2_from_repository_folder(tmp_path: Path) -> None:
    for split, rows in (("train", HELPSTEER_TRAIN), ("validation", HELPSTEER_VALIDATION)):
        with gzip.open(tmp_path / f"{split}.jsonl.gz", "wt", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
    # Other files of the repository (e.g. its preference/ folder) are not read.
    (tmp_path / "preference").mkdir()
    (tmp_path / "preference" / "preference.jsonl.gz").write_bytes(b"not gzip")
    from_folder = load_preferences("nvidia/HelpSteer2", source=tmp_path)
    from_lists = load_helpsteer2(
        source={"train": HELPSTEER_TRAIN, "validation": HELPSTEER_VALIDATION}
    )
    assert from_folder.splits == from_lists.splits


def test_helpsteer2_from_datasets_objects(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    hub_like = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(HELPSTEER_TRAIN),
            "validation": datasets.Dataset.from_list(HELPSTEER_VALIDATION),
        }
    )
    expected = load_helpsteer2(source={"train": pl.DataFrame(HELPSTEER_TRAIN)})
    assert load_helpsteer2(source=hub_like)["train"] == expected["train"]
    hub_like.save_to_disk(str(tmp_path / "saved"))
    assert load_helpsteer2(source=tmp_path / "saved")["train"] == expected["train"]


def test_helpsteer2_split_is_deterministic_and_grouped() -> None:
    many = [
        _helpsteer(f"Question {i}?", answer, score)
        for i in range(200)
        for answer, score in (("good", 4), ("bad", 1))
    ]
    first = load_helpsteer2(source={"train": many}, seed=42)
    assert first.splits == load_helpsteer2(source={"train": many}, seed=42).splits
    assert {name: len(rows) for name, rows in first.splits.items()} == {
        "train": 170,
        "validation": 30,
        "test": 0,
    }
    assert first.splits != load_helpsteer2(source={"train": many}, seed=7).splits


@pytest.mark.parametrize(
    ("source", "match"),
    [
        pytest.param(
            {"train": [{"prompt": "x", "response": "y"}]},
            'nvidia/HelpSteer2 train, field "helpfulness": missing column',
            id="missing-column",
        ),
        pytest.param({"test": HELPSTEER_TRAIN}, "split names", id="unknown-split"),
        pytest.param({"train": 42}, "int is not a table", id="not-a-table"),
        pytest.param(
            {"train": [_helpsteer("x", "y", 1) | {"helpfulness": None}]},
            'row 1, field "helpfulness": value missing',
            id="null-score",
        ),
    ],
)
def test_helpsteer2_bad_sources(source: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        load_helpsteer2(source=source)


def test_folder_without_split_files_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no train or validation files"):
        load_helpsteer2(source=tmp_path)


def test_hub_offline_without_cache_fails_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("tacitly.data.hub._cached_snapshot", lambda hub_id: None)
    with pytest.raises(InputError, match="not in the Hugging Face cache and offline=True"):
        load_oasst1(offline=True)


# --- OASST1 -------------------------------------------------------------------------------


def _message(
    message_id: str,
    parent_id: str | None,
    role: str,
    text: str,
    rank: int | None = None,
    *,
    lang: str = "en",
    deleted: bool = False,
    tree: str = "t1",
) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "parent_id": parent_id,
        "user_id": "u",
        "text": text,
        "role": role,
        "lang": lang,
        "review_count": 3,
        "deleted": deleted,
        "rank": rank,
        "synthetic": False,
        "model_name": None,
        "message_tree_id": tree,
        "tree_state": "ready_for_export",
    }


OASST_TRAIN = [
    _message("q1", None, "prompter", "How do magnets work?"),
    _message("a1", "q1", "assistant", "Second best.", 1),
    _message("a2", "q1", "assistant", "Best answer.", 0),
    _message("a3", "q1", "assistant", "Worst answer.", 2),
    _message("a4", "q1", "assistant", "Unranked.", None),
    _message("q2", "a2", "prompter", "Why north?"),
    _message("b1", "q2", "assistant", "Because.", 1),
    _message("b2", "q2", "assistant", "Earth's field.", 0),
    _message("q3", "a2", "prompter", "Single?"),
    _message("c1", "q3", "assistant", "Only reply.", 0),
    _message("q4", None, "prompter", "Wie geht's?", lang="de", tree="t2"),
    _message("d1", "q4", "assistant", "Gut.", 0, lang="de", tree="t2"),
    _message("d2", "q4", "assistant", "Schlecht.", 1, lang="de", tree="t2"),
    _message("q5", "a3", "prompter", "Follow-up under a deleted reply?", deleted=False),
    _message("e1", "q5", "assistant", "A.", 0),
    _message("e2", "q5", "assistant", "B.", 1),
    _message("q6", None, "prompter", "Equal?", tree="t3"),
    _message("f1", "q6", "assistant", "One.", 0, tree="t3"),
    _message("f2", "q6", "assistant", "Two.", 0, tree="t3"),
]


def _oasst_train(**changes: dict[str, Any]) -> list[dict[str, Any]]:
    return [row | changes.get(row["message_id"], {}) for row in OASST_TRAIN]


def test_oasst1_best_and_worst_ranked_replies() -> None:
    data = load_oasst1(source={"train": OASST_TRAIN})
    by_id = {row["meta"]["id"]: row for row in data}
    assert sorted(by_id) == ["q1", "q2", "q5"]
    assert by_id["q1"] == {
        "prompt": [{"role": "user", "content": "How do magnets work?"}],
        "chosen": [{"role": "assistant", "content": "Best answer."}],
        "rejected": [{"role": "assistant", "content": "Worst answer."}],
        "margin": None,
        "weight": None,
        "meta": {
            "source": "oasst1",
            "id": "q1",
            "group": "t1",
            "hub_split": "train",
            "message_tree_id": "t1",
            "prompt_message_id": "q1",
            "chosen_message_id": "a2",
            "rejected_message_id": "a3",
            "chosen_rank": 0,
            "rejected_rank": 2,
            "n_ranked": 3,
        },
    }
    assert by_id["q2"]["prompt"] == [
        {"role": "user", "content": "How do magnets work?"},
        {"role": "assistant", "content": "Best answer."},
        {"role": "user", "content": "Why north?"},
    ]
    assert by_id["q2"]["chosen"][0]["content"] == "Earth's field."
    assert data.drop_summary() == {"fewer than two ranked replies": 1, "equal ranks": 1}
    assert set(data.dropped) == {("q3", "fewer than two ranked replies"), ("q6", "equal ranks")}


def test_oasst1_deleted_ancestor_and_deleted_reply() -> None:
    data = load_oasst1(source={"train": _oasst_train(a3={"deleted": True})})
    by_id = {row["meta"]["id"]: row for row in data}
    # a3 (the worst reply to q1) is deleted: a1 becomes the worst; q5 hangs under a3.
    assert by_id["q1"]["rejected"][0]["content"] == "Second best."
    assert "q5" not in by_id
    assert ("q5", "an earlier turn is deleted or not English") in data.dropped


def test_oasst1_trees_stay_in_one_split_and_validation_is_test() -> None:
    trees = [
        message
        for i in range(60)
        for message in (
            _message(f"q{i}", None, "prompter", f"Question {i}?", tree=f"tree{i}"),
            _message(f"a{i}", f"q{i}", "assistant", "Good.", 0, tree=f"tree{i}"),
            _message(f"b{i}", f"q{i}", "assistant", "Bad.", 1, tree=f"tree{i}"),
            _message(f"r{i}", f"a{i}", "prompter", "More?", tree=f"tree{i}"),
            _message(f"c{i}", f"r{i}", "assistant", "Yes.", 0, tree=f"tree{i}"),
            _message(f"d{i}", f"r{i}", "assistant", "No.", 1, tree=f"tree{i}"),
        )
    ]
    data = load_oasst1(source={"train": trees, "validation": OASST_TRAIN[:4]})
    split_of_tree: dict[str, set[str]] = {}
    for name, rows in data.splits.items():
        for row in rows:
            split_of_tree.setdefault(row["meta"]["message_tree_id"], set()).add(name)
    assert all(len(names) == 1 for names in split_of_tree.values())
    assert {name: len(rows) for name, rows in data.splits.items()} == {
        "train": 102,
        "validation": 18,
        "test": 1,
    }
    assert data["test"][0]["meta"]["hub_split"] == "validation"


def test_oasst1_from_parquet_repository_layout(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    pl.DataFrame(OASST_TRAIN).write_parquet(tmp_path / "data" / "train-00000-of-00001.parquet")
    assert load_preferences("OpenAssistant/oasst1", source=tmp_path).splits == (
        load_oasst1(source={"train": OASST_TRAIN}).splits
    )


def test_oasst1_missing_column() -> None:
    rows = [{k: v for k, v in row.items() if k != "rank"} for row in OASST_TRAIN]
    with pytest.raises(InputError, match='oasst1 train, field "rank": missing column'):
        load_oasst1(source={"train": rows})
