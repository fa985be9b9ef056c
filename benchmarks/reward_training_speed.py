"""Reward-model training: tacitly's ``train_pairwise`` vs TRL's ``RewardTrainer`` (baseline mode).

Both train a text-only reward model on SmolLM2-135M-Instruct (the embedded backbone, fp32, on
the CPU) with LoRA r=8, alpha=32, dropout=0.1 on the same modules (q_proj, v_proj), on the
same HH-RLHF preference pairs, with the same learning rate, batch size, seed, one epoch and the
same maximum length, and without gradient checkpointing. Each trainer runs in its own
subprocess, so that its peak memory is its own and neither warms the other. Only the training
loop is timed (model loading and test scoring are not); each trained model then scores the
same test pairs. Target (issue #4): ``ratio`` ≥ 1.5 at equal accuracy within noise.

Usage::

    .venv/bin/python benchmarks/reward_training_speed.py [--pairs 256] [--test-pairs 200]
        [--max-length 256] [--batch-size 4] [--learning-rate 5e-5] [--seed 0]
        [--only {tacitly,trl}]

One JSON line on stdout (the ratio first), a table on stderr. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

Row = dict[str, Any]
TRAINERS = ("tacitly", "trl")
#: peft's default LoRA targets for Llama, which tacitly uses when lora_target_modules is None.
LORA_TARGETS = ["q_proj", "v_proj"]
LORA = {"r": 8, "lora_alpha": 32, "lora_dropout": 0.1}
#: RewardConfig settings changed from TRL's defaults, and why (reported in the JSON line).
TRL_CHANGED_DEFAULTS = {
    "gradient_checkpointing": "False (TRL default True): tacitly does not checkpoint",
    "bf16": "False (TRL default True): both train in fp32",
    "disable_dropout": "False (TRL default True): keep LoRA dropout 0.1 as tacitly does",
    "learning_rate": "--learning-rate (TRL default 1e-4, tacitly 5e-5)",
    "save_strategy": "'no' (default 'steps' every 500): no checkpoint inside the timed loop",
    "use_cpu": "True: fp32 on the CPU, as tacitly (load_in_4bit=False)",
}
SCORE_BATCH = 8


# ---------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=256, help="training pairs (default: 256)")
    parser.add_argument(
        "--test-pairs", type=int, default=200, help="test pairs, at most (default: 200)"
    )
    parser.add_argument(
        "--max-length", type=int, default=256, help="most tokens per conversation (default: 256)"
    )
    parser.add_argument("--batch-size", type=int, default=4, help="pairs per step (default: 4)")
    parser.add_argument("--learning-rate", type=float, default=5e-5, help="(default: 5e-5)")
    parser.add_argument("--seed", type=int, default=0, help="(default: 0)")
    parser.add_argument("--only", choices=TRAINERS, help="run one trainer only (debugging)")
    parser.add_argument("--data-dir", help="shared data folder (default: tacitly's default)")
    parser.add_argument("--worker", choices=TRAINERS, help=argparse.SUPPRESS)
    parser.add_argument("--rows", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------- data


def conversation_length(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> int:
    """Tokens of a conversation rendered with the chat template, as TRL tokenizes it."""
    rendered = tokenizer.apply_chat_template(list(messages), tokenize=True, return_dict=True)
    return len(rendered["input_ids"])


def pairs_that_fit(
    rows: Sequence[Mapping[str, Any]], tokenizer: Any, *, max_length: int, limit: int
) -> tuple[list[Row], int]:
    """The first ``limit`` rows whose chosen and rejected conversations both fit, and how many
    rows before the last one taken were skipped for being too long."""
    kept: list[Row] = []
    skipped = 0
    for row in rows:
        if len(kept) == limit:
            break
        pair = {key: [dict(m) for m in row[key]] for key in ("prompt", "chosen", "rejected")}
        longest = max(
            conversation_length(tokenizer, pair["prompt"] + pair[side])
            for side in ("chosen", "rejected")
        )
        if longest <= max_length:
            kept.append(pair)
        else:
            skipped += 1
    return kept, skipped


# ---------------------------------------------------------------------------- measurements


def peak_rss_mb() -> float:
    """The process's peak resident set size so far (``ru_maxrss``, KiB on Linux), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class BatchCounter:
    """Wraps a collate function: time spent in it and padded/real tokens of what it returns."""

    def __init__(self, collate: Callable[[Any], Any], tensors: Callable[[Any], list[Any]]) -> None:
        self.collate = collate
        self.tensors = tensors
        self.active = True
        self.seconds = 0.0
        self.batches = 0
        self.forward_passes = 0
        self.padded_tokens = 0
        self.real_tokens = 0

    def __call__(self, rows: Any) -> Any:
        started = time.perf_counter()
        batch = self.collate(rows)
        if self.active:
            self.seconds += time.perf_counter() - started
            self.batches += 1
            for mask in self.tensors(batch):
                self.forward_passes += 1
                self.padded_tokens += int(mask.numel())
                self.real_tokens += int(mask.sum())
        return batch

    def summary(self) -> dict[str, Any]:
        return {
            "collate_s": round(self.seconds, 3),
            "forward_passes_per_step": self.forward_passes / max(self.batches, 1),
            "padded_tokens": self.padded_tokens,
            "real_tokens": self.real_tokens,
            "padding_fraction": round(1 - self.real_tokens / max(self.padded_tokens, 1), 4),
        }


