"""``tacitly behavior``: implicit-behaviour reward from IFllm mouse and webcam-gaze traces."""

from __future__ import annotations

import json
import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import polars as pl
import typer
from rich.console import Console

from tacitly.cli.tables import print_table
from tacitly.errors import InputError
from tacitly.rewards.behavior import (
    FEATURE_SETS,
    BehaviorRewardConfig,
    BehaviorRewardModel,
    ablation_table,
    cross_validate,
    embedding_features,
    evaluate_predictions,
    plot_feature_importance,
    preference_rows,
    reliability_table,
)
from tacitly.signals.behavior import build_feature_table, split_by_worker

behavior_app = typer.Typer(
    help="Implicit behaviour (IFllm): trace features, preference models, DPO labels.",
    no_args_is_help=True,
)
console = Console(stderr=True)


class ModelKind(StrEnum):
    rf = "rf"
    lgbm = "lgbm"
    lr = "lr"
    blend = "blend"


class FeatureSet(StrEnum):
    text = "text"
    gaze = "gaze"
    mouse = "mouse"
    behavior = "behavior"
    all = "all"


def _table(source: Path, *, embeddings: bool) -> pl.DataFrame:
    """A feature table from an IFllm-layout folder or a saved Parquet table."""
    if source.is_file() and source.suffix.lower() in (".parquet", ".pq"):
        table = pl.read_parquet(source)
    elif source.is_dir():
        table = build_feature_table(source)
    else:
        raise InputError(
            "no such folder or feature table",
            source=source,
            expected="an IFllm-layout folder or a .parquet file from `tacitly behavior features`",
        )
    if embeddings and not any(c.startswith("emb_") for c in table.columns):
        table = table.join(embedding_features(table), on="query_ID", how="left")
    return table


def _config(
    model: ModelKind,
    features: FeatureSet,
    seed: int,
    worker_standardize: bool,
    tune: bool = False,
) -> BehaviorRewardConfig:
    return BehaviorRewardConfig(
        model=model.value,
        feature_set=features.value,
        seed=seed,
        worker_standardize=worker_standardize,
        tune=tune,
    )


def _needs_embeddings(*sets: str) -> bool:
    return any(FEATURE_SETS[name][1] for name in sets)


_Model = Annotated[
    ModelKind,
    typer.Option(
        help="rf (random forest), lgbm, lr, or blend (LR on text + LightGBM on behaviour, "
        "stacked on worker-grouped out-of-fold logits)."
    ),
]
_Features = Annotated[FeatureSet, typer.Option(help="Feature set (text = text-only baseline).")]
_Seed = Annotated[int, typer.Option(help="Seed of the model and the folds.")]
_Tune = Annotated[
    bool,
    typer.Option(
        help="Choose the model's regularisation by worker-grouped cross-validation inside "
        "the training rows (nested: test rows never take part)."
    ),
]
_Standardize = Annotated[
    bool,
    typer.Option(help="Rescale behaviour features per worker from the worker's own rows."),
]


@behavior_app.command("features")
def features_command(
    folder: Annotated[Path, typer.Argument(help="IFllm-layout folder (query log + traces).")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the table (.parquet).")
    ],
    embeddings: Annotated[
        bool, typer.Option(help="Add the MiniLM text features (needed by text/all models).")
    ] = False,
) -> None:
    """Build the per-question feature table of a folder."""
    table = _table(folder, embeddings=embeddings)
    output.parent.mkdir(parents=True, exist_ok=True)
    table.write_parquet(output)
    labelled = table.filter(pl.col("label").is_not_null()).height
    console.print(
        f"wrote {table.height:,} questions ({labelled:,} with a preference, "
        f"{int(table['has_traces'].sum()):,} with traces) × {table.width} columns to {output}"
    )


