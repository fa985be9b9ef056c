"""Tests for reading the user's own preference files (tacitly.data.files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tacitly.data import read_preference_file
from tacitly.errors import InputError

USER = {"role": "user", "content": "Hi?"}
GOOD = {"role": "assistant", "content": "Hello!"}
BAD = {"role": "assistant", "content": "Go away."}


def _jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _only_row(path: Path) -> dict[str, Any]:
    rows = read_preference_file(path).rows
    assert len(rows) == 1
    return dict(rows[0])


@pytest.mark.parametrize(
    "record",
    [
        pytest.param({"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away."}, id="strings"),
        pytest.param({"prompt": [USER], "chosen": [GOOD], "rejected": [BAD]}, id="conversations"),
        pytest.param({"chosen": [USER, GOOD], "rejected": [USER, BAD]}, id="implicit-prompt"),
        pytest.param(
            {"prompt": "Hi?", "response_a": "Hello!", "response_b": "Go away.", "label": "a"},
            id="label-a",
        ),
        pytest.param(
            {"prompt": "Hi?", "response_a": "Go away.", "response_b": "Hello!", "label": "B"},
            id="label-B",
        ),
        pytest.param(
            {"prompt": "Hi?", "response_a": "Hello!", "response_b": "Go away.", "label": 0},
            id="label-0",
        ),
        pytest.param(
            {"prompt": "Hi?", "response_a": "Go away.", "response_b": "Hello!", "label": 1.0},
            id="label-1.0",
        ),
    ],
)
def test_row_forms_give_the_same_pair(tmp_path: Path, record: dict[str, Any]) -> None:
    row = _only_row(_jsonl(tmp_path / "pairs.jsonl", [record]))
    assert (row["prompt"], row["chosen"], row["rejected"]) == ([USER], [GOOD], [BAD])
    assert row["meta"]["source"] == "pairs.jsonl"
    assert row["meta"]["id"] == "1"


def test_optional_fields_and_extra_columns(tmp_path: Path) -> None:
    record = {
        "id": "p-7",
        "prompt": "Hi?",
        "chosen": "Hello!",
        "rejected": "Go away.",
        "margin": 1.5,
        "weight": 0.25,
        "annotator": "ann-3",
        "meta": {"batch": 2},
    }
    row = _only_row(_jsonl(tmp_path / "pairs.jsonl", [record]))
    assert row == {
        "prompt": [USER],
        "chosen": [GOOD],
        "rejected": [BAD],
        "margin": 1.5,
        "weight": 0.25,
        "meta": {
            "source": "pairs.jsonl",
            "id": "p-7",
            "group": '[{"role": "user", "content": "Hi?"}]',
            "annotator": "ann-3",
            "batch": 2,
        },
    }


def test_csv_parquet_and_json_read_alike(tmp_path: Path) -> None:
    records = [
        {"prompt": f"Q{i}?", "response_a": f"good {i}", "response_b": f"bad {i}", "label": "a"}
        for i in range(5)
    ]
    pl.DataFrame(records).write_csv(tmp_path / "pairs.csv")
    pl.DataFrame(records).write_parquet(tmp_path / "pairs.parquet")
    (tmp_path / "pairs.json").write_text(json.dumps(records), encoding="utf-8")
    read = [read_preference_file(tmp_path / f"pairs.{ext}") for ext in ("csv", "parquet", "json")]
    assert [row["chosen"][0]["content"] for row in read[0].rows] == [
        row["chosen"][0]["content"] for row in read[1].rows
    ]
    assert read[0].splits.keys() == read[2].splits.keys()
    assert sorted(r["meta"]["id"] for r in read[2].rows) == ["1", "2", "3", "4", "5"]
    assert [len(rows) for rows in read[0].splits.values()] == [
        len(rows) for rows in read[1].splits.values()
    ]


def test_ties_and_identical_answers_are_dropped(tmp_path: Path) -> None:
    records = [
        {"prompt": "a", "response_a": "x", "response_b": "y", "label": "tie"},
        {"prompt": "b", "chosen": "same", "rejected": "same"},
        {"prompt": "c", "chosen": "x", "rejected": "y"},
    ]
    data = read_preference_file(_jsonl(tmp_path / "pairs.jsonl", records))
    assert len(data) == 1
    assert data.dropped == (("1", "tie"), ("2", "identical responses"))


def test_split_column_is_honoured(tmp_path: Path) -> None:
    records = [
        {"prompt": "a", "chosen": "x", "rejected": "y", "split": "test"},
        {"prompt": "b", "chosen": "x", "rejected": "y", "split": "train"},
    ]
    data = read_preference_file(_jsonl(tmp_path / "pairs.jsonl", records))
    assert [row["prompt"][0]["content"] for row in data["test"]] == ["a"]
    assert [row["prompt"][0]["content"] for row in data["train"]] == ["b"]
    assert data["validation"] == []
    assert "split" not in data["test"][0]["meta"]


def test_split_without_column_is_grouped_by_prompt(tmp_path: Path) -> None:
    records = [
        {"prompt": f"Q{i % 20}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(100)
    ]
    data = read_preference_file(_jsonl(tmp_path / "pairs.jsonl", records), seed=3)
    split_of_prompt: dict[str, set[str]] = {}
    for name, rows in data.splits.items():
        for row in rows:
            split_of_prompt.setdefault(row["prompt"][0]["content"], set()).add(name)
    assert all(len(names) == 1 for names in split_of_prompt.values())
    assert {name: len(rows) for name, rows in data.splits.items()} == {
        "train": 80,
        "validation": 10,
        "test": 10,
    }


def test_ifllm_csv_is_recognised(tmp_path: Path) -> None:
    file = tmp_path / "log.csv"
    file.write_text(
        "query_ID,user_id,task_id,user_query,llm_response_1,llm_response_2,preference,"
        "query_timestamp\n1,w1,4,Why?,Because.,Dunno.,2.0,2025-04-23 22:32:38\n",
        encoding="utf-8",
    )
    assert _only_row(file)["meta"]["source"] == "ifllm"


@pytest.mark.parametrize(
    ("record", "match"),
    [
        pytest.param({"prompt": "Hi", "chosen": "x"}, 'field "rejected": field missing', id="side"),
        pytest.param(
            {"prompt": "Hi", "chosen": " ", "rejected": "y"}, 'field "chosen": empty text', id="e"
        ),
        pytest.param(
            {"prompt": "", "chosen": "x", "rejected": "y"}, 'field "prompt": empty text', id="ep"
        ),
        pytest.param(
            {"chosen": "x", "rejected": "y"}, 'field "prompt": field missing', id="no-prompt"
        ),
        pytest.param(
            {"prompt": "Hi", "response_a": "x", "response_b": "y", "label": "c"},
            'field "label": label',
            id="bad-label",
        ),
        pytest.param(
            {"prompt": "Hi", "response_a": "x", "response_b": "y"},
            'field "label": field missing',
            id="missing-label",
        ),
        pytest.param(
            {"prompt": "Hi", "response_a": "x", "response_b": "y", "label": True},
            'field "label"',
            id="bool-label",
        ),
        pytest.param(
            {"prompt": [{"role": "bot", "content": "x"}], "chosen": "x", "rejected": "y"},
            r'field "prompt\[0\]": role',
            id="bad-role",
        ),
        pytest.param(
            {"prompt": [GOOD], "chosen": "x", "rejected": "y"},
            'field "prompt": the prompt does not end with a user turn',
            id="prompt-ends-with-assistant",
        ),
        pytest.param(
            {"prompt": "Hi", "chosen": [USER], "rejected": "y"},
            'field "chosen": an answer turn is not',
            id="user-turn-in-answer",
        ),
        pytest.param(
            {"prompt": "Hi", "chosen": "x", "rejected": "y", "margin": "lots"},
            "field \"margin\": 'lots' is not a number",
            id="margin",
        ),
        pytest.param(
            {"prompt": "Hi", "chosen": "x", "rejected": "y", "weight": -1},
            'field "weight": negative weight',
            id="weight",
        ),
        pytest.param(
            {"prompt": "Hi", "chosen": "x", "rejected": "y", "split": "dev"},
            "field \"split\": split 'dev'",
            id="split",
        ),
        pytest.param(
            {"prompt": "Hi", "chosen": "x", "rejected": "y", "meta": "note"},
            'field "meta": str value',
            id="meta",
        ),
        pytest.param(
            {"chosen": [USER, GOOD], "rejected": [{"role": "user", "content": "Yo"}, BAD]},
            'field "prompt": chosen and rejected share no opening turns',
            id="no-shared-prompt",
        ),
    ],
)
def test_bad_rows_name_file_row_and_field(
    tmp_path: Path, record: dict[str, Any], match: str
) -> None:
    good = {"prompt": "ok", "chosen": "x", "rejected": "y"}
    file = _jsonl(tmp_path / "pairs.jsonl", [good, record])
    with pytest.raises(InputError, match=f"pairs.jsonl, row 2, {match}"):
        read_preference_file(file)


def test_split_on_some_rows_only_is_an_error(tmp_path: Path) -> None:
    records = [
        {"prompt": "a", "chosen": "x", "rejected": "y", "split": "train"},
        {"prompt": "b", "chosen": "x", "rejected": "y"},
    ]
    with pytest.raises(InputError, match='row 2, field "split": split missing'):
        read_preference_file(_jsonl(tmp_path / "pairs.jsonl", records))


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        pytest.param("pairs.jsonl", "[1, 2]\n", "row 1: not a JSON object", id="not-object"),
        pytest.param("pairs.json", '{"a": 1}', "not a JSON list", id="json-not-list"),
        pytest.param("pairs.txt", "x", "unknown file type", id="suffix"),
    ],
)
def test_bad_files(tmp_path: Path, name: str, content: str, match: str) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=match):
        read_preference_file(tmp_path / name)


def test_missing_file_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        read_preference_file(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="no split files found"):
        read_preference_file(tmp_path)