def tokens_run(model: Any, batch: Mapping[str, Any]) -> list[Any]:
    """The 0/1 masks of what tacitly's model runs for a batch: one packed sequence per pair
    (shared prompt once) when it packs, else the chosen and the rejected batch."""
    import torch

    chosen, rejected = batch["chosen"], batch["rejected"]
    packed = model._packed(chosen, rejected)
    if packed is None:
        return [chosen["attention_mask"], rejected["attention_mask"]]
    width = packed.input_ids.shape[1]
    return [(torch.arange(width) <= packed.rejected_last.unsqueeze(1)).long()]


def accuracy_report(chosen: np.ndarray, rejected: np.ndarray) -> dict[str, Any]:
    from tacitly.evaluate import bootstrap_ci, pairwise_accuracy, pairwise_correct

    correct = pairwise_correct(chosen, rejected)
    return {
        "accuracy": pairwise_accuracy(chosen, rejected),
        "accuracy_ci95": list(bootstrap_ci(correct.astype(np.float64), n=1000, seed=0)),
        "correct": correct.astype(int).tolist(),
    }


# ---------------------------------------------------------------------------- workers


def run_tacitly(args: argparse.Namespace, train: list[Row], test: list[Row]) -> dict[str, Any]:
    import torch

    from tacitly.rewards.gaze import GazeRewardConfig, GazeRewardModel
    from tacitly.rewards.training import PairwiseTrainingConfig, evaluate_pairwise, train_pairwise

    torch.manual_seed(args.seed)
    started = time.perf_counter()
    model = GazeRewardModel(
        GazeRewardConfig(
            mode="baseline",
            max_length=args.max_length,
            lora_r=LORA["r"],
            lora_alpha=LORA["lora_alpha"],
            lora_dropout=LORA["lora_dropout"],
            load_in_4bit=False,
        )
    )
    load_s = time.perf_counter() - started
    targets = sorted(model.backbone.peft_config["default"].target_modules)
    counter = BatchCounter(model.collate, lambda batch: tokens_run(model, batch))
    # The trainer takes model.collate when it starts; an instance attribute shadows the method.
    model.collate = counter  # type: ignore[method-assign]
    config = PairwiseTrainingConfig(
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        epochs=1,
        seed=args.seed,
        output_dir=str(Path(args.workdir) / "tacitly"),
        overwrite_output_dir=True,
    )
    # train_pairwise ends by reloading the best model (a second copy of the backbone); its
    # first call marks the end of the training loop, where the training peak is read.
    at_loop_end: dict[str, float] = {}
    original = GazeRewardModel.from_pretrained

    def reload_hook(*a: Any, **k: Any) -> Any:
        if not at_loop_end:
            at_loop_end.update(peak_mb=peak_rss_mb(), wall=time.perf_counter())
            counter.active = False
        return original(*a, **k)

    GazeRewardModel.from_pretrained = reload_hook  # type: ignore[method-assign,assignment]
    rss_before = current_rss_mb()
    peak_before = peak_rss_mb()
    started = time.perf_counter()
    try:
        result = train_pairwise(model, train, config=config)
    finally:
        GazeRewardModel.from_pretrained = original  # type: ignore[method-assign]
    call_s = time.perf_counter() - started
    peak_after_reload = peak_rss_mb()
    metrics = result.metrics
    evaluation = evaluate_pairwise(result.model, test, batch_size=SCORE_BATCH)
    return {
        "trainer": "tacitly",
        "train_s": metrics["train_seconds"],
        "pairs_per_s": metrics["train_pairs_per_second"],
        "tokenize_s": counter.seconds,
        "loop_wall_s": at_loop_end["wall"] - started,
        "call_s": call_s,
        "load_s": load_s,
        "steps": metrics["step"],
        "peak_mb": at_loop_end["peak_mb"],
        "peak_before_train_mb": peak_before,
        "rss_before_train_mb": rss_before,
        "peak_after_reload_mb": peak_after_reload,
        "lora_targets": targets,
        "trainable_parameters": sum(p.numel() for p in model.trainable_parameters()),
        # Mean over the steps since the last log (every 64 steps: the whole run up to 256 pairs).
        "train_loss": metrics["history"][-1]["train_loss"] if metrics["history"] else None,
        **counter.summary(),
        **accuracy_report(evaluation.chosen_rewards, evaluation.rejected_rewards),
    }


