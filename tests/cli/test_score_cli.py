"""Tests for ``tacitly score`` with a fake reward put in place of ``reward_from_spec``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import typer
from rich.console import Console

from cli_testing import CliCaller
from tacitly.cli import score as cli_score
from tacitly.cli.score import score_command

root = typer.Typer()


@root.callback()
def _group() -> None:
    """Makes ``score`` a sub-command, as in the real application."""


root.command("score")(score_command)
cli = CliCaller(root, prefix=["score"])


class WordCount:
    """Words in the last response turn."""

    def __init__(self) -> None:
        self.rows = 0

    def score(self, prompts: Sequence[Any], responses: Sequence[Any]) -> np.ndarray:
        self.rows += len(responses)
        return np.array([len(r[-1]["content"].split()) for r in responses], dtype=float)


@pytest.fixture
def fake_reward(monkeypatch: pytest.MonkeyPatch) -> WordCount:
    reward = WordCount()
    specs: list[str] = []

    def build(spec: str) -> WordCount:
        specs.append(spec)
        return reward

    monkeypatch.setattr(cli_score, "reward_from_spec", build)
    monkeypatch.setattr(cli_score, "console", Console(width=120))
    reward.specs = specs  # type: ignore[attr-defined]
    return reward


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    lines = [
        {"id": "a", "prompt": "Hi", "chosen": "hello there friend", "rejected": "go"},
        {"id": "b", "prompt": "Bye", "chosen": "bye", "rejected": "see you soon"},
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_score_writes_parquet_and_prints_a_summary(
    tmp_path: Path, pairs_file: Path, fake_reward: WordCount
) -> None:
    output = tmp_path / "scores.parquet"
    text = cli.output(
        "--reward", "fake", "--input", pairs_file, "--output", output, "--no-progress"
    )
    assert pl.read_parquet(output).rows() == [(1, "a", 3.0, 1.0, 2.0), (2, "b", 1.0, 3.0, -2.0)]
    assert fake_reward.specs == ["fake"]  # type: ignore[attr-defined]
    assert "scored now" in text
    assert "reward_margin mean" in text
    assert "0.0000" in text


def test_score_resumes_by_default_and_restarts_with_no_resume(
    tmp_path: Path, pairs_file: Path, fake_reward: WordCount
) -> None:
    output = tmp_path / "scores.parquet"
    args = ("--reward", "fake", "-i", pairs_file, "-o", output, "--no-progress")
    cli.output(*args)
    cli.output(*args)
    assert fake_reward.rows == 4  # 2 pairs × 2 sides, once
    cli.output(*args, "--no-resume")
    assert fake_reward.rows == 8


def test_score_passes_its_options(
    tmp_path: Path, pairs_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake_score_file(reward: Any, source: Path, output: Path, **options: Any) -> Any:
        seen.update(reward=reward, **options)
        raise SystemExit(0)

    monkeypatch.setattr(cli_score, "score_file", fake_score_file)
    args = ["--reward", "rm:runs/x", "-i", pairs_file, "-o", tmp_path / "s.parquet", "--ray"]
    cli.result(*args, "--batch_size", "5", "--chunk_size", "7", "--actors", "3")
    assert seen == {
        "reward": "rm:runs/x",  # Ray builds the reward inside each actor from its spec
        "batch_size": 5,
        "chunk_size": 7,
        "resume": True,
        "progress": True,
        "use_ray": True,
        "actors": 3,
    }


@pytest.mark.parametrize(
    ("args", "field"),
    [
        pytest.param(["-o", "scores.csv"], "--output", id="not-parquet"),
        pytest.param(["-o", "s.parquet", "--batch_size", "0"], "--batch_size", id="batch-size"),
    ],
)
def test_score_bad_options(
    tmp_path: Path, pairs_file: Path, fake_reward: WordCount, args: list[str], field: str
) -> None:
    arguments = [tmp_path / a if a.endswith((".csv", ".parquet")) else a for a in args]
    error = cli.input_error("--reward", "fake", "-i", pairs_file, *arguments)
    assert error.field == field


def test_score_bad_line_is_an_input_error(tmp_path: Path, fake_reward: WordCount) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "a"}\n', encoding="utf-8")
    error = cli.input_error("--reward", "fake", "-i", source, "-o", tmp_path / "s.parquet")
    assert (error.row, error.field) == (2, "response")


def test_unknown_reward_is_an_input_error(tmp_path: Path, pairs_file: Path) -> None:
    error = cli.input_error("--reward", "bleu", "-i", pairs_file, "-o", tmp_path / "s.parquet")
    assert error.field == "--reward"
