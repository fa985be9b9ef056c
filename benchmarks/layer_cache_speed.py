"""Training speed of a gaze reward model with gaze entering at layer k (lower layers cached).

Trains the same model on the same pre-collated batches for two epochs, once whole (gaze at the
embeddings, LoRA on every layer) and once per split layer k (gaze at layer k, LoRA on layers
>= k, the output of layers < k computed once per conversation and cached), and prints one JSON
line per variant plus a summary line. Epoch 1 of a split model fills the cache; from epoch 2 on
every step runs only the upper layers. Tokenisation and gaze prediction are done before any
timing, identically for every variant.

    .venv/bin/python benchmarks/layer_cache_speed.py                 # HH-RLHF, 64 pairs
    .venv/bin/python benchmarks/layer_cache_speed.py --layers 15 24 28 --mode baseline
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

import torch

from tacitly.data import load_preferences
from tacitly.rewards.gaze import GazeRewardConfig, GazeRewardModel
from tacitly.rewards.training import bradley_terry_loss


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="hh-rlhf")
    parser.add_argument("--pairs", type=int, default=64, help="training pairs (default: 64)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--mode", default="add", choices=("baseline", "concat", "add"))
    parser.add_argument("--layers", type=int, nargs="+", default=[15, 24])
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def _rows(dataset: str, n: int, max_length: int) -> list[Any]:
    """The first ``n`` training pairs whose both sides fit ``max_length`` tokens."""
    probe = GazeRewardModel(GazeRewardConfig(mode="baseline", max_length=None))
    rows = []
    for row in load_preferences(dataset, split="train"):
        batch = probe.collate([row])
        lengths = [int(batch[side]["attention_mask"].sum()) for side in ("chosen", "rejected")]
        if max(lengths) <= max_length:
            rows.append(row)
        if len(rows) == n:
            break
    return rows


def _time_epochs(model: GazeRewardModel, batches: list[dict[str, Any]], epochs: int) -> list[float]:
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=5e-5)
    model.train()
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        for batch in batches:
            loss = bradley_terry_loss(model(**batch["chosen"]), model(**batch["rejected"]))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        seconds.append(time.perf_counter() - started)
    return seconds


def _variant(args: argparse.Namespace, rows: list[Any], layer: int | None) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    config = GazeRewardConfig(mode=args.mode, max_length=args.max_length, inject_layer=layer)
    model = GazeRewardModel(config)
    if config.uses_gaze:
        model.fit_feature_scaling(rows)
    batches = [
        model.collate(rows[i : i + args.batch_size]) for i in range(0, len(rows), args.batch_size)
    ]
    first, second = _time_epochs(model, batches, epochs=2)
    cache = model.lower_cache
    cached_mb = 0.0
    if cache is not None:
        cached_mb = sum(t.numel() * 4 for t in cache._states.values()) / 2**20
    trainable = sum(p.numel() for p in model.trainable_parameters())
    return {
        "inject_layer": layer,
        "epoch1_pairs_per_s": len(rows) / first,
        "epoch2_pairs_per_s": len(rows) / second,
        "trainable_parameters": trainable,
        "cache_mb": round(cached_mb, 1),
    }


def main() -> None:
    args = _arguments()
    torch.manual_seed(args.seed)
    rows = _rows(args.dataset, args.pairs, args.max_length)
    whole = _variant(args, rows, None)
    print(json.dumps(whole), flush=True)
    results = [whole]
    for layer in args.layers:
        split = _variant(args, rows, layer)
        split["speedup_epoch1"] = split["epoch1_pairs_per_s"] / whole["epoch1_pairs_per_s"]
        split["speedup_epoch2"] = split["epoch2_pairs_per_s"] / whole["epoch2_pairs_per_s"]
        print(json.dumps(split), flush=True)
        results.append(split)
    summary = {
        "dataset": args.dataset,
        "pairs": len(rows),
        "mode": args.mode,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "speedup_epoch2": {str(r["inject_layer"]): r.get("speedup_epoch2") for r in results[1:]},
    }
    print(json.dumps(summary), flush=True)
    print(
        "\n".join(
            f"k={r['inject_layer']}: {r['epoch1_pairs_per_s']:.2f} / "
            f"{r['epoch2_pairs_per_s']:.2f} pairs/s (epoch 1 / 2)"
            for r in results
        ),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