def run_trl(args: argparse.Namespace, train: list[Row], test: list[Row]) -> dict[str, Any]:
    import torch
    import transformers
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from tacitly.backbones import embedded_lm_folder, load_tokenizer

    transformers.logging.set_verbosity_error()
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    folder = str(embedded_lm_folder())
    tokenizer = load_tokenizer(folder)
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=1, dtype=torch.float32
    )
    load_s = time.perf_counter() - started
    config = RewardConfig(
        output_dir=str(Path(args.workdir) / "trl"),
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        num_train_epochs=1,
        seed=args.seed,
        max_length=args.max_length,
        gradient_checkpointing=False,
        bf16=False,
        disable_dropout=False,
        save_strategy="no",
        use_cpu=True,
    )
    peft_config = LoraConfig(task_type="SEQ_CLS", target_modules=list(LORA_TARGETS), **LORA)
    started = time.perf_counter()
    trainer = RewardTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(train),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    prepare_s = time.perf_counter() - started
    n_kept = len(trainer.train_dataset)
    counter = BatchCounter(trainer.data_collator, lambda batch: [batch["attention_mask"]])
    trainer.data_collator = counter
    rss_before = current_rss_mb()
    peak_before = peak_rss_mb()
    started = time.perf_counter()
    output = trainer.train()
    loop_wall_s = time.perf_counter() - started
    peak = peak_rss_mb()
    counter.active = False
    train_s = float(output.metrics["train_runtime"])
    trained = trainer.model
    chosen, rejected = score_trl(trained, tokenizer, test)
    return {
        "trainer": "trl",
        "train_s": train_s,
        "pairs_per_s": n_kept / train_s,
        "tokenize_s": prepare_s,
        "loop_wall_s": loop_wall_s,
        "load_s": load_s,
        "steps": trainer.state.global_step,
        "n_kept_by_trl": n_kept,
        "peak_mb": peak,
        "peak_before_train_mb": peak_before,
        "rss_before_train_mb": rss_before,
        "lora_targets": sorted(trained.peft_config["default"].target_modules),
        "trainable_parameters": sum(p.numel() for p in trained.parameters() if p.requires_grad),
        "train_loss": float(output.training_loss),
        "optimizer": type(trainer.optimizer.optimizer).__name__
        if hasattr(trainer.optimizer, "optimizer")
        else type(trainer.optimizer).__name__,
        **counter.summary(),
        **accuracy_report(chosen, rejected),
    }


