"""Does predicted gaze help a reward model? Baseline, GazeConcat and GazeAdd over several seeds.

For every mode in ``--modes`` and every seed in ``--seeds`` this builds
``GazeRewardModel(GazeRewardConfig(mode=..., max_length=L))`` (SmolLM2-135M-Instruct + LoRA;
``torch.manual_seed(seed)`` runs just before, so the LoRA, projector, eye-token and head
initialisations differ by seed), trains it with ``train_pairwise`` on the first
``--train-pairs`` pairs of the train split (shuffled with the same seed), keeps the step with the
best validation accuracy (on the first ``--valid-pairs`` pairs of the validation split), and
scores the first ``--test-pairs`` pairs of the test split. It reports test and validation
accuracy (RewardBench's rule: ties wrong), training time, and the length-bias report of the
test pairs (:func:`tacitly.evaluate.length.length_bias_report`).

Pairs whose response alone takes more than ``--max-length`` tokens cannot be scored without
cutting it and are dropped *before* taking the first N, so every mode and seed sees the same
pairs; how many were dropped is printed and saved.

Options for the remedies: ``--features-scope response``, ``--new-modules-learning-rate``,
``--length-balance`` (training pairs reweighted so chosen-longer and chosen-shorter pairs count
equally), ``--residualise`` (a :class:`~tacitly.evaluate.length.LengthResidualiser` fitted on
the trained model's rewards of the training responses; test accuracy and length report after
residualisation), ``--eval-dataset`` (extra test sets, e.g. the Auto-J test split for HH-trained
models, scored with ``--eval-max-length``).

Output: one JSON line per run on stdout, then a summary table (mean ± sd over seeds per
variant), and everything in ``--output``, rewritten after each run so that a long grid that is
stopped keeps its finished runs.

Usage::

    TACITLY_CACHE=/tmp/tcache nice -n 10 .venv/bin/python benchmarks/gaze_reward_accuracy.py \\
        --dataset hh-rlhf --train-pairs 400 --valid-pairs 100 --test-pairs 231 \\
        --max-length 256 --batch-size 8 --learning-rate 2e-4 --output runs/gaze_bench.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tacitly.data import load_preferences
from tacitly.errors import InputError
from tacitly.evaluate.length import LengthResidualiser, length_bias_report, pair_lengths
from tacitly.evaluate.metrics import pairwise_accuracy
from tacitly.rewards.gaze import GazeRewardConfig, GazeRewardModel
from tacitly.rewards.training import PairwiseTrainingConfig, evaluate_pairwise, train_pairwise

Row = Mapping[str, Any]
MODES = ("baseline", "concat", "add")


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=("hh-rlhf", "autoj"), default="hh-rlhf")
    parser.add_argument("--train-pairs", type=int, default=400)
    parser.add_argument("--valid-pairs", type=int, default=100)
    parser.add_argument("--test-pairs", type=int, default=231)
    parser.add_argument("--max-length", type=int, default=256, help="text tokens per sequence")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--evaluations", type=int, default=3, help="validation passes per run (default: 3)"
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--features-scope", choices=("conversation", "response"), default="conversation"
    )
    parser.add_argument("--no-standardise", action="store_true")
    parser.add_argument("--new-modules-learning-rate", type=float, default=None)
    parser.add_argument("--length-balance", action="store_true")
    parser.add_argument("--residualise", action="store_true")
    parser.add_argument("--inject-layer", type=int, default=None)
    parser.add_argument(
        "--eval-dataset",
        action="append",
        choices=("hh-rlhf", "autoj"),
        default=[],
        help="extra test split(s) to score each trained model on (repeatable)",
    )
    parser.add_argument("--eval-pairs", type=int, default=None, help="cap per extra test set")
    parser.add_argument("--eval-max-length", type=int, default=1024)
    parser.add_argument("--label", default=None, help="name of this variant in the summary")
    parser.add_argument("--output", type=Path, default=Path("runs/gaze_reward_accuracy.json"))
    parser.add_argument(
        "--skip-done",
        action="store_true",
        help="keep the runs already in --output and run only the missing (variant, mode, seed)",
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="for checkpoints (temp)")
    return parser.parse_args(argv)


def require_fields(cls: type, names: Sequence[str], *, option: str) -> None:
    """Fail with a plain message when the code does not have a field that an option needs."""
    present = {item.name for item in dataclasses.fields(cls)}
    missing = [name for name in names if name not in present]
    if missing:
        sys.exit(
            f"{option} needs {cls.__name__}.{', '.join(missing)}, which this version of tacitly "
            "does not have yet; update tacitly or leave the option out"
        )


def training_extras(args: argparse.Namespace) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if args.new_modules_learning_rate is not None:
        require_fields(
            PairwiseTrainingConfig,
            ["new_modules_learning_rate"],
            option="--new-modules-learning-rate",
        )
        extras["new_modules_learning_rate"] = args.new_modules_learning_rate
    if args.length_balance:
        require_fields(PairwiseTrainingConfig, ["length_balance"], option="--length-balance")
        extras["length_balance"] = True
    return extras


def model_extras(args: argparse.Namespace) -> dict[str, Any]:
    extras: dict[str, Any] = {
        "features_scope": args.features_scope,
        "standardise": not args.no_standardise,
    }
    if args.inject_layer is not None:
        require_fields(GazeRewardConfig, ["inject_layer"], option="--inject-layer")
        extras["inject_layer"] = args.inject_layer
    return extras


def fitting_rows(rows: Sequence[Row], fits: Any, *, limit: int | None) -> tuple[list[Row], int]:
    """The first ``limit`` rows whose responses fit; and how many were dropped on the way."""
    kept: list[Row] = []
    dropped = 0
    for row in rows:
        if limit is not None and len(kept) >= limit:
            break
        try:
            fits.collate([row])
        except InputError:
            dropped += 1
            continue
        kept.append(row)
    return kept, dropped


def split_rows(name: str, split: str, fits: Any, limit: int | None) -> dict[str, Any]:
    rows = load_preferences(name, split=split).rows
    kept, dropped = fitting_rows(rows, fits, limit=limit)
    if not kept:
        sys.exit(f"no {name} {split} pair fits max_length={fits.config.max_length}")
    return {"rows": kept, "dropped": dropped, "available": len(rows)}


def residualised(
    model: Any, train: Sequence[Row], test: Sequence[Row], test_eval: Any, batch_size: int
) -> dict[str, Any]:
    """Fit the residualiser on the training responses' rewards; score the test pairs with it."""
    train_eval = evaluate_pairwise(model, train, batch_size=batch_size)
    train_chosen, train_rejected = pair_lengths(train)
    residualiser = LengthResidualiser().fit(
        np.concatenate([train_eval.chosen_rewards, train_eval.rejected_rewards]),
        np.concatenate([train_chosen, train_rejected]),
    )
    chosen_length, rejected_length = pair_lengths(test)
    chosen = residualiser.transform(test_eval.chosen_rewards, chosen_length)
    rejected = residualiser.transform(test_eval.rejected_rewards, rejected_length)
    return {
        "residualiser": residualiser.to_dict(),
        "test_accuracy": pairwise_accuracy(chosen, rejected),
        "test_length": length_bias_report(test, chosen, rejected).to_dict(),
    }


