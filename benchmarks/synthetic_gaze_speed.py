"""Words per second of the shipped eye-tracking predictors on 10,000 words of varied text.

The text is built deterministically (seed 0) from wordfreq's 20,000 most frequent English words,
drawn with Zipf-like weights into sentences of 5–60 words with punctuation, so that short,
long, frequent and rare words and short and long texts all occur. The result cache is disabled
and the model is loaded (and warmed up on one sentence) before timing. Targets: version 1
≥ 1,000 words/s, version 2 ≥ 3,000 words/s. One JSON line per version, ratio to target first.

Usage::

    .venv/bin/python benchmarks/synthetic_gaze_speed.py [--words 10000] [--versions 1 2]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from wordfreq import top_n_list

from tacitly.signals.synthetic import GazePredictor

TARGETS = {1: 1000.0, 2: 3000.0}


def varied_texts(n_words: int, *, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    vocabulary = top_n_list("en", 20_000)
    weights = 1.0 / np.arange(1, len(vocabulary) + 1) ** 0.8
    weights /= weights.sum()
    texts: list[list[str]] = []
    total = 0
    while total < n_words:
        length = int(min(rng.integers(5, 61), n_words - total))
        words = [vocabulary[i] for i in rng.choice(len(vocabulary), size=length, p=weights)]
        words[0] = words[0].capitalize()
        for position in rng.choice(length, size=length // 8, replace=False):
            words[position] += ","
        words[-1] += "."
        texts.append(words)
        total += length
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=10_000)
    parser.add_argument("--versions", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    args = parser.parse_args()
    torch.set_num_threads(2)
    texts = varied_texts(args.words)
    n_words = sum(len(text) for text in texts)
    for version in args.versions:
        predictor = GazePredictor(version, cache=None)
        predictor.predict_words([["A", "warm-up", "sentence."]])
        started = time.perf_counter()
        values = predictor.predict_words(texts)
        seconds = time.perf_counter() - started
        assert sum(len(v) for v in values) == n_words
        speed = n_words / seconds
        print(
            json.dumps(
                {
                    "ratio_to_target": round(speed / TARGETS[version], 2),
                    "version": version,
                    "words_per_s": round(speed),
                    "target_words_per_s": TARGETS[version],
                    "seconds": round(seconds, 3),
                    "n_words": n_words,
                    "n_texts": len(texts),
                    "torch_threads": torch.get_num_threads(),
                }
            )
        )


if __name__ == "__main__":
    main()