def score_trl(model: Any, tokenizer: Any, rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray]:
    """Rewards of the chosen and rejected conversations, tokenized as TRL tokenizes them."""
    import torch

    def rewards(conversations: list[list[dict[str, str]]]) -> np.ndarray:
        scores = []
        for begin in range(0, len(conversations), SCORE_BATCH):
            ids = [
                tokenizer.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"]
                for c in conversations[begin : begin + SCORE_BATCH]
            ]
            length = max(len(i) for i in ids)
            input_ids = torch.full((len(ids), length), int(tokenizer.pad_token_id))
            mask = torch.zeros((len(ids), length), dtype=torch.long)
            for k, row_ids in enumerate(ids):
                input_ids[k, : len(row_ids)] = torch.tensor(row_ids)
                mask[k, : len(row_ids)] = 1
            logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits
            scores.append(logits[:, 0].float().numpy())
        return np.concatenate(scores).astype(np.float64)

    model.eval()
    with torch.inference_mode():
        chosen = rewards([r["prompt"] + r["chosen"] for r in rows])
        rejected = rewards([r["prompt"] + r["rejected"] for r in rows])
    return chosen, rejected


def worker_main(args: argparse.Namespace) -> None:
    data = json.loads(Path(args.rows).read_text())
    run = run_tacitly if args.worker == "tacitly" else run_trl
    result = run(args, data["train"], data["test"])
    result["worker_peak_mb"] = peak_rss_mb()
    Path(args.result).write_text(json.dumps(result))


# ---------------------------------------------------------------------------- parent


def launch(name: str, args: argparse.Namespace, rows: Path, workdir: Path) -> dict[str, Any]:
    result = workdir / f"{name}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--rows",
        str(rows),
        "--result",
        str(result),
        "--workdir",
        str(workdir),
        "--max-length",
        str(args.max_length),
        "--batch-size",
        str(args.batch_size),
        "--learning-rate",
        repr(args.learning_rate),
        "--seed",
        str(args.seed),
    ]
    # Both on the CPU in fp32, whatever accelerator the machine has.
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    print(f"[{name}] training …", file=sys.stderr, flush=True)
    # The workers' stdout (TRL prints its metrics there) goes to stderr: stdout is the JSON line.
    subprocess.run(command, check=True, env=environment, stdout=sys.stderr)
    content: dict[str, Any] = json.loads(result.read_text())
    return content


def versions() -> dict[str, str]:
    names = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "tacitly")
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except Exception:
            found[name] = "?"
    return found


def rounded(value: Any, digits: int = 3) -> Any:
    return round(value, digits) if isinstance(value, float) else value


