"""Follow-up likelihood reward: shared-context KV cache vs one forward pass per follow-up.

Scores the same HH-RLHF test conversations (prompt + chosen answer) twice with SmolLM2: through
:meth:`FollowupReward.followup_logprobs` (context once, all follow-ups against its cache) and
through :meth:`FollowupReward.naive_followup_logprobs` (one full forward pass per follow-up), and
prints one JSON line: ``ratio`` (naive time / cached time), ``max_abs_diff``, ``n`` first.

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
    parser.add_argument("--batch-size", type=int, default=8, help="conversations per pass (8)")
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


def _timed(function: Any, conversations: list[Any]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    scores = function(conversations)
    return scores, time.perf_counter() - start


def main() -> None:
    args = _arguments()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = load_preferences("hh-rlhf", split="test").rows[: args.conversations]
    conversations = [row["prompt"] + row["chosen"] for row in rows]
    config = FollowupRewardConfig(model_name=args.model, batch_size=args.batch_size)
    reward = FollowupReward(config, followups=_followups(args.per_aspect))
    reward.followup_logprobs(conversations[:1])  # warm-up: first-call allocations
    cached, cached_s = _timed(reward.followup_logprobs, conversations)
    naive, naive_s = _timed(reward.naive_followup_logprobs, conversations)
    encoded = reward._encode_all(conversations)
    context = [item.shared for item in encoded]
    suffix = [end - item.shared for item in encoded for _, end in item.scored]
    result = {
        "ratio": round(naive_s / cached_s, 2),
        "max_abs_diff": float(np.abs(cached - naive).max()),
        "n": len(conversations),
        "n_followups": len(reward.followups.texts),
        "cached_s": round(cached_s, 2),
        "naive_s": round(naive_s, 2),
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