def extra_evaluations(
    model: Any, sets: Mapping[str, dict[str, Any]], args: argparse.Namespace
) -> dict[str, Any]:
    if not sets:
        return {}
    results = {}
    trained_length = model.config.max_length
    model.config.max_length = args.eval_max_length
    try:
        for name, data in sets.items():
            evaluation = evaluate_pairwise(model, data["rows"], batch_size=args.batch_size)
            results[name] = {
                "n": evaluation.n,
                "accuracy": evaluation.accuracy,
                "length": length_bias_report(
                    data["rows"], evaluation.chosen_rewards, evaluation.rejected_rewards
                ).to_dict(),
            }
    finally:
        model.config.max_length = trained_length
    return results


#: One lower-layer cache per split layer k for the whole grid: the layers below k are frozen
#: base weights, the same in every mode and seed, so their outputs are computed once per
#: conversation for all runs instead of once per model.
LOWER_CACHES: dict[int, Any] = {}


def share_lower_cache(model: Any) -> None:
    if model.lower_cache is not None:
        model.lower_cache = LOWER_CACHES.setdefault(model.lower_cache.k, model.lower_cache)


def run_one(
    mode: str,
    seed: int,
    *,
    args: argparse.Namespace,
    data: Mapping[str, dict[str, Any]],
    extra_sets: Mapping[str, dict[str, Any]],
    work_dir: Path,
    predictors: dict[int, Any],
) -> dict[str, Any]:
    config = GazeRewardConfig(mode=mode, max_length=args.max_length, **model_extras(args))  # type: ignore[arg-type]
    train, valid, test = (data[s]["rows"] for s in ("train", "validation", "test"))
    steps = args.epochs * -(-len(train) // args.batch_size)
    training = PairwiseTrainingConfig(
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        epochs=args.epochs,
        seed=seed,
        logging_steps=max(1, -(-steps // args.evaluations)),
        output_dir=str(work_dir / f"{mode}-seed{seed}"),
        overwrite_output_dir=True,
        save_total_limit=1,
        progress=False,
        **training_extras(args),
    )
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = GazeRewardModel(config, predictor=predictors.get(config.predictor_version))
    if config.uses_gaze:
        predictors.setdefault(config.predictor_version, model.predictor)
    share_lower_cache(model)
    result = train_pairwise(model, train, config=training, valid_rows=valid)
    best = result.model
    share_lower_cache(best)
    if config.uses_gaze and config.predictor_version in predictors:
        best._predictor = predictors[config.predictor_version]  # reuse, not rebuild
    test_eval = evaluate_pairwise(best, test, batch_size=args.batch_size)
    record: dict[str, Any] = {
        "variant": args.label,
        "mode": mode,
        "seed": seed,
        "test_accuracy": test_eval.accuracy,
        "test_accuracy_ci95": list(test_eval.accuracy_ci()),
        "test_loss": test_eval.loss,
        "val_accuracy": result.metrics["val_accuracy"],
        "best_step": result.metrics["best_step"],
        "total_steps": result.metrics["total_steps"],
        "train_seconds": result.metrics["train_seconds"],
        "train_pairs_per_second": result.metrics["train_pairs_per_second"],
        "n_train": len(train),
        "n_valid": len(valid),
        "n_test": len(test),
        "history": result.history,
        "test_length": length_bias_report(
            test, test_eval.chosen_rewards, test_eval.rejected_rewards
        ).to_dict(),
    }
    if args.residualise:
        record["residualised"] = residualised(best, train, test, test_eval, args.batch_size)
    record["extra_tests"] = extra_evaluations(best, extra_sets, args)
    record["wall_seconds"] = time.perf_counter() - started
    return record


def mean_sd(values: Sequence[float | None]) -> str:
    numbers = [v for v in values if v is not None]
    if not numbers:
        return "–"
    if len(numbers) == 1:
        return f"{numbers[0]:.3f}"
    return f"{statistics.mean(numbers):.3f} ± {statistics.stdev(numbers):.3f}"


def summarise(runs: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """Mean ± sd over seeds per (variant, mode), as records and as a Markdown table."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for run in runs:
        groups.setdefault((str(run["variant"]), str(run["mode"])), []).append(run)
    header = (
        "| variant | mode | seeds | test acc | val acc | acc chosen-shorter | "
        "ρ(reward, length) | resid. test acc | train s |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    lines, records = [header], []
    for (variant, mode), items in groups.items():
        lengths = [item["test_length"] for item in items]
        record = {
            "variant": variant,
            "mode": mode,
            "seeds": [item["seed"] for item in items],
            "test_accuracy": mean_sd([item["test_accuracy"] for item in items]),
            "val_accuracy": mean_sd([item["val_accuracy"] for item in items]),
            "accuracy_chosen_shorter": mean_sd([r["accuracy_chosen_shorter"] for r in lengths]),
            "reward_length_spearman": mean_sd([r["reward_length_spearman"] for r in lengths]),
            "residualised_test_accuracy": mean_sd(
                [item.get("residualised", {}).get("test_accuracy") for item in items]
            ),
            "train_seconds": statistics.mean(item["train_seconds"] for item in items),
        }
        records.append(record)
        lines.append(
            f"| {variant} | {mode} | {len(items)} | {record['test_accuracy']} | "
            f"{record['val_accuracy']} | {record['accuracy_chosen_shorter']} | "
            f"{record['reward_length_spearman']} | {record['residualised_test_accuracy']} | "
            f"{record['train_seconds']:.0f} |"
        )
    return records, "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_arguments(argv)
    training_extras(args)  # fail before any work when an option is not supported yet
    model_extras(args)
    logging.getLogger("tacitly").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning, module="peft")
    if args.label is None:
        args.label = "default"
    started = time.perf_counter()

    fits = GazeRewardModel(GazeRewardConfig(mode="baseline", max_length=args.max_length))
    limits = {"train": args.train_pairs, "validation": args.valid_pairs, "test": args.test_pairs}
    data = {split: split_rows(args.dataset, split, fits, limit) for split, limit in limits.items()}
    extra_sets = {}
    fits.config.max_length = args.eval_max_length
    for name in args.eval_dataset:
        extra_sets[f"{name}/test"] = split_rows(name, "test", fits, args.eval_pairs)
    del fits
    sizes = {
        key: {"n": len(value["rows"]), "dropped": value["dropped"], "available": value["available"]}
        for key, value in {**data, **extra_sets}.items()
    }
    print(json.dumps({"dataset": args.dataset, "pairs": sizes}), flush=True)

    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    output: dict[str, Any] = {"settings": settings, "pairs": sizes, "runs": []}
    if args.skip_done and args.output.is_file():
        output["runs"] = json.loads(args.output.read_text())["runs"]
    done = {(run["variant"], run["mode"], run["seed"]) for run in output["runs"]}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    predictors: dict[int, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gaze-bench-") as temporary:
        work_dir = args.work_dir or Path(temporary)
        for seed in args.seeds:
            for mode in args.modes:
                if (args.label, mode, seed) in done:
                    continue
                record = run_one(
                    mode,
                    seed,
                    args=args,
                    data=data,
                    extra_sets=extra_sets,
                    work_dir=work_dir,
                    predictors=predictors,
                )
                output["runs"].append(record)
                line = {k: v for k, v in record.items() if k != "history"}
                print(json.dumps(line), flush=True)
                output["summary"], table = summarise(output["runs"])
                output["total_seconds"] = time.perf_counter() - started
                args.output.write_text(json.dumps(output, indent=1))
    output["summary"], table = summarise(output["runs"])
    print(table)
    print(f"total {time.perf_counter() - started:.0f} s; written to {args.output}")


if __name__ == "__main__":
    main()