@behavior_app.command("split")
def split_command(
    folder: Annotated[Path, typer.Argument(help="IFllm-layout folder to split.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Writes OUTPUT/train and OUTPUT/test.")
    ],
    test_share: Annotated[
        float,
        typer.Option(help="Target share of side-by-side questions to hold out (whole workers)."),
    ] = 0.25,
    seed: _Seed = 0,
) -> None:
    """Split a folder into train and test folders whose workers are disjoint."""
    result = split_by_worker(folder, output, test_share=test_share, seed=seed)
    for side, path in (("train", result.train), ("test", result.test)):
        console.print(
            f"{side}: {len(result.workers[side])} workers, {result.questions[side]:,} "
            f"side-by-side questions, {result.trace_files[side]:,} trace files → {path}"
        )
    if result.dropped_trace_files or result.dropped_task_rows:
        console.print(
            f"left out {result.dropped_trace_files:,} trace files and "
            f"{result.dropped_task_rows:,} task-table rows of workers absent from the query "
            "log (and links in the archive)"
        )


@behavior_app.command("train")
def train_command(
    source: Annotated[Path, typer.Argument(help="IFllm-layout folder or feature table.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Model folder to write.")],
    model: _Model = ModelKind.lgbm,
    features: _Features = FeatureSet.all,
    seed: _Seed = 0,
    worker_standardize: _Standardize = False,
    tune: _Tune = True,
    plot: Annotated[
        Path | None, typer.Option(help="Also save a feature-importance PNG here.")
    ] = None,
) -> None:
    """Train a behaviour reward model on every labelled question and save it."""
    config = _config(model, features, seed, worker_standardize, tune)
    table = _table(source, embeddings=_needs_embeddings(config.feature_set))
    fitted = BehaviorRewardModel(config).fit(table)
    fitted.save(output)
    if plot is not None:
        plot_feature_importance(fitted, plot)
    console.print(
        f"trained {config.model} on {fitted.n_train} questions, "
        f"{len(fitted.feature_names)} features; saved to {output}"
    )


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def _held_out(train: Path, test: Path, config: BehaviorRewardConfig) -> dict[str, Any]:
    need = _needs_embeddings(config.feature_set, "text")
    train_table = _table(train, embeddings=need)
    test_table = _table(test, embeddings=need)
    shared = set(train_table["user_id"].to_list()) & set(test_table["user_id"].to_list())
    if shared:
        raise InputError(
            f"{len(shared)} worker(s) appear in both --train and --test",
            source=test,
            expected="disjoint workers",
        )
    scored = test_table.filter(pl.col("label").is_not_null())
    if scored.is_empty():
        raise InputError("the test folder has no question with a preference", source=test)
    labels = scored["label"].to_numpy().astype(np.float64)
    result: dict[str, Any] = {}
    for name, settings in (
        ("model", config),
        ("text_only", BehaviorRewardConfig(**{**config.__dict__, "feature_set": "text"})),
    ):
        fitted = BehaviorRewardModel(settings).fit(train_table)
        metrics = evaluate_predictions(labels, fitted.predict_proba(scored))
        block = {key: metrics[key] for key in ("accuracy", "auc", "n", "accuracy_ci95", "brier")}
        if name == "model":
            result.update(block)
            result["model"] = config.model
            result["features"] = config.feature_set
            result["n_train"] = fitted.n_train
        else:
            result["text_only"] = block
    return result


