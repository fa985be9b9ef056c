"""Tests for ``tacitly rm train``, ``rm score`` and ``rm eval`` on a tiny random Llama."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import typer
from rich.console import Console

from cli_testing import CliCaller
from tacitly.cli import rewards as cli_rewards
from tacitly.cli.rewards import TrainPlan, parse_bool, rm_app
from tacitly.data import load_preferences
from tiny_models import save_tiny_chat_lm

REFERENCE_COMMAND = shlex.split(
    "-d nvidia/HelpSteer2 -m mistralai/Mistral-7B-v0.3 --concat True --use_softprompt True "
    "--learning_rate 5e-5 --logging_steps 64 --lr_scheduler_type cosine_with_min_lr "
    "--min_lr_ratio 0.7 --batch_size 8 --fp_dropout 0.1,0.3 -fmv 1 "
    "--features_used 0,1,0,1,0 --seed 44"
)
QUICK = shlex.split(
    "--max_train_pairs 16 --epochs 1 --batch_size 4 --logging_steps 2 --max_length 128"
)

root = typer.Typer()
root.add_typer(rm_app, name="rm")
cli = CliCaller(root, prefix=["rm"])


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_rewards, "console", Console(width=120))


invoke = cli.result
input_error = cli.input_error


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama (hidden 32) with a byte-level BPE tokenizer (trained on the demo texts)
    and a ChatML template."""
    texts = [m["content"] for row in load_preferences("demo") for side in row.values()
             if isinstance(side, list) for m in side]  # fmt: skip
    folder = tmp_path_factory.mktemp("tiny-llama")
    return save_tiny_chat_lm(folder, texts=texts + ["system user assistant"] * 4, vocab_size=1200)


