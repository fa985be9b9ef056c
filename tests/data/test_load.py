"""Tests for the dispatcher :func:`tacitly.data.load_preferences`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tacitly.data import DATASET_NAMES, load_preferences
from tacitly.errors import InputError


@pytest.mark.parametrize("name", ["demo", "DEMO", " demo "])
def test_names_are_case_insensitive(name: str) -> None:
    assert load_preferences(name).name == "demo"


def test_split_keeps_one_split() -> None:
    data = load_preferences("demo", split="validation")
    assert list(data.splits) == ["validation"]
    assert len(data) == 7


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(InputError) as caught:
        load_preferences("ultrafeedback")
    message = str(caught.value)
    assert "unknown preference dataset 'ultrafeedback'" in message
    for name in ("autoj", "demo", "helpsteer2", "hh-rlhf", "ifllm", "oasst1"):
        assert name in message


def test_missing_file_path() -> None:
    with pytest.raises(InputError, match=r"nope\.jsonl: file not found"):
        load_preferences("nope.jsonl")


def test_local_path_and_source_override(tmp_path: Path) -> None:
    file = tmp_path / "mine.jsonl"
    file.write_text(json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"}) + "\n")
    assert load_preferences(file).rows[0]["chosen"][0]["content"] == "b"
    autoj = tmp_path / "autoj.jsonl"
    autoj.write_text(
        json.dumps(
            {"scenario": "s", "label": 1, "prompt": "p", "response 1": "x", "response 2": "y"}
        )
        + "\n"
    )
    assert load_preferences("Auto-J", source=autoj).rows[0]["chosen"][0]["content"] == "y"


def test_absent_shared_data_is_a_clear_error(tmp_path: Path) -> None:
    for name in ("autoj", "hh-rlhf", "ifllm"):
        with pytest.raises(InputError, match=r"not found.*TACITLY_DATA"):
            load_preferences(name, data_dir=tmp_path)


def test_hub_names_map_to_builders() -> None:
    assert DATASET_NAMES["nvidia/helpsteer2"] == "helpsteer2"
    rows = {"prompt": ["q", "q"], "response": ["good", "bad"], "helpfulness": [3, 1]}
    rows |= {name: [2, 2] for name in ("correctness", "coherence", "complexity", "verbosity")}
    data = load_preferences("nvidia/HelpSteer2", source={"train": rows})
    assert data.rows[0]["margin"] == 2.0


def test_hub_source_given_to_local_dataset_is_an_error() -> None:
    with pytest.raises(InputError, match="autoj takes a file path"):
        load_preferences("autoj", source={"train": []})
