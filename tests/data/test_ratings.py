"""Tests of the Vicuna-bench rating loader (tacitly.data.ratings)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tacitly.data.ratings import extract_judged_pair, load_vicuna_ratings
from tacitly.errors import InputError

RUBRIC = (
    "###Reference Answer (Score 5):\nA perfect answer.\n\n"
    "###Score Rubrics:\n[Is it helpful?]\nScore 1: No.\nScore 5: Yes.\n\n###Feedback: "
)


def judge_prompt(question: str, response: str, *, tail: str = RUBRIC) -> str:
    return (
        "###Task Description:\nAn instruction, a response to evaluate ... are given.\n\n"
        f"###The instruction to evaluate:\n{question}\n\n"
        f"###Response to evaluate:\n{response}\n\n{tail}"
    )


def record(**changes: Any) -> dict[str, Any]:
    base = {
        "idx": 3,
        "response_source": "wizard",
        "category": "fermi",
        "instruction": judge_prompt("How many grains of sand?", "About 7.5e18."),
        "gpt4_score": [3, 4, 4],
        "gpt4_feedback": ["...", "...", "..."],
    }
    return {**base, **changes}


def write(path: Path, records: Any) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def test_row_literal(tmp_path: Path) -> None:
    rows = load_vicuna_ratings(path=write(tmp_path / "r.json", [record()]))
    assert rows == [
        {
            "prompt": [{"role": "user", "content": "How many grains of sand?"}],
            "response": [{"role": "assistant", "content": "About 7.5e18."}],
            "model": "wizard",
            "question_id": 3,
            "category": "fermi",
            "scores": [3, 4, 4],
            "score": pytest.approx(11 / 3),
            "row": 1,
        }
    ]


@pytest.mark.parametrize(
    ("question", "response", "tail", "expected"),
    [
        pytest.param(
            "Write a README.",
            "# Title\n\n###Feedback: is a heading I like\n\nEnd.",
            RUBRIC,
            ("Write a README.", "# Title\n\n###Feedback: is a heading I like\n\nEnd."),
            id="response-quotes-a-heading",
        ),
        pytest.param(
            "Q?",
            "A.",
            "###Score Rubrics:\n[...]\n\n###Feedback: ",
            ("Q?", "A."),
            id="no-reference-answer",
        ),
        pytest.param(
            "  Multi\nline?  ",
            "\n  Two\n\nparagraphs.  \n",
            RUBRIC,
            ("Multi\nline?", "Two\n\nparagraphs."),
            id="whitespace-trimmed",
        ),
    ],
)
def test_extraction(question: str, response: str, tail: str, expected: tuple[str, str]) -> None:
    assert extract_judged_pair(judge_prompt(question, response, tail=tail)) == expected


@pytest.mark.parametrize(
    "instruction",
    [
        pytest.param("###Response to evaluate:\nA.\n\n###Feedback: ", id="no-question-heading"),
        pytest.param("###The instruction to evaluate:\nQ?\n\n###Feedback: ", id="no-response"),
        pytest.param(judge_prompt("Q?", "A.", tail=""), id="nothing-after-response"),
        pytest.param(judge_prompt("Q?", "   "), id="empty-response"),
    ],
)
def test_extraction_failures(instruction: str) -> None:
    assert extract_judged_pair(instruction) is None


@pytest.mark.parametrize(
    ("changes", "field", "named"),
    [
        pytest.param({"instruction": "Rate this."}, "instruction", "idx=3", id="no-headings"),
        pytest.param({"instruction": None}, "instruction", "idx=3", id="no-prompt"),
        pytest.param({"gpt4_score": [3, 6]}, "gpt4_score", "idx=3", id="score-out-of-range"),
        pytest.param({"gpt4_score": []}, "gpt4_score", "idx=3", id="no-scores"),
        pytest.param({"gpt4_score": [4.5]}, "gpt4_score", "idx=3", id="float-score"),
    ],
)
def test_bad_records_are_named(
    tmp_path: Path, changes: dict[str, Any], field: str, named: str
) -> None:
    file = write(tmp_path / "r.json", [record(idx=1), record(**changes)])
    with pytest.raises(InputError, match=named) as error:
        load_vicuna_ratings(path=file)
    assert (error.value.source, error.value.row, error.value.field) == (str(file), 2, field)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("{not json", "not JSON", id="not-json"),
        pytest.param('{"idx": 1}', "not a JSON list", id="not-a-list"),
        pytest.param('["text"]', "not a JSON object", id="not-an-object"),
    ],
)
def test_bad_files(tmp_path: Path, content: str, message: str) -> None:
    file = tmp_path / "r.json"
    file.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        load_vicuna_ratings(path=file)


def test_missing_file_names_the_expected_place(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"vicuna_gpt4_rubric_scores\.json") as error:
        load_vicuna_ratings(data_dir=tmp_path)
    assert error.value.source == str(tmp_path / "preferences/vicuna_gpt4_rubric_scores.json")


def test_shared_copy(shared_data: Path) -> None:
    rows = load_vicuna_ratings(data_dir=shared_data)
    assert len(rows) == 320
    assert Counter(row["model"] for row in rows) == {
        "vicuna": 80,
        "chat_gpt": 80,
        "wizard": 80,
        "llama-2-chat": 80,
    }
    questions: dict[int | None, set[str]] = {}
    for row in rows:
        questions.setdefault(row["question_id"], set()).add(row["prompt"][0]["content"])
        assert "###" not in row["response"][0]["content"]
        assert len(row["scores"]) == 3
    assert len(questions) == 80
    assert all(len(texts) == 1 for texts in questions.values())  # one question, four answers
    first = rows[0]
    assert first["prompt"][0]["content"] == "How can I improve my time management skills?"
    assert first["response"][0]["content"].startswith("Improving your time management skills")
    assert first["response"][0]["content"].endswith("become more productive and efficient.")
    assert (first["model"], first["scores"], first["score"]) == ("vicuna", [5, 5, 5], 5.0)
    # the scores seen on the shared copy: 960 ratings, mostly 4s and 5s
    assert Counter(s for row in rows for s in row["scores"]) == {
        4: 489,
        5: 338,
        3: 80,
        2: 41,
        1: 12,
    }