@pytest.fixture(scope="module")
def trained_run(tiny_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``rm train`` (GazeConcat, standardised, two measures) on 16 demo pairs; its run folder."""
    run = tmp_path_factory.mktemp("rm-run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TACITLY_CACHE", str(tmp_path_factory.mktemp("cache")))
        patch.setattr(cli_rewards, "console", Console(width=120))
        result = invoke(
            "train", "-m", tiny_lm, *QUICK, "--features_used", "0,1,0,1,0",
            "--output_dir", run, "--seed", "3",
        )  # fmt: skip
        run.joinpath("train-output.txt").write_text(result.stdout)
        yield run


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TACITLY_CACHE", str(tmp_path / "cache"))


# ------------------------------------------------------------------------------------------
# rm train: parsing


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[TrainPlan]:
    """Replace the heavy part of ``rm train`` by a recorder of what it would have run."""
    plans: list[TrainPlan] = []
    monkeypatch.setattr(cli_rewards, "run_training", plans.append)
    return plans


def test_the_reference_command_parses_into_its_meaning(captured: list[TrainPlan]) -> None:
    invoke("train", *REFERENCE_COMMAND)
    (plan,) = captured
    model, training = plan.model_config, plan.training_config
    assert plan.dataset == "nvidia/HelpSteer2"
    assert model.model_name == "mistralai/Mistral-7B-v0.3"
    assert model.mode == "concat"
    assert model.fp_dropout == (0.1, 0.3)
    assert model.predictor_version == 1
    assert model.features_used == (0, 1, 0, 1, 0)
    assert model.standardise is True
    assert training.learning_rate == 5e-5
    assert training.logging_steps == 64
    assert training.lr_scheduler_type == "cosine_with_min_lr"
    assert training.min_lr_ratio == 0.7
    assert training.batch_size == 8
    assert training.seed == 44
    assert training.output_dir == str(Path("runs/rm/nvidia-helpsteer2-concat-seed44"))


@pytest.mark.parametrize(
    ("flags", "mode"),
    [
        pytest.param(["--concat", "True", "--use_softprompt", "True"], "concat", id="concat"),
        pytest.param(["--concat", "False", "--use_softprompt", "true"], "add", id="add"),
        pytest.param(["--concat", "TRUE", "--use_softprompt", "False"], "baseline", id="baseline"),
        pytest.param([], "concat", id="default"),
    ],
)
def test_reference_flags_name_the_mode(
    captured: list[TrainPlan], flags: list[str], mode: str
) -> None:
    invoke("train", *flags)
    assert captured[0].model_config.mode == mode


def test_the_other_options_reach_the_configs(captured: list[TrainPlan]) -> None:
    invoke(
        "train", "-fmv", "2", "--max_length", "256", "--epochs", "3", "--output_dir", "out",
        "--lora_r", "4", "--lora_alpha", "16", "--lora_dropout", "0.05", "--warmup_ratio", "0.1",
        "--weight_decay", "0.01", "--gradient_accumulation_steps", "2", "--max_steps", "7",
        "--features_scope", "response", "--standardise", "False", "--max_train_pairs", "5",
        "--resume", "--projector_learning_rate", "1e-3", "--length_balance",
        "--group_by_length", "False", "--inject_layer", "20", "--share_prompt", "False",
    )  # fmt: skip
    plan = captured[0]
    model, training = plan.model_config, plan.training_config
    assert (model.predictor_version, model.max_length, model.features_scope) == (
        2,
        256,
        "response",
    )
    assert (model.lora_r, model.lora_alpha, model.lora_dropout, model.standardise) == (
        4,
        16,
        0.05,
        False,
    )
    assert (training.epochs, training.output_dir, training.max_steps) == (3, "out", 7)
    assert (training.warmup_ratio, training.weight_decay) == (0.1, 0.01)
    assert (training.gradient_accumulation_steps, training.resume) == (2, True)
    assert plan.max_train_pairs == 5
    assert (training.new_modules_learning_rate, training.length_balance) == (1e-3, True)
    assert training.group_by_length is False and model.inject_layer == 20
    assert model.share_prompt is False


@pytest.mark.parametrize(
    ("args", "field"),
    [
        pytest.param(["--features_used", "1,1,1"], "features_used", id="features-length"),
        pytest.param(["--features_used", "0,2,0,1,0"], "features_used", id="features-not-0-1"),
        pytest.param(["--concat", "yes please"], "--concat", id="bad-boolean"),
        pytest.param(["--standardise", "maybe"], "--standardise", id="bad-standardise"),
        pytest.param(["--fp_dropout", "0.1"], "fp_dropout", id="one-dropout"),
        pytest.param(["-fmv", "3"], "predictor_version", id="unknown-predictor"),
        pytest.param(["--features_scope", "prompt"], "features_scope", id="bad-scope"),
        pytest.param(["--lr_scheduler_type", "cyclic"], "lr_scheduler_type", id="bad-schedule"),
        pytest.param(["--max_train_pairs", "0"], "--max_train_pairs", id="no-pairs"),
    ],
)
def test_bad_train_options_are_input_errors(
    captured: list[TrainPlan], args: list[str], field: str
) -> None:
    assert input_error("train", *args).field == field
    assert captured == []


def test_an_unknown_dataset_name_is_an_input_error(tiny_lm: Path) -> None:
    error = input_error("train", "-d", "no-such-dataset", "-m", tiny_lm)
    assert "unknown preference dataset" in str(error)
    assert "demo" in str(error.expected)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("True", True, id="True"),
        pytest.param("false", False, id="false"),
        pytest.param(" TRUE ", True, id="spaces-upper"),
        pytest.param("0", False, id="zero"),
    ],
)
def test_parse_bool(text: str, value: bool) -> None:
    assert parse_bool(text, option="--x") is value


# ------------------------------------------------------------------------------------------
# rm train: end to end


def test_train_writes_model_metrics_and_curve_and_prints_a_summary(trained_run: Path) -> None:
    output = (trained_run / "train-output.txt").read_text()
    for label in ("validation accuracy", "test accuracy", "train time", "pairs/s", "metrics"):
        assert label in output
    assert "16 train / 7 validation / 8 test pairs · mode concat" in output
    assert (trained_run / "best" / "config.json").is_file()
    assert (trained_run / "training_curve.png").is_file()
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["n_train"] == 16 and metrics["completed"] is True
    assert metrics["total_steps"] == 4  # 16 pairs, 4 a batch, 1 epoch
    assert metrics["dataset"]["name"] == "demo"
    assert metrics["model_config"]["features_used"] == [0, 1, 0, 1, 0]
    assert metrics["config"]["seed"] == 3
    saved = json.loads((trained_run / "best" / "config.json").read_text())
    assert saved["mode"] == "concat"


def test_train_standardises_the_gaze_features(trained_run: Path) -> None:
    from safetensors.torch import load_file

    weights = load_file(str(trained_run / "best" / "model.safetensors"))
    assert bool(weights["feature_scaling_fitted"])
    assert not torch.equal(weights["feature_std"], torch.ones(5))


def test_train_refuses_an_earlier_run_without_resume(trained_run: Path, tiny_lm: Path) -> None:
    error = input_error("train", "-m", tiny_lm, *QUICK, "--output_dir", trained_run)
    assert error.field == "output_dir"


# ------------------------------------------------------------------------------------------
# rm eval


def test_eval_json_has_the_documented_keys_first(trained_run: Path, cache: None) -> None:
    result = invoke("eval", "--model", trained_run, "--dataset", "demo", "--json")
    report = json.loads(result.stdout)
    assert list(report)[:3] == ["accuracy", "n", "subsets"]
    assert report["n"] == 8  # the demo's test split
    assert report["subsets"] == {"demo": report["accuracy"]}
    assert report["subset_n"] == {"demo": 8}
    lower, upper = report["ci95"]
    assert 0.0 <= lower <= report["accuracy"] <= upper <= 1.0
    assert report["mode"] == "concat" and report["split"] == "test"


def test_eval_of_a_file_reads_every_row_by_subset(
    trained_run: Path, cache: None, tmp_path: Path
) -> None:
    rows = load_preferences("demo", split="test").rows[:5]
    source = tmp_path / "pairs.jsonl"
    lines = [
        {"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"],
         "meta": {"subset": "odd" if i % 2 else "even"}}
        for i, r in enumerate(rows)
    ]  # fmt: skip
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = json.loads(invoke("eval", "-m", trained_run / "best", "-d", source, "--json").stdout)
    assert report["n"] == 5 and report["split"] == "all"
    assert report["subset_n"] == {"even": 3, "odd": 2}
    weighted = sum(report["subsets"][k] * n for k, n in report["subset_n"].items()) / 5
    assert report["accuracy"] == pytest.approx(weighted)


def test_eval_prints_a_table(trained_run: Path, cache: None) -> None:
    output = invoke("eval", "--model", trained_run, "--dataset", "demo").stdout
    assert "overall" in output and "a tie counts as wrong" in output


@pytest.mark.parametrize(
    ("args", "field"),
    [
        pytest.param(["--mode", "add"], "mode", id="checkpoint-of-another-mode"),
        pytest.param(["--mode", "gazeplus"], "--mode", id="unknown-mode"),
        pytest.param(["--split", "dev"], "--split", id="unknown-split"),
    ],
)
def test_bad_eval_options_are_input_errors(
    trained_run: Path, cache: None, args: list[str], field: str
) -> None:
    error = input_error("eval", "--model", trained_run, "--dataset", "demo", *args)
    assert error.field == field


def test_eval_of_a_missing_or_empty_model_folder_is_an_input_error(tmp_path: Path) -> None:
    assert "no such model folder" in str(
        input_error("eval", "--model", tmp_path / "nope", "--dataset", "demo")
    )
    assert "no saved reward model here" in str(
        input_error("eval", "--model", tmp_path, "--dataset", "demo")
    )


# ------------------------------------------------------------------------------------------
# rm score


def test_score_responses_to_jsonl_matches_the_model(
    trained_run: Path, cache: None, tmp_path: Path
) -> None:
    from tacitly.rewards.gaze import GazeRewardModel

    source = tmp_path / "responses.jsonl"
    chat = [{"role": "user", "content": "What is 7 times 8?"}]
    lines = [
        {"id": "a", "prompt": "What is 7 times 8?", "response": "56."},
        {"prompt": chat, "response": [{"role": "assistant", "content": "It is 54."}]},
    ]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    target = tmp_path / "scores.jsonl"
    invoke("score", "--model", trained_run, "--input", source, "--output", target)
    scored = [json.loads(line) for line in target.read_text().splitlines()]
    assert [line["id"] for line in scored] == ["a", 2]
    model = GazeRewardModel.from_pretrained(trained_run / "best")
    expected = model.score([chat, chat], ["56.", "It is 54."])
    assert [line["reward"] for line in scored] == pytest.approx(expected.tolist(), abs=1e-5)


def test_score_preference_rows_gives_both_sides(
    trained_run: Path, cache: None, tmp_path: Path
) -> None:
    source = tmp_path / "pairs.jsonl"
    line = {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Seven."}
    source.write_text(json.dumps(line) + "\n")
    output = invoke("score", "-m", trained_run, "-i", source).stdout
    assert "chosen_reward" in output and "reward_margin" in output


@pytest.mark.parametrize(
    ("line", "field"),
    [
        pytest.param({"prompt": "Hi"}, "response", id="no-response"),
        pytest.param({"prompt": "Hi", "response": " "}, "response", id="empty-response"),
        pytest.param({"prompt": "Hi", "chosen": "Hello"}, "rejected", id="one-side"),
        pytest.param({"response": "Hello"}, "prompt", id="no-prompt"),
        pytest.param({"prompt": "Hi", "response": [{"role": 1}]}, "response[0]", id="bad-msg"),
    ],
)
def test_bad_score_lines_are_input_errors(
    trained_run: Path, tmp_path: Path, line: dict[str, Any], field: str
) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text(json.dumps({"prompt": "Ok", "response": "Fine."}) + "\n" + json.dumps(line))
    error = input_error("score", "-m", trained_run, "-i", source)
    assert (error.row, error.field) == (2, field)
