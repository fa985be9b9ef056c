"""``tacitly flr``: the follow-up likelihood reward (FLR), no training needed.

``tacitly flr score`` scores a JSON Lines file (as ``tacitly rm score``); ``tacitly flr eval``
reports pairwise accuracy under RewardBench's rule (a tie counts as wrong), overall and per
subset, plus each aspect's own accuracy; ``tacitly flr finetune`` trains a critic (a model that
plays the user) on a feedback file, which ``--model DIR --layout critic`` then uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from tacitly.cli.rewards import (
    ScoreInputOption,
    ScoreOutputOption,
    evaluation_rows,
    parse_bool,
    read_score_records,
    score_records,
    write_scores,
)
from tacitly.cli.tables import print_accuracy_report
from tacitly.errors import InputError

if TYPE_CHECKING:
    from tacitly.data.schema import PreferenceRow
    from tacitly.rewards.followup import FollowupReward

flr_app = typer.Typer(
    help="Follow-up likelihood reward: score, evaluate, fine-tune a critic.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()

ModelOption = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Causal LM folder or id (a critic too); default SmolLM2."),
]
FollowupsOption = Annotated[
    Path | None, typer.Option("--followups", help="Follow-up set (JSON); default: shipped set.")
]
AspectsOption = Annotated[
    str | None, typer.Option("--aspects", help="Comma-separated aspects to use; default: all.")
]
WeightsOption = Annotated[
    str | None,
    typer.Option("--weights", help="Aspect weights, e.g. relevance=2,correctness=1."),
]
ReductionOption = Annotated[
    str, typer.Option("--reduction", help="mean or sum of a follow-up's token log-probs.")
]
EndOfTurnOption = Annotated[
    str, typer.Option("--include_end_of_turn", help="Also score the end-of-turn token.")
]
CalibrationOption = Annotated[
    str, typer.Option("--calibration", help="none or pmi (against a neutral reply).")
]
LayoutOption = Annotated[
    str, typer.Option("--layout", help="user, or critic for a fine-tuned critic model.")
]
MaxLengthOption = Annotated[
    int | None, typer.Option("--max_length", help="Most tokens; earlier turns are cut first.")
]
BatchOption = Annotated[int, typer.Option("--batch_size", help="Conversations per pass.")]


def _weights(text: str | None) -> dict[str, float] | None:
    """Parse ``name=value,name=value``."""
    if text is None:
        return None
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise InputError(
                f"cannot read {part!r}", field="--weights", expected="aspect=number,…"
            ) from None
    return weights


def build_reward(
    *,
    model: str | None,
    followups: Path | None,
    aspects: str | None,
    weights: str | None,
    reduction: str,
    include_end_of_turn: str,
    calibration: str,
    layout: str,
    max_length: int | None,
    batch_size: int,
) -> FollowupReward:
    """The reward the options describe (the model is loaded here)."""
    from tacitly.rewards.followup import FollowupReward, FollowupRewardConfig

    if batch_size < 1:
        raise InputError(f"is {batch_size}", field="--batch_size", expected="an integer >= 1")
    config = FollowupRewardConfig(
        model_name=model,
        followups=None if followups is None else str(followups),
        aspects=None if aspects is None else tuple(a.strip() for a in aspects.split(",")),
        weights=_weights(weights),
        reduction=reduction,  # type: ignore[arg-type]  # checked by the config
        include_end_of_turn=parse_bool(include_end_of_turn, option="--include_end_of_turn"),
        calibration=calibration,  # type: ignore[arg-type]  # checked by the config
        layout=layout,  # type: ignore[arg-type]  # checked by the config
        max_length=max_length,
        batch_size=batch_size,
    )
    return FollowupReward(config)


@flr_app.command("score")
def score_command(
    input_file: ScoreInputOption,
    output: ScoreOutputOption = None,
    model: ModelOption = None,
    followups: FollowupsOption = None,
    aspects: AspectsOption = None,
    weights: WeightsOption = None,
    reduction: ReductionOption = "mean",
    include_end_of_turn: EndOfTurnOption = "False",
    calibration: CalibrationOption = "none",
    layout: LayoutOption = "user",
    max_length: MaxLengthOption = None,
    batch_size: BatchOption = 8,
) -> None:
    """Score the responses of a JSON Lines file with the follow-up reward."""
    records = read_score_records(input_file)
    reward = build_reward(
        model=model,
        followups=followups,
        aspects=aspects,
        weights=weights,
        reduction=reduction,
        include_end_of_turn=include_end_of_turn,
        calibration=calibration,
        layout=layout,
        max_length=max_length,
        batch_size=batch_size,
    )
    write_scores(score_records(reward, records, batch_size=None), source=input_file, output=output)


@flr_app.command("eval")
def eval_command(
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Dataset name or preference file/folder.")
    ],
    split: Annotated[
        str | None,
        typer.Option("--split", help="train, validation, test or all (default: test / all)."),
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="Meta field naming the subsets.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    max_pairs: Annotated[
        int | None, typer.Option("--max_pairs", help="Evaluate the first N pairs only.")
    ] = None,
    fit_weights: Annotated[
        int,
        typer.Option(
            "--fit_weights",
            help="Fit aspect weights on this many pairs of the dataset's train split first.",
        ),
    ] = 0,
    fit_length: Annotated[
        int,
        typer.Option(
            "--fit_length", help="Fit the length correction on this many train pairs first."
        ),
    ] = 0,
    model: ModelOption = None,
    followups: FollowupsOption = None,
    aspects: AspectsOption = None,
    weights: WeightsOption = None,
    reduction: ReductionOption = "mean",
    include_end_of_turn: EndOfTurnOption = "False",
    calibration: CalibrationOption = "none",
    layout: LayoutOption = "user",
    max_length: MaxLengthOption = None,
    batch_size: BatchOption = 8,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the dataset's split.")] = 42,
) -> None:
    """Pairwise accuracy of the follow-up reward (a tie is wrong), per subset and per aspect."""
    from tacitly.evaluate.pairwise import accuracy_report, row_subsets

    name, wanted, rows = evaluation_rows(dataset, split=split, seed=seed)
    if max_pairs is not None:
        if max_pairs < 1:
            raise InputError(f"is {max_pairs}", field="--max_pairs", expected=">= 1")
        rows = rows[:max_pairs]
    reward = build_reward(
        model=model,
        followups=followups,
        aspects=aspects,
        weights=weights,
        reduction=reduction,
        include_end_of_turn=include_end_of_turn,
        calibration=calibration,
        layout=layout,
        max_length=max_length,
        batch_size=batch_size,
    )
    fitted = _fit(reward, dataset, seed=seed, weights=fit_weights, length=fit_length)
    differences = reward.compare_aspects(rows)
    zeros = [0.0] * len(rows)
    report = accuracy_report(
        differences["reward"].to_numpy(), zeros, subsets=row_subsets(rows, by=by)
    )
    report["aspects"] = {
        aspect: float((differences[aspect].to_numpy() > 0).mean()) for aspect in reward.aspects
    }
    report.update(
        dataset=name,
        split=wanted,
        model=reward.config.model_name or "SmolLM2-135M-Instruct (embedded)",
        config=reward.config.to_dict(),
        fitted=fitted,
    )
    if as_json:
        typer.echo(json.dumps(report))
        return
    print_accuracy_report(report, title=f"{name} ({wanted}) · follow-up reward")
    aspects_text = ", ".join(f"{a} {acc:.3f}" for a, acc in report["aspects"].items())
    console.print(f"per aspect: {aspects_text}", highlight=False)


def _fit(
    reward: FollowupReward, dataset: str, *, seed: int, weights: int, length: int
) -> dict[str, Any]:
    """Fit aspect weights and the length correction on the train split, when asked."""
    if weights < 0 or length < 0:
        raise InputError("must be >= 0", field="--fit_weights / --fit_length")
    if not weights and not length:
        return {}
    _, _, train = evaluation_rows(dataset, split="train", seed=seed)
    fitted: dict[str, Any] = {}
    if length:
        fitted["length_slope"] = reward.fit_length_slope(_first(train, length))
    if weights:
        fitted["weights"] = reward.fit_aspect_weights(_first(train, weights))
    fitted["train_pairs"] = {"weights": min(weights, len(train)), "length": min(length, len(train))}
    return fitted


def _first(rows: list[PreferenceRow], n: int) -> list[PreferenceRow]:
    return rows[:n]


@flr_app.command("finetune")
def finetune_command(
    data: Annotated[
        Path,
        typer.Option(
            "--data", help='FEEDBACK.jsonl: {"conversation": [...], "feedback": "..."} per line.'
        ),
    ],
    output_dir: Annotated[
        Path, typer.Option("--output_dir", "-o", help="Where the critic is saved.")
    ] = Path("runs/critic"),
    model: ModelOption = None,
    epochs: Annotated[float, typer.Option("--epochs", help="Passes over the data.")] = 1.0,
    learning_rate: Annotated[float, typer.Option("--learning_rate")] = 2e-4,
    batch_size: Annotated[int, typer.Option("--batch_size")] = 8,
    max_length: Annotated[int, typer.Option("--max_length")] = 1024,
    lora_r: Annotated[int, typer.Option("--lora_r", help="LoRA rank; 0 trains every weight.")] = 16,
    max_steps: Annotated[int, typer.Option("--max_steps", help="> 0 overrides epochs.")] = -1,
    seed: Annotated[int, typer.Option("--seed")] = 42,
) -> None:
    """Fine-tune a critic (a model playing the user) on feedback, with TRL."""
    from tacitly.rewards.critic import CriticTrainingConfig, finetune_critic

    config = CriticTrainingConfig(
        model_name=model,
        output_dir=str(output_dir),
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        max_length=max_length,
        lora_r=lora_r,
        max_steps=max_steps,
        seed=seed,
    )
    folder = finetune_critic(data, config)
    console.print(
        f"critic saved to {folder}; use it with: tacitly flr eval -m {folder} --layout critic …",
        highlight=False,
    )
