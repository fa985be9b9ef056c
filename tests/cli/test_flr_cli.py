"""Tests for ``tacitly flr score``, ``flr eval`` and ``flr finetune`` on a tiny random Llama."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from rich.console import Console

from cli_testing import CliCaller
from tacitly.cli import followup as cli_followup
from tacitly.cli import tables as cli_tables
from tacitly.cli.followup import flr_app
from tacitly.data import load_preferences
from tacitly.rewards.followup import FollowupReward, FollowupRewardConfig
from tiny_models import save_tiny_chat_lm

root = typer.Typer()
root.add_typer(flr_app, name="flr")
cli = CliCaller(root, prefix=["flr"])
invoke = cli.result
input_error = cli.input_error

# Two aspects keep each call small; the follow-ups are the shipped ones.
SMALL = ["--aspects", "relevance,correctness", "--batch_size", "4"]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_followup, "console", Console(width=120))
    monkeypatch.setattr(cli_tables, "console", Console(width=120))


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [m["content"] for row in load_preferences("demo") for side in row.values()
             if isinstance(side, list) for m in side]  # fmt: skip
    folder = tmp_path_factory.mktemp("tiny-llama")
    return save_tiny_chat_lm(folder, texts=texts + ["system user assistant"] * 4, vocab_size=1200)


def _reward(tiny_lm: Path) -> FollowupReward:
    config = FollowupRewardConfig(
        model_name=str(tiny_lm), aspects=("relevance", "correctness"), batch_size=4
    )
    return FollowupReward(config)


def test_eval_json_matches_the_reward_and_has_the_documented_keys(tiny_lm: Path) -> None:
    result = invoke("eval", "-m", tiny_lm, "-d", "demo", "--json", "--max_pairs", "6", *SMALL)
    report = json.loads(result.stdout)
    assert list(report)[:3] == ["accuracy", "n", "subsets"]
    rows = load_preferences("demo", split="test").rows[:6]
    differences = _reward(tiny_lm).compare_aspects(rows)
    assert report["n"] == 6
    assert report["accuracy"] == pytest.approx(float((differences["reward"].to_numpy() > 0).mean()))
    assert report["aspects"]["relevance"] == pytest.approx(
        float((differences["relevance"].to_numpy() > 0).mean())
    )
    assert report["split"] == "test"


def test_eval_prints_a_table_with_the_aspects(tiny_lm: Path) -> None:
    output = invoke("eval", "-m", tiny_lm, "-d", "demo", "--max_pairs", "2", *SMALL).stdout
    assert "overall" in output and "per aspect: relevance" in output


def test_eval_fits_weights_on_the_train_split(tiny_lm: Path) -> None:
    result = invoke(
        "eval", "-m", tiny_lm, "-d", "demo", "--json", "--max_pairs", "2",
        "--fit_weights", "4", *SMALL,
    )  # fmt: skip
    report = json.loads(result.stdout)
    weights = report["fitted"]["weights"]
    assert set(weights) == {"relevance", "correctness"}
    assert sum(weights.values()) == pytest.approx(1.0)
    assert report["config"]["weights"] == weights


def test_score_writes_one_reward_per_line(tiny_lm: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    lines = [{"id": "a", "prompt": "Name a colour.", "response": "Blue."},
             {"id": "b", "prompt": "Name a colour.", "response": "I like trains."}]  # fmt: skip
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    output = tmp_path / "out.jsonl"
    invoke("score", "-m", tiny_lm, "-i", source, "-o", output, *SMALL)
    scored = [json.loads(line) for line in output.read_text().splitlines()]
    expected = _reward(tiny_lm).score(["Name a colour."] * 2, ["Blue.", "I like trains."])
    assert [s["id"] for s in scored] == ["a", "b"]
    np.testing.assert_allclose([s["reward"] for s in scored], expected, atol=1e-6)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        pytest.param(["--weights", "relevance:2"], "--weights", id="bad-weights"),
        pytest.param(["--include_end_of_turn", "maybe"], "--include_end_of_turn", id="bad-bool"),
        pytest.param(["--batch_size", "0"], "--batch_size", id="no-batch"),
        pytest.param(["--split", "dev"], "--split", id="bad-split"),
        pytest.param(["--max_pairs", "0"], "--max_pairs", id="no-pairs"),
    ],
)
def test_bad_eval_options_are_input_errors(tiny_lm: Path, args: list[str], field: str) -> None:
    error = input_error("eval", "-m", tiny_lm, "-d", "demo", *args)
    assert error.field == field


def test_finetune_saves_a_critic_the_reward_can_load(tiny_lm: Path, tmp_path: Path) -> None:
    pytest.importorskip("trl")
    data = tmp_path / "feedback.jsonl"
    record = {"prompt": "Name a colour.", "response": "Blue.", "feedback": "Thanks, that helps."}
    data.write_text(json.dumps(record) + "\n" + json.dumps(record) + "\n")
    folder = tmp_path / "critic"
    invoke("finetune", "--data", data, "-o", folder, "-m", tiny_lm, "--max_steps", "2",
           "--lora_r", "4", "--batch_size", "2", "--max_length", "128")  # fmt: skip
    assert (folder / "critic.json").is_file()
    result = invoke("eval", "-m", folder, "--layout", "critic", "-d", "demo", "--json",
                    "--max_pairs", "2", *SMALL)  # fmt: skip
    assert json.loads(result.stdout)["n"] == 2
