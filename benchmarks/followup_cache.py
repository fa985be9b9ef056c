"""Follow-up likelihood reward: shared-context KV cache vs one forward pass per follow-up.

Scores the same HH-RLHF test conversations (prompt + chosen answer) twice with SmolLM2: through
:meth:`FollowupReward.followup_logprobs` (context once, all follow-ups against its cache) and
through :meth:`FollowupReward.naive_followup_logprobs` (one full forward pass per follow-up), and
prints one JSON line: ``ratio`` (naive time / cached time), ``max_abs_diff``, ``n`` first.
The two paths alternate batch by batch (``--batch-size`` conversations each), so that changing
load on a shared machine affects both alike; ``cpu_ratio`` is the same ratio in process CPU
time.

    .venv/bin/python benchmarks/followup_cache.py                       # 16 conversations x 120
    .venv/bin/python benchmarks/followup_cache.py --conversations 4 --per-aspect 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import torch

from tacitly.data import load_preferences
from tacitly.rewards.followup import (
    AspectFollowups,
    FollowupReward,
    FollowupRewardConfig,
    FollowupSet,
    load_followups,
)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=16, help="HH-RLHF test rows (16)")
    parser.add_argument(
        "--per-aspect", type=int, default=20, help="follow-ups per aspect, half positive (20)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="conversations per pass and per timed turn (8)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("--model", default=None, help="causal LM (default: embedded SmolLM2)")
    return parser.parse_args()


def _followups(per_aspect: int) -> FollowupSet:
    shipped = load_followups()
    half = max(1, per_aspect // 2)
    return FollowupSet(
        {
            name: AspectFollowups(positive=aspect.positive[:half], negative=aspect.negative[:half])
            for name, aspect in shipped.aspects.items()
        }
    )


def _timed(function: Any, conversations: list[Any]) -> tuple[np.ndarray, float, float]:
    """Scores, wall-clock seconds and process CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    scores = function(conversations)
    return scores, time.perf_counter() - wall, time.process_time() - cpu


def _interleaved(
    reward: FollowupReward, conversations: list[Any], batch_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both paths batch by batch, alternating, so a change in machine load hits both alike.

    Returns the cached and naive scores and their ``[wall, cpu]`` seconds.
    """
    cached, naive = [], []
    cached_s, naive_s = np.zeros(2), np.zeros(2)
    for begin in range(0, len(conversations), batch_size):
        batch = conversations[begin : begin + batch_size]
        scores, wall, cpu = _timed(reward.followup_logprobs, batch)
        cached.append(scores)
        cached_s += (wall, cpu)
        scores, wall, cpu = _timed(reward.naive_followup_logprobs, batch)
        naive.append(scores)
        naive_s += (wall, cpu)
    return np.concatenate(cached), np.concatenate(naive), cached_s, naive_s


def main() -> None:
    args = _arguments()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = load_preferences("hh-rlhf", split="test").rows[: args.conversations]
    conversations: list[Any] = [row["prompt"] + row["chosen"] for row in rows]
    config = FollowupRewardConfig(model_name=args.model, batch_size=args.batch_size)
    reward = FollowupReward(config, followups=_followups(args.per_aspect))
    reward.followup_logprobs(conversations[:1])  # warm-up: first-call allocations
    cached, naive, (cached_s, cached_cpu), (naive_s, naive_cpu) = _interleaved(
        reward, conversations, args.batch_size
    )
    encoded = reward._encode_all(conversations)
    context = [item.shared for item in encoded]
    suffix = [end - item.shared for item in encoded for _, end in item.scored]
    result = {
        "ratio": round(naive_s / cached_s, 2),
        "max_abs_diff": float(np.abs(cached - naive).max()),
        "n": len(conversations),
        "n_followups": len(reward.followups.texts),
        "cpu_ratio": round(naive_cpu / cached_cpu, 2),
        "cached_s": round(cached_s, 2),
        "naive_s": round(naive_s, 2),
        "cached_cpu_s": round(cached_cpu, 2),
        "naive_cpu_s": round(naive_cpu, 2),
        "cached_conversations_per_s": round(len(conversations) / cached_s, 3),
        "naive_conversations_per_s": round(len(conversations) / naive_s, 3),
        "mean_context_tokens": round(float(np.mean(context)), 1),
        "mean_followup_tokens": round(float(np.mean(suffix)), 1),
        "threads": torch.get_num_threads(),
        "device": str(reward.device),
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
