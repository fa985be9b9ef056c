"""One training step, whole model vs gaze at layer k, interleaved so machine load hits both.

Builds two baseline reward models on the embedded SmolLM2 (whole: LoRA on every layer; split:
layers < k frozen and cached), collates the same 8 HH-RLHF training pairs for both, then times
forward and backward of the chosen side, alternating the two models ``--repeat`` times. The
split model's first repetition fills its cache (the lower layers run once); later ones reuse it.

    .venv/bin/python benchmarks/layer_cache_step.py --layer 24 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from tacitly.data import load_preferences
from tacitly.rewards.gaze import GazeRewardConfig, GazeRewardModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layer", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()
    rows = list(load_preferences("hh-rlhf", split="train"))[: args.pairs]
    models = {}
    for layer in (None, args.layer):
        torch.manual_seed(0)
        config = GazeRewardConfig(mode="baseline", max_length=args.max_length, inject_layer=layer)
        model = GazeRewardModel(config).train()
        models[layer] = (model, model.collate(rows)["chosen"])
    times: dict[str, list[float]] = {"whole": [], "split": []}
    for _ in range(args.repeat):
        for layer, (model, inputs) in models.items():
            started = time.perf_counter()
            model(**inputs).sum().backward()
            times["whole" if layer is None else "split"].append(time.perf_counter() - started)
    steady_whole = min(times["whole"][1:] or times["whole"])
    steady_split = min(times["split"][1:] or times["split"])
    print(
        json.dumps(
            {
                "speedup_cached": steady_whole / steady_split,
                "speedup_first_pass": times["whole"][0] / times["split"][0],
                "whole_s": times["whole"],
                "split_s": times["split"],
                "layer": args.layer,
                "tokens": list(models[None][1]["input_ids"].shape),
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