@behavior_app.command("eval")
def eval_command(
    source: Annotated[
        Path | None, typer.Argument(help="Folder or feature table to cross-validate.")
    ] = None,
    train: Annotated[
        Path | None, typer.Option(help="Train on this folder (with --test): held-out workers.")
    ] = None,
    test: Annotated[Path | None, typer.Option(help="Test on this folder (with --train).")] = None,
    model: _Model = ModelKind.lgbm,
    features: _Features = FeatureSet.all,
    seed: _Seed = 0,
    worker_standardize: _Standardize = False,
    tune: _Tune = True,
    ablation: Annotated[
        bool,
        typer.Option(
            help="Cross-validate every model × feature set under both protocols (slow: tens of "
            "minutes on 2 cores with --no-tune, hours with --tune)."
        ),
    ] = False,
    seeds: Annotated[int, typer.Option(help="Repetitions of the cross-validation.")] = 3,
    folds: Annotated[int, typer.Option(help="Folds of the cross-validation.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Evaluate: --train/--test on disjoint workers, else worker-grouped and plain k-fold."""
    config = _config(model, features, seed, worker_standardize, tune)
    if (train is None) != (test is None):
        raise InputError("give --train and --test together", field="--train/--test")
    if train is not None and test is not None:
        result = _held_out(train, test, config)
        if as_json:
            typer.echo(json.dumps(_clean(result)))
        else:
            console.print(result)
        return
    if source is None:
        raise InputError(
            "nothing to evaluate", field="SOURCE", expected="a folder, or --train and --test"
        )
    seed_list = tuple(range(seed, seed + seeds))
    if ablation:
        table = _table(source, embeddings=True)
        rows, _ = ablation_table(table, n_splits=folds, seeds=seed_list, base=config)
        if as_json:
            typer.echo(json.dumps(_clean({"ablation": rows.to_dicts()})))
        else:
            print_table(
                console,
                rows,
                title="ablation (vs_reference: minus text-only)",
                digits=3,
                max_rows=100,
            )
        return
    table = _table(source, embeddings=_needs_embeddings(config.feature_set, "text"))
    report: dict[str, Any] = {}
    for protocol in ("grouped", "plain"):
        run = cross_validate(table, config, protocol=protocol, n_splits=folds, seeds=seed_list)
        metrics = evaluate_predictions(run.labels, run.mean_probability, hits=run.hits)
        report[protocol] = {
            **metrics,
            "reliability": reliability_table(run.labels, run.mean_probability).to_dicts(),
        }
    if as_json:
        typer.echo(json.dumps(_clean(report)))
        return
    for protocol, metrics in report.items():
        low, high = metrics["accuracy_ci95"]
        console.print(
            f"{protocol:>7}: accuracy {metrics['accuracy']:.3f} [{low:.3f}, {high:.3f}], "
            f"AUC {metrics['auc']:.3f}, Brier {metrics['brier']:.3f}, n {metrics['n']}"
        )


@behavior_app.command("label")
def label_command(
    source: Annotated[Path, typer.Argument(help="IFllm-layout folder or feature table.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Preference rows (.jsonl).")],
    model_dir: Annotated[
        Path | None,
        typer.Option("--model-dir", help="A trained model; without it, out-of-fold labels."),
    ] = None,
    model: _Model = ModelKind.lgbm,
    features: _Features = FeatureSet.all,
    seed: _Seed = 0,
    tune: _Tune = True,
    folds: Annotated[int, typer.Option(help="Worker-grouped folds for out-of-fold labels.")] = 5,
) -> None:
    """Write DPO preference rows whose weight is the model's confidence in its choice."""
    if model_dir is not None:
        fitted = BehaviorRewardModel.load(model_dir)
        table = _table(source, embeddings=fitted.needs_embeddings)
        probabilities: Any = fitted.predict_proba(table)
    else:
        config = _config(model, features, seed, False, tune)
        table = _table(source, embeddings=_needs_embeddings(config.feature_set))
        run = cross_validate(table, config, protocol="grouped", n_splits=folds, seeds=(seed,))
        by_query = dict(zip(run.query_ids, run.mean_probability.tolist(), strict=True))
        unlabelled = table.filter(pl.col("label").is_null())
        if unlabelled.height:
            # Questions without a preference were never in any fold: a model on all labelled
            # questions labels them, which is still out-of-sample for them.
            fitted = BehaviorRewardModel(config).fit(table)
            by_query.update(
                zip(
                    unlabelled["query_ID"].to_list(),
                    fitted.predict_proba(unlabelled).tolist(),
                    strict=True,
                )
            )
        probabilities = by_query
    rows = preference_rows(table, probabilities)
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    console.print(f"wrote {len(rows):,} preference rows to {output}")
