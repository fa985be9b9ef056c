"""``tacitly rm``: train, score and evaluate gaze-augmented reward models.

``tacitly rm train`` takes the GazeReward reference's flags as they are written there, with
underscores and with booleans given as values::

    tacitly rm train -d nvidia/HelpSteer2 -m mistralai/Mistral-7B-v0.3 --concat True \\
        --use_softprompt True --learning_rate 5e-5 --logging_steps 64 \\
        --lr_scheduler_type cosine_with_min_lr --min_lr_ratio 0.7 --batch_size 8 \\
        --fp_dropout 0.1,0.3 -fmv 1 --features_used 0,1,0,1,0 --seed 44

``--use_softprompt False`` trains the text-only baseline; otherwise ``--concat True`` is
GazeConcat and ``--concat False`` GazeAdd; ``-fmv`` is the gaze predictor's version.

``tacitly rm score`` scores a JSON Lines file; ``tacitly rm eval`` reports pairwise accuracy
under RewardBench's rule (a tie counts as wrong), per subset and overall.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from tacitly.cli.tables import print_accuracy_report, print_table, write_table
from tacitly.errors import InputError

if TYPE_CHECKING:
    from tacitly.data.schema import PreferenceDataset, PreferenceRow
    from tacitly.rewards.gaze import GazeRewardConfig, GazeRewardModel
    from tacitly.rewards.training import PairwiseTrainingConfig, TrainingResult

__all__ = ["eval_command", "parse_bool", "rm_app", "score_command", "train_command"]

console = Console()

rm_app = typer.Typer(
    help="Reward models: train, score and evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
#: Training rows that feature standardisation reads at most: the five means and standard
#: deviations are stable long before that, and predicting gaze for every row costs time.
SCALING_ROWS = 4096
_MODES = ("baseline", "concat", "add")


def parse_bool(value: str, *, option: str) -> bool:
    """Read a boolean written as a value (``True``/``False``, any case; also 1/0, yes/no).

    Examples
    --------
    >>> parse_bool("TRUE", option="--concat"), parse_bool("false", option="--concat")
    (True, False)
    """
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InputError(f"cannot read {value!r} as a boolean", field=option, expected="True or False")


# --------------------------------------------------------------------------------------------
# rm train


@dataclass(frozen=True)
class TrainPlan:
    """What ``rm train`` was asked to do, once its options are read and checked.

    Attributes
    ----------
    dataset:
        Dataset name or path.
    model_config:
        The reward model's definition.
    training_config:
        The trainer's settings.
    max_train_pairs:
        Train on at most this many pairs, a seeded sample (None: all).
    """

    dataset: str
    model_config: GazeRewardConfig
    training_config: PairwiseTrainingConfig
    max_train_pairs: int | None


@rm_app.command("train")
def train_command(
    dataset: Annotated[
        str,
        typer.Option(
            "-d", "--dataset", help="Dataset name (demo, autoj, hh-rlhf, helpsteer2, ...) or path."
        ),
    ] = "demo",
    model: Annotated[
        str | None,
        typer.Option(
            "-m", "--model", help="Causal LM: HF id or folder [default: embedded SmolLM2]."
        ),
    ] = None,
    concat: Annotated[
        str, typer.Option("--concat", help="True: GazeConcat (gaze prefix); False: GazeAdd.")
    ] = "True",
    use_softprompt: Annotated[
        str, typer.Option("--use_softprompt", help="False: text-only baseline (no gaze).")
    ] = "True",
    learning_rate: Annotated[
        float, typer.Option("--learning_rate", help="Peak learning rate of AdamW.")
    ] = 5e-5,
    logging_steps: Annotated[
        int, typer.Option("--logging_steps", help="Evaluate and checkpoint every N steps.")
    ] = 64,
    lr_scheduler_type: Annotated[
        str,
        typer.Option(
            "--lr_scheduler_type", help="linear, cosine, cosine_with_min_lr, constant, ..."
        ),
    ] = "linear",
    min_lr_ratio: Annotated[
        float, typer.Option("--min_lr_ratio", help="cosine_with_min_lr: final / peak rate.")
    ] = 0.0,
    batch_size: Annotated[int, typer.Option("--batch_size", help="Pairs per micro-batch.")] = 8,
    fp_dropout: Annotated[
        str, typer.Option("--fp_dropout", help="Projector dropouts p1,p2.")
    ] = "0.1,0.3",
    fmv: Annotated[int, typer.Option("-fmv", "--fmv", help="Gaze predictor version: 1 or 2.")] = 1,
    features_used: Annotated[
        str,
        typer.Option("--features_used", help="Five 0/1 flags for nFix, FFD, GPT, TRT, fixProp."),
    ] = "1,1,1,1,1",
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random choice.")] = 42,
    max_length: Annotated[
        int, typer.Option("--max_length", help="Most text tokens per conversation.")
    ] = 1024,
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the training pairs.")] = 1,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output_dir", help="Run folder [default: runs/rm/<dataset>-<mode>-seed<seed>]."
        ),
    ] = None,
    lora_r: Annotated[int, typer.Option("--lora_r", help="LoRA rank.")] = 8,
    lora_alpha: Annotated[int, typer.Option("--lora_alpha", help="LoRA alpha.")] = 32,
    lora_dropout: Annotated[float, typer.Option("--lora_dropout", help="LoRA dropout.")] = 0.1,
    warmup_ratio: Annotated[
        float, typer.Option("--warmup_ratio", help="Fraction of steps warming up.")
    ] = 0.0,
    weight_decay: Annotated[
        float, typer.Option("--weight_decay", help="AdamW weight decay (matrices only).")
    ] = 0.0,
    gradient_accumulation_steps: Annotated[
        int, typer.Option("--gradient_accumulation_steps", help="Micro-batches per step.")
    ] = 1,
    max_steps: Annotated[
        int, typer.Option("--max_steps", help="Total optimizer steps; > 0 overrides --epochs.")
    ] = -1,
    features_scope: Annotated[
        str, typer.Option("--features_scope", help="Gaze on: conversation or response.")
    ] = "conversation",
    standardise: Annotated[
        str, typer.Option("--standardise", help="Standardise gaze features (train statistics).")
    ] = "True",
    long_responses: Annotated[
        str,
        typer.Option(
            "--long_responses", help="A response over --max_length alone: error or cut_end."
        ),
    ] = "error",
    max_train_pairs: Annotated[
        int | None,
        typer.Option("--max_train_pairs", help="Train on a seeded sample of N pairs."),
    ] = None,
    mixed_precision: Annotated[
        str, typer.Option("--mixed_precision", help="no, fp16 or bf16.")
    ] = "no",
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the latest checkpoint in the folder.")
    ] = False,
    overwrite_output_dir: Annotated[
        bool, typer.Option("--overwrite_output_dir", help="Replace an earlier run's files.")
    ] = False,
    new_modules_learning_rate: Annotated[
        float | None,
        typer.Option(
            "--new_modules_learning_rate",
            "--projector_learning_rate",
            help="Learning rate of the projector, eye tokens and head (default: --learning_rate).",
        ),
    ] = None,
    length_balance: Annotated[
        bool,
        typer.Option(
            "--length_balance",
            help="Weight pairs so chosen-longer and chosen-shorter pairs count equally.",
        ),
    ] = False,
    group_by_length: Annotated[
        str, typer.Option("--group_by_length", help="Batch pairs of similar length.")
    ] = "True",
    inject_layer: Annotated[
        int | None,
        typer.Option(
            "--inject_layer",
            help="Gaze enters at decoder layer k; layers below k are frozen and cached (CPU).",
        ),
    ] = None,
    share_prompt: Annotated[
        str,
        typer.Option(
            "--share_prompt",
            help="Baseline: run each pair's shared prompt once (same rewards, fewer tokens).",
        ),
    ] = "True",
) -> None:
    """Train a (gaze-augmented) reward model on preference pairs and report its accuracy."""
    from tacitly.rewards.gaze import GazeRewardConfig, mode_from_flags
    from tacitly.rewards.training import PairwiseTrainingConfig

    mode = mode_from_flags(
        concat=parse_bool(concat, option="--concat"),
        use_softprompt=parse_bool(use_softprompt, option="--use_softprompt"),
    )
    if max_train_pairs is not None and max_train_pairs < 1:
        raise InputError(f"is {max_train_pairs}", field="--max_train_pairs", expected=">= 1")
    model_config = GazeRewardConfig(
        model_name=model,
        mode=mode,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        fp_dropout=fp_dropout,  # type: ignore[arg-type]  # the config reads "p1,p2"
        features_used=features_used,  # type: ignore[arg-type]  # the config reads "0,1,0,1,0"
        predictor_version=fmv,
        features_scope=features_scope,  # type: ignore[arg-type]  # checked by the config
        standardise=parse_bool(standardise, option="--standardise"),
        max_length=max_length,
        long_responses=long_responses,  # type: ignore[arg-type]  # checked by the config
        inject_layer=inject_layer,
        share_prompt=parse_bool(share_prompt, option="--share_prompt"),
    )
    folder = output_dir or Path("runs", "rm", f"{_slug(dataset)}-{mode}-seed{seed}")
    training_config = PairwiseTrainingConfig(
        learning_rate=learning_rate,
        lr_scheduler_type=lr_scheduler_type,
        min_lr_ratio=min_lr_ratio,
        warmup_ratio=warmup_ratio,
        weight_decay=weight_decay,
        batch_size=batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps,
        epochs=epochs,
        max_steps=max_steps,
        logging_steps=logging_steps,
        seed=seed,
        output_dir=str(folder),
        overwrite_output_dir=overwrite_output_dir,
        resume=resume,
        mixed_precision=mixed_precision,  # type: ignore[arg-type]  # checked by the config
        new_modules_learning_rate=new_modules_learning_rate,
        length_balance=length_balance,
        group_by_length=parse_bool(group_by_length, option="--group_by_length"),
    )
    run_training(
        TrainPlan(
            dataset=dataset,
            model_config=model_config,
            training_config=training_config,
            max_train_pairs=max_train_pairs,
        )
    )


def run_training(plan: TrainPlan) -> TrainingResult:
    """Load the data, build the model, train it and print the summary table."""
    from accelerate import PartialState
    from accelerate.utils import set_seed

    from tacitly.data import load_preferences
    from tacitly.rewards.gaze import GazeRewardModel
    from tacitly.rewards.training import train_pairwise

    seed = plan.training_config.seed
    data = load_preferences(plan.dataset, seed=seed)
    train_rows = _sample(data["train"], plan.max_train_pairs, seed=seed)
    if not train_rows:
        raise InputError(
            f"{data.name} has no training pairs", field="--dataset", expected="a train split"
        )
    main_process = PartialState().is_main_process
    if main_process:
        console.print(
            f"{data.name}: {len(train_rows):,} train / {len(data['validation']):,} validation / "
            f"{len(data['test']):,} test pairs · mode {plan.model_config.mode}",
            highlight=False,
        )
    set_seed(seed)  # the new modules' initialisation
    model = GazeRewardModel(plan.model_config)
    _fit_scaling(model, train_rows)
    result = train_pairwise(
        model,
        train_rows,
        config=plan.training_config,
        valid_rows=data["validation"] or None,
        test_rows=data["test"] or None,
    )
    if main_process:
        _add_run_details(result, plan, dataset=data)
        _print_training_summary(result, plan, dataset=data)
    return result


def _fit_scaling(model: GazeRewardModel, rows: Sequence[PreferenceRow]) -> None:
    config = model.config
    if not (config.uses_gaze and config.standardise) or bool(model.feature_scaling_fitted):
        return
    with console.status("fitting gaze feature scaling on the training pairs"):
        model.fit_feature_scaling(rows, max_rows=SCALING_ROWS)


def _sample(rows: list[PreferenceRow], limit: int | None, *, seed: int) -> list[PreferenceRow]:
    """At most ``limit`` rows, drawn with ``seed``, in their original order."""
    if limit is None or limit >= len(rows):
        return rows
    chosen = np.sort(np.random.default_rng(seed).choice(len(rows), size=limit, replace=False))
    return [rows[i] for i in chosen.tolist()]


def _slug(name: str) -> str:
    text = Path(name).stem if Path(name).suffix else name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip("/")).strip("-").lower() or "data"


def _add_run_details(
    result: TrainingResult, plan: TrainPlan, *, dataset: PreferenceDataset
) -> None:
    """Record the dataset and the model's definition next to the trainer's metrics."""
    from tacitly.rewards.training import METRICS_FILE

    result.metrics["dataset"] = {
        "name": dataset.name,
        "requested": plan.dataset,
        "max_train_pairs": plan.max_train_pairs,
    }
    result.metrics["model_config"] = plan.model_config.to_dict()
    path = Path(plan.training_config.output_dir) / METRICS_FILE
    path.write_text(json.dumps(result.metrics, indent=2), encoding="utf-8")


def _accuracy_text(accuracy: float | None, ci: Sequence[float] | None, n: int) -> str:
    if accuracy is None:
        return "—"
    text = f"{accuracy:.3f}"
    if ci is not None:
        text += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return f"{text} (n={n:,})"


def _print_training_summary(
    result: TrainingResult, plan: TrainPlan, *, dataset: PreferenceDataset
) -> None:
    from tacitly.rewards.training import CURVE_FILE, METRICS_FILE

    metrics = result.metrics
    folder = Path(plan.training_config.output_dir)
    n_valid, n_test = int(metrics["n_valid"]), int(metrics["n_test"])
    valid_ci = metrics.get("val_accuracy_ci95")
    speed = metrics["train_pairs_per_second"]
    table = Table(
        title=f"reward model · {plan.model_config.mode} · {dataset.name} · seed "
        f"{plan.training_config.seed}",
        title_justify="left",
        show_header=False,
    )
    table.add_column(style="bold")
    table.add_column()
    table.add_row("validation accuracy", _accuracy_text(metrics["val_accuracy"], valid_ci, n_valid))
    table.add_row(
        "test accuracy",
        _accuracy_text(metrics["test_accuracy"], metrics["test_accuracy_ci95"], n_test),
    )
    table.add_row("best step", f"{metrics['best_step']} of {metrics['total_steps']}")
    table.add_row("train time", f"{metrics['train_seconds']:.2f} s")
    table.add_row("pairs/s", "—" if speed is None else f"{speed:.2f}")
    table.add_row("model", str(result.best_dir) if result.best_dir is not None else "—")
    table.add_row("metrics", str(folder / METRICS_FILE))
    table.add_row("curve", str(folder / CURVE_FILE))
    console.print(table)
    if not result.completed:
        console.print("stopped before the last step; continue with --resume", highlight=False)


# --------------------------------------------------------------------------------------------
# loading a trained model


def load_reward_model(folder: Path, *, mode: str | None = None) -> GazeRewardModel:
    """A saved reward model: the folder itself, or the ``best/`` model of a training run.

    Raises
    ------
    InputError
        If the folder is missing, holds no model, or holds a model of another ``mode``.
    """
    import torch

    from tacitly.rewards.gaze import CONFIG_NAME, GazeRewardModel
    from tacitly.rewards.training import BEST_DIR

    if mode is not None and mode not in _MODES:
        raise InputError(f"unknown mode {mode!r}", field="--mode", expected=" | ".join(_MODES))
    if not folder.is_dir():
        raise InputError("no such model folder", source=folder, field="--model")
    if not (folder / CONFIG_NAME).is_file() and (folder / BEST_DIR / CONFIG_NAME).is_file():
        folder = folder / BEST_DIR
    if not (folder / CONFIG_NAME).is_file():
        raise InputError(
            "no saved reward model here",
            source=folder,
            field="--model",
            expected=f"a folder with {CONFIG_NAME} (a model, or a training run with {BEST_DIR}/)",
        )
    model = GazeRewardModel.from_pretrained(folder, mode=mode)  # type: ignore[arg-type]
    if torch.cuda.is_available() and model.device.type == "cpu":
        model = model.to("cuda")
    return model


ModelOption = Annotated[
    Path, typer.Option("--model", "-m", help="A saved reward model, or a training run folder.")
]
ModeOption = Annotated[
    str | None,
    typer.Option("--mode", help="Expected mode (baseline, concat, add); another is an error."),
]
BatchOption = Annotated[int, typer.Option("--batch_size", help="Pairs per forward pass.")]
ScoreInputOption = Annotated[
    Path,
    typer.Option(
        "--input",
        "-i",
        help='JSON Lines: {"prompt", "response"} or {"prompt", "chosen", "rejected"}.',
    ),
]
ScoreOutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write .jsonl, .csv or .parquet instead of printing."),
]


# --------------------------------------------------------------------------------------------
# rm score


@rm_app.command("score")
def score_command(
    model: ModelOption,
    input_file: ScoreInputOption,
    output: ScoreOutputOption = None,
    mode: ModeOption = None,
    batch_size: BatchOption = 8,
) -> None:
    """Score the responses of a JSON Lines file with a trained reward model."""
    _check_batch_size(batch_size)
    records = read_score_records(input_file)
    reward_model = load_reward_model(model, mode=mode)
    scored = score_records(reward_model, records, batch_size=batch_size)
    write_scores(scored, source=input_file, output=output)


def write_scores(scored: list[dict[str, Any]], *, source: Path, output: Path | None) -> None:
    """Print the scores as a table, or write them to .jsonl, .csv or .parquet."""
    console.print(f"scored {len(scored):,} line(s) of {source}", highlight=False)
    if output is None:
        print_table(console, pl.DataFrame(scored), title="rewards", digits=4)
    elif output.suffix.lower() in (".jsonl", ".ndjson"):
        output.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(line) + "\n" for line in scored)
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}", highlight=False)
    else:
        write_table(pl.DataFrame(scored), output)
        console.print(f"wrote {output}", highlight=False)


@dataclass(frozen=True)
class ScoreRecord:
    """One line of a file to score: a response, or the two sides of a preference pair."""

    id: Any
    prompt: Any
    responses: dict[str, Any]


def read_score_records(path: Path) -> list[ScoreRecord]:
    """Read the lines of a file to score.

    Each line is an object with ``prompt`` (a string or a list of messages) and either
    ``response`` or both ``chosen`` and ``rejected`` (strings or lists of messages); an ``id``
    is kept, the line number stands in for a missing one. All lines have the same form.

    Raises
    ------
    InputError
        Naming the line and field of a malformed record.
    """
    if not path.is_file():
        raise InputError("file not found", source=path, field="--input")
    records: list[ScoreRecord] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                records.append(_score_record(line, source=path, row=number))
    if not records:
        raise InputError("no lines to score", source=path)
    kinds = {tuple(record.responses) for record in records}
    if len(kinds) > 1:
        raise InputError(
            "lines mix single responses and preference pairs",
            source=path,
            expected='every line with "response", or every line with "chosen" and "rejected"',
        )
    return records


def _score_record(line: str, *, source: Path, row: int) -> ScoreRecord:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise InputError(f"not valid JSON: {error.msg}", source=source, row=row) from None
    if not isinstance(record, dict):
        raise InputError("expected a JSON object", source=source, row=row)
    if "response" in record:
        sides: tuple[str, ...] = ("response",)
    elif "chosen" in record or "rejected" in record:
        sides = ("chosen", "rejected")
    else:
        raise InputError(
            'no "response" (or "chosen" and "rejected")',
            source=source,
            row=row,
            field="response",
            expected='{"prompt": ..., "response": ...}',
        )
    for name in ("prompt", *sides):
        _check_text_or_messages(record.get(name), source=source, row=row, field=name)
    return ScoreRecord(
        id=record.get("id", row),
        prompt=record["prompt"],
        responses={name: record[name] for name in sides},
    )


def _check_text_or_messages(value: object, *, source: Path, row: int, field: str) -> None:
    if isinstance(value, str):
        if not value.strip() and field != "prompt":
            raise InputError("is empty", source=source, row=row, field=field)
        return
    if isinstance(value, list) and value:
        for index, message in enumerate(value):
            if not (
                isinstance(message, Mapping)
                and isinstance(message.get("role"), str)
                and isinstance(message.get("content"), str)
            ):
                raise InputError(
                    "each message needs a string role and content",
                    source=source,
                    row=row,
                    field=f"{field}[{index}]",
                    expected='{"role": str, "content": str}',
                )
        return
    raise InputError(
        "missing or not a text" if value is None else f"a {type(value).__name__}",
        source=source,
        row=row,
        field=field,
        expected="a string or a non-empty list of messages",
    )


def score_records(
    model: Any, records: Sequence[ScoreRecord], *, batch_size: int | None = 8
) -> list[dict[str, Any]]:
    """``{"id", "reward"}`` per record, or ``{"id", "chosen_reward", "rejected_reward",
    "reward_margin"}`` for preference pairs.

    ``model`` is any reward with ``score(prompts, responses)``; ``batch_size`` is passed to it
    unless None."""
    prompts = [record.prompt for record in records]
    options = {} if batch_size is None else {"batch_size": batch_size}
    scores = {
        side: model.score(prompts, [record.responses[side] for record in records], **options)
        for side in records[0].responses
    }
    if "response" in scores:
        return [
            {"id": record.id, "reward": float(reward)}
            for record, reward in zip(records, scores["response"], strict=True)
        ]
    return [
        {
            "id": record.id,
            "chosen_reward": float(chosen),
            "rejected_reward": float(rejected),
            "reward_margin": float(chosen - rejected),
        }
        for record, chosen, rejected in zip(
            records, scores["chosen"], scores["rejected"], strict=True
        )
    ]


# --------------------------------------------------------------------------------------------
# rm eval


@rm_app.command("eval")
def eval_command(
    model: ModelOption,
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Dataset name or preference file/folder.")
    ],
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="train, validation, test or all [default: test for a named dataset, every row "
            "of a file or folder].",
        ),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="Meta field naming the subsets [default: scenario, else subset, else source].",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    mode: ModeOption = None,
    batch_size: BatchOption = 16,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the dataset's split.")] = 42,
) -> None:
    """Pairwise accuracy of a reward model (RewardBench's rule: a tie is wrong), per subset."""
    from tacitly.evaluate.pairwise import accuracy_report, row_subsets
    from tacitly.rewards.training import evaluate_pairwise

    _check_batch_size(batch_size)
    name, wanted, rows = evaluation_rows(dataset, split=split, seed=seed)
    reward_model = load_reward_model(model, mode=mode)
    evaluation = evaluate_pairwise(reward_model, rows, batch_size=batch_size)
    report = accuracy_report(
        evaluation.chosen_rewards,
        evaluation.rejected_rewards,
        subsets=row_subsets(rows, by=by),
    )
    report.update(
        subset_field=by if by is not None else "scenario|subset|source",
        dataset=name,
        split=wanted,
        model=str(model),
        mode=reward_model.config.mode,
    )
    if as_json:
        typer.echo(json.dumps(report))
    else:
        print_accuracy_report(
            report, title=f"{report['dataset']} ({report['split']}) · {report['mode']}"
        )


def evaluation_rows(
    dataset: str, *, split: str | None, seed: int
) -> tuple[str, str, list[PreferenceRow]]:
    """The dataset's name, the split used and its rows: by default the test split of a named
    dataset, every row of a file or folder."""
    from tacitly.data import DATASET_NAMES, SPLITS, load_preferences

    named = dataset.strip().lower() in DATASET_NAMES
    wanted = split if split is not None else ("test" if named else "all")
    if wanted not in (*SPLITS, "all"):
        raise InputError(
            f"unknown split {wanted!r}", field="--split", expected=" | ".join((*SPLITS, "all"))
        )
    data = load_preferences(dataset, seed=seed)
    rows = list(data.rows if wanted == "all" else data[wanted])
    if not rows:
        raise InputError(f"no pairs in split {wanted!r}", source=dataset, field="--split")
    return data.name, wanted, rows


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise InputError(f"is {batch_size}", field="--batch_size", expected="an integer >= 1")