def summary(
    args: argparse.Namespace,
    results: dict[str, dict[str, Any]],
    *,
    n_train: int,
    n_test: int,
    skipped: dict[str, int],
) -> dict[str, Any]:
    from tacitly.evaluate import bootstrap_ci

    out: dict[str, Any] = {}
    ours, theirs = results.get("tacitly"), results.get("trl")
    if ours and theirs:
        out["ratio"] = round(ours["pairs_per_s"] / theirs["pairs_per_s"], 3)
    for name, result in results.items():
        out[f"{name}_pairs_per_s"] = rounded(result["pairs_per_s"])
    for name, result in results.items():
        out[f"{name}_peak_mb"] = rounded(result["peak_mb"], 1)
    if ours and theirs:
        out["memory_ratio"] = round(ours["peak_mb"] / theirs["peak_mb"], 3)
    for name, result in results.items():
        out[f"{name}_accuracy"] = rounded(result["accuracy"], 4)
        out[f"{name}_accuracy_ci95"] = [round(x, 4) for x in result["accuracy_ci95"]]
    out["n_train"] = n_train
    out["n_test"] = n_test
    if ours and theirs:
        difference = np.asarray(ours["correct"], float) - np.asarray(theirs["correct"], float)
        out["accuracy_diff"] = round(float(difference.mean()), 4)
        out["accuracy_diff_ci95"] = [round(x, 4) for x in bootstrap_ci(difference, seed=0)]
        # With the tokenization TRL does before train() and tacitly inside its data loader.
        out["ratio_with_tokenization"] = round(
            (theirs["train_s"] + theirs["tokenize_s"]) / (ours["train_s"] + ours["tokenize_s"]), 3
        )
        out["ratio_loop_wall"] = round(theirs["loop_wall_s"] / ours["loop_wall_s"], 3)
        out["peak_above_load_ratio"] = round(
            (ours["peak_mb"] - ours["peak_before_train_mb"])
            / max(theirs["peak_mb"] - theirs["peak_before_train_mb"], 1e-9),
            3,
        )
    for name, result in results.items():
        details = {k: rounded(v, 4) for k, v in result.items() if k not in ("correct", "trainer")}
        out[name] = details
    out["settings"] = {
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
        "epochs": 1,
        "lora": {**LORA, "target_modules": LORA_TARGETS},
        "precision": "fp32",
        "device": "cpu",
        "torch_threads": _torch_threads(),
        "skipped_too_long": skipped,
    }
    out["trl_changed_defaults"] = TRL_CHANGED_DEFAULTS
    out["versions"] = versions()
    return out


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def print_table(out: Mapping[str, Any], results: Mapping[str, Mapping[str, Any]]) -> None:
    rows = [
        ("pairs/s (training loop)", "pairs_per_s", "{:.2f}"),
        ("training loop, s", "train_s", "{:.1f}"),
        ("tokenization, s", "tokenize_s", "{:.2f}"),
        ("peak RSS, MiB", "peak_mb", "{:.0f}"),
        ("peak RSS before training, MiB", "peak_before_train_mb", "{:.0f}"),
        ("forward passes per step", "forward_passes_per_step", "{:.0f}"),
        ("padding fraction", "padding_fraction", "{:.3f}"),
        ("test accuracy", "accuracy", "{:.3f}"),
    ]
    names = list(results)
    lines = [f"{'':32}" + "".join(f"{n:>12}" for n in names)]
    for label, key, fmt in rows:
        cells = "".join(f"{fmt.format(results[n][key]):>12}" for n in names)
        lines.append(f"{label:32}{cells}")
    if "ratio" in out:
        lines.append(f"ratio (tacitly / TRL pairs/s): {out['ratio']:.2f} (target ≥ 1.5)")
        lines.append(
            f"accuracy difference {out['accuracy_diff']:+.3f}, "
            f"95% CI {out['accuracy_diff_ci95'][0]:+.3f} … {out['accuracy_diff_ci95'][1]:+.3f}"
        )
    lines.append(" ".join(f"{k} {v}" for k, v in out["versions"].items()))
    print("\n".join(lines), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    if args.worker:
        worker_main(args)
        return None
    from tacitly.backbones import load_tokenizer
    from tacitly.data import load_preferences

    started = time.perf_counter()
    tokenizer = load_tokenizer()
    source = {"data_dir": args.data_dir} if args.data_dir else {}
    train_rows = load_preferences("hh-rlhf", split="train", **source)["train"]
    test_rows = load_preferences("hh-rlhf", split="test", **source)["test"]
    fit = {"max_length": args.max_length}
    train, train_skipped = pairs_that_fit(train_rows, tokenizer, limit=args.pairs, **fit)
    test, test_skipped = pairs_that_fit(test_rows, tokenizer, limit=args.test_pairs, **fit)
    names = [args.only] if args.only else list(TRAINERS)
    with tempfile.TemporaryDirectory(prefix="reward-speed-") as folder:
        workdir = Path(folder)
        rows = workdir / "rows.json"
        rows.write_text(json.dumps({"train": train, "test": test}))
        results = {name: launch(name, args, rows, workdir) for name in names}
    out = summary(
        args,
        results,
        n_train=len(train),
        n_test=len(test),
        skipped={"train": train_skipped, "test": test_skipped},
    )
    out["total_s"] = round(time.perf_counter() - started, 1)
    print_table(out, results)
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
