"""Follow-up likelihood reward (FLR): accuracy and rating correlation, next to baselines.

Pairwise accuracy (RewardBench rule: a tie is wrong; bootstrap 95% interval) on Auto-J
(non-tie) and HH-RLHF (harmless-base) test pairs, and Spearman / Kendall τ-b / Pearson with the
Vicuna-bench GPT-4 rubric scores, for every FLR variant and aspect and three baselines:
longer-response-wins, the response's own mean log-likelihood given the prompt, and a seeded
coin. Every follow-up log-probability matrix is computed once per conversation (through
``FollowupReward``'s cached path) and kept on disk; all variants are derived from it by the
reward's own methods, so a rerun is instant.

    .venv/bin/python benchmarks/flr_accuracy.py                  # defaults below
    .venv/bin/python benchmarks/flr_accuracy.py --pairs 64 --vicuna-questions 40 --per-aspect 20
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tacitly.data import load_preferences, load_vicuna_ratings
from tacitly.evaluate import accuracy_report, score_correlations
from tacitly.rewards.followup import (
    AspectFollowups,
    FollowupReward,
    FollowupRewardConfig,
    FollowupSet,
    load_followups,
)

Messages = list[dict[str, str]]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=40, help="test pairs per set (40)")
    parser.add_argument(
        "--train-pairs", type=int, default=24, help="train pairs per set for fitting (24)"
    )
    parser.add_argument(
        "--vicuna-questions",
        type=int,
        default=20,
        help="Vicuna-bench questions, each with all 4 models' responses (20)",
    )
    parser.add_argument(
        "--per-aspect", type=int, default=4, help="follow-ups per aspect, half positive (4)"
    )
    parser.add_argument("--max-length", type=int, default=1024, help="token limit (1024)")
    parser.add_argument("--seed", type=int, default=0, help="row sampling and coin seed (0)")
    parser.add_argument("--batch-size", type=int, default=4, help="conversations per pass (4)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("--cache", default="/tmp/flr_accuracy", help="matrix cache folder")
    parser.add_argument("--model", default=None, help="causal LM (default: embedded SmolLM2)")
    parser.add_argument("--json", default=None, help="also write the JSON result here")
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


def _log(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# ------------------------------------------------------------------------------ matrix cache


class MatrixCache:
    """Memoises the reward's cached path: mean log-prob and token count per follow-up.

    Installed over ``reward._cached_scores``, so every method of the reward (compare, score,
    the PMI baseline, the fits) reads the same matrices; ``reduction="sum"`` is the stored mean
    times the stored count, the same number the model would give up to rounding.
    """

    def __init__(self, reward: FollowupReward, path: Path, *, chunk: int) -> None:
        self.reward, self.path, self.chunk = reward, path, chunk
        self.original: Callable[[Sequence[Any]], np.ndarray] = reward._cached_scores
        self.rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if path.exists():
            stored = np.load(path)
            for key, mean, count in zip(
                stored["keys"], stored["means"], stored["counts"], strict=True
            ):
                self.rows[str(key)] = (mean, count)
        self.computed = 0
        reward._cached_scores = self  # type: ignore[method-assign]

    @staticmethod
    def key(item: Any) -> str:
        context = np.asarray(item.rows[0][: item.shared], dtype=np.int64).tobytes()
        return hashlib.sha1(context + str(len(item.rows)).encode()).hexdigest()

    def __call__(self, encoded: Sequence[Any]) -> np.ndarray:
        missing = {self.key(item): item for item in encoded if self.key(item) not in self.rows}
        items = list(missing.values())
        reduction = self.reward.config.reduction
        self.reward.config.reduction = "mean"
        try:
            for begin in range(0, len(items), self.chunk):
                part = items[begin : begin + self.chunk]
                means = self.original(part)
                for item, mean in zip(part, means, strict=True):
                    counts = np.array([end - start for start, end in item.scored], float)
                    self.rows[self.key(item)] = (mean, counts)
                self.computed += len(part)
                self.save()
                _log(f"follow-up matrices: {begin + len(part)}/{len(items)} new conversations")
        finally:
            self.reward.config.reduction = reduction
        means = np.stack([self.rows[self.key(item)][0] for item in encoded])
        if reduction == "sum":
            means = means * np.stack([self.rows[self.key(item)][1] for item in encoded])
        return means

    def save(self) -> None:
        keys = list(self.rows)
        temporary = self.path.with_suffix(".tmp.npz")
        np.savez(
            temporary,
            keys=np.array(keys),
            means=np.stack([self.rows[k][0] for k in keys]),
            counts=np.stack([self.rows[k][1] for k in keys]),
        )
        temporary.replace(self.path)


# ------------------------------------------------------------------------------ baselines


class ResponseLoglik:
    """Mean log-probability of the response's tokens given the prompt (chat template), cached.

    Earlier tokens are cut from the left to ``max_length``, as the reward does.
    """

    def __init__(self, reward: FollowupReward, path: Path, *, max_length: int) -> None:
        self.model, self.tokenizer, self.path = reward.model, reward.tokenizer, path
        self.max_length = max_length
        self.values: dict[str, float] = json.loads(path.read_text()) if path.exists() else {}

    def __call__(self, prompts: Sequence[Messages], responses: Sequence[Messages]) -> np.ndarray:
        out = []
        for index, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
            text = self.tokenizer.apply_chat_template(prompt + response, tokenize=False)
            key = hashlib.sha1(text.encode()).hexdigest()
            if key not in self.values:
                self.values[key] = self._mean_logprob(prompt, text)
                if index % 16 == 15:
                    self.path.write_text(json.dumps(self.values))
            out.append(self.values[key])
        self.path.write_text(json.dumps(self.values))
        return np.array(out)

    def _mean_logprob(self, prompt: Messages, text: str) -> float:
        head = self.tokenizer.apply_chat_template(
            prompt, tokenize=False, add_generation_prompt=True
        )
        if not text.startswith(head):
            raise ValueError("the chat template does not render the prompt as a prefix")
        end = text.rfind("<|im_end|>") if text.rstrip().endswith("<|im_end|>") else len(text)
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = np.asarray(encoded["offset_mapping"]).reshape(-1, 2)
        inside = np.flatnonzero((offsets[:, 1] > len(head)) & (offsets[:, 0] < end))
        first, last = int(inside[0]), int(inside[-1]) + 1
        cut = max(0, last - self.max_length)
        ids = torch.tensor([encoded["input_ids"][cut:last]])
        first = max(first - cut, 1)
        with torch.inference_mode():
            hidden = self.model.get_decoder()(input_ids=ids).last_hidden_state[0]
            logits = self.model.get_output_embeddings()(hidden[first - 1 : -1]).float()
        targets = ids[0, first:]
        chosen = logits.gather(-1, targets[:, None])[:, 0] - logits.logsumexp(-1)
        return float(chosen.mean())


def _token_lengths(reward: FollowupReward, responses: Sequence[Messages]) -> np.ndarray:
    texts = [" ".join(m["content"] for m in r) for r in responses]
    ids = reward.tokenizer(texts, add_special_tokens=False)["input_ids"]
    return np.array([len(i) for i in ids], dtype=float)


# ------------------------------------------------------------------------------ data


def _sample(rows: Sequence[Any], n: int, seed: int) -> list[Any]:
    order = np.random.default_rng(seed).permutation(len(rows))[: min(n, len(rows))]
    return [rows[i] for i in sorted(order)]


def _fitting(reward: FollowupReward, splits: Any, limit: int) -> dict[str, list[Any]]:
    kept = {}
    for split in ("test", "train"):
        rows = splits[split]
        longest = np.maximum(
            _token_lengths(reward, [r["chosen"] for r in rows]),
            _token_lengths(reward, [r["rejected"] for r in rows]),
        )
        kept[split] = [r for r, n in zip(rows, longest, strict=True) if n <= limit]
    return kept


def _vicuna(questions: int, seed: int) -> list[Any]:
    rated = load_vicuna_ratings()
    ids = sorted({int(r["question_id"] or 0) for r in rated})
    keep = set(_sample(ids, questions, seed))
    return [r for r in rated if r["question_id"] in keep]


# ------------------------------------------------------------------------------ evaluation


def _pairwise(difference: np.ndarray, seed: int) -> dict[str, Any]:
    report = accuracy_report(difference, np.zeros_like(difference), n_boot=1000, seed=seed)
    return {"accuracy": report["accuracy"], "ci95": report["ci95"], "ties": report["ties"]}


def _correlation(scores: np.ndarray, ratings: np.ndarray) -> dict[str, Any]:
    result = score_correlations(scores, ratings)
    return {k: result[k] for k in ("spearman", "kendall_tau_b", "pearson", "spearman_p")}


def _pair_variants(
    reward: FollowupReward,
    test: Sequence[Any],
    train: Sequence[Any],
    loglik: ResponseLoglik,
    seed: int,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    prompts = [r["prompt"] for r in test]
    chosen, rejected = [r["chosen"] for r in test], [r["rejected"] for r in test]
    coin = np.random.default_rng(seed).random(len(test)) < 0.5
    rows: dict[str, np.ndarray] = {
        "random (seeded coin)": np.where(coin, 1.0, -1.0),
        "longer response wins": _token_lengths(reward, chosen) - _token_lengths(reward, rejected),
        "response mean log-lik": loglik(prompts, chosen) - loglik(prompts, rejected),
    }
    plain = reward.compare_aspects(test)
    rows["FLR mean (plain)"] = plain["reward"].to_numpy()
    for aspect in reward.aspects:
        rows[f"  aspect: {aspect}"] = plain[aspect].to_numpy()
    rows["FLR PMI (= plain pairwise)"] = rows["FLR mean (plain)"]
    reward.config.reduction = "sum"
    rows["FLR sum"] = reward.compare(test)
    reward.config.reduction = "mean"
    fitted: dict[str, Any] = {"length_slope": reward.fit_length_slope(train)}
    rows["FLR length-normalised"] = reward.compare(test)
    reward.config.length_slope = None
    fitted["weights"] = reward.fit_aspect_weights(train)
    rows["FLR fitted aspect weights"] = reward.compare(test)
    reward.config.weights = None
    return {name: _pairwise(d, seed) for name, d in rows.items()}, fitted


def _vicuna_variants(
    reward: FollowupReward,
    rated: Sequence[Any],
    loglik: ResponseLoglik,
    fitted: dict[str, Any],
    seed: int,
) -> dict[str, dict[str, Any]]:
    prompts, responses = [r["prompt"] for r in rated], [r["response"] for r in rated]
    ratings = np.array([r["score"] for r in rated], dtype=float)
    scores: dict[str, np.ndarray] = {
        "random (seeded coin)": np.random.default_rng(seed).random(len(rated)),
        "longer response wins": _token_lengths(reward, responses),
        "response mean log-lik": loglik(prompts, responses),
    }
    plain = reward.score_aspects(prompts, responses)
    scores["FLR mean (plain)"] = plain["reward"].to_numpy()
    for aspect in reward.aspects:
        scores[f"  aspect: {aspect}"] = plain[aspect].to_numpy()
    reward.config.calibration = "pmi"
    pmi = reward.score_aspects(prompts, responses)
    reward.config.calibration = "none"
    scores["FLR PMI (= plain pairwise)"] = pmi["reward"].to_numpy()
    for aspect in reward.aspects:
        scores[f"  PMI aspect: {aspect}"] = pmi[aspect].to_numpy()
    reward.config.reduction = "sum"
    scores["FLR sum"] = reward.score(prompts, responses)
    reward.config.reduction = "mean"
    reward.config.length_slope = fitted["length_slope"]
    scores["FLR length-normalised"] = reward.score(prompts, responses)
    reward.config.length_slope = None
    reward.config.weights = fitted["weights"]
    scores["FLR fitted aspect weights"] = reward.score(prompts, responses)
    reward.config.weights = None
    return {name: _correlation(s, ratings) for name, s in scores.items()}


def _table(
    autoj: dict[str, Any], hh: dict[str, Any], vicuna: dict[str, Any], n: dict[str, int]
) -> str:
    def acc(result: dict[str, Any] | None) -> str:
        if result is None:
            return ""
        low, high = result["ci95"]
        return f"{result['accuracy']:.3f} [{low:.2f}, {high:.2f}]"

    def corr(value: float | None) -> str:
        return "" if value is None else f"{value:+.3f}"

    lines = [
        f"| variant | Auto-J acc (n={n['autoj']}) | HH-RLHF acc (n={n['hh']}) | "
        f"Vicuna Spearman (n={n['vicuna']}) | Kendall τ-b | Pearson |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in dict.fromkeys([*vicuna, *autoj]):
        v = vicuna.get(name)
        cells = [
            name.replace("  ", "↳ "),
            acc(autoj.get(name)),
            acc(hh.get(name)),
            corr(v and v["spearman"]),
            corr(v and v["kendall_tau_b"]),
            corr(v and v["pearson"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    args = _arguments()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    followups = _followups(args.per_aspect)
    config = FollowupRewardConfig(
        model_name=args.model, batch_size=args.batch_size, max_length=args.max_length
    )
    reward = FollowupReward(config, followups=followups)
    tag = hashlib.sha1(
        json.dumps([args.model, args.max_length, followups.texts]).encode()
    ).hexdigest()[:10]
    matrices = MatrixCache(reward, cache / f"followups-{tag}.npz", chunk=args.batch_size * 2)
    loglik = ResponseLoglik(reward, cache / f"loglik-{tag}.json", max_length=args.max_length)

    sets = {name: load_preferences(name) for name in ("autoj", "hh-rlhf")}
    # Responses that alone do not fit max_length cannot be scored (the reward refuses them).
    limit = args.max_length - 64
    fitting = {k: _fitting(reward, d.splits, limit) for k, d in sets.items()}
    test = {k: _sample(f["test"], args.pairs, args.seed) for k, f in fitting.items()}
    train = {k: _sample(f["train"], args.train_pairs, args.seed) for k, f in fitting.items()}
    too_long: dict[str, dict[str, int]] = {
        k: {split: len(d.splits[split]) - len(fitting[k][split]) for split in ("test", "train")}
        for k, d in sets.items()
    }
    sampled = _vicuna(args.vicuna_questions, args.seed)
    lengths = _token_lengths(reward, [r["response"] for r in sampled])
    rated = [r for r, n in zip(sampled, lengths, strict=True) if n <= limit]
    too_long["vicuna"] = {"sampled": len(sampled) - len(rated)}
    # Fill the cache in order of use, so an interrupted run keeps what the table needs first.
    for name, rows in [*test.items(), ("vicuna", rated), *train.items()]:
        _log(f"{name}: {len(rows)} rows")
        if name == "vicuna":
            neutral = {"role": "assistant", "content": config.neutral_response}
            conversations = [r["prompt"] + r["response"] for r in rated]
            conversations += [r["prompt"] + [neutral] for r in rated]
        else:
            conversations = [r["prompt"] + r[side] for r in rows for side in ("chosen", "rejected")]
        reward.followup_logprobs(conversations)

    pairwise, fits = {}, {}
    for name in sets:
        pairwise[name], fits[name] = _pair_variants(
            reward, test[name], train[name], loglik, args.seed
        )
    vicuna = _vicuna_variants(reward, rated, loglik, fits["autoj"], args.seed)
    n = {"autoj": len(test["autoj"]), "hh": len(test["hh-rlhf"]), "vicuna": len(rated)}
    print(_table(pairwise["autoj"], pairwise["hh-rlhf"], vicuna, n))
    result = {
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv]),
        "n": n,
        "train_pairs": {k: len(v) for k, v in train.items()},
        "excluded_too_long": too_long,
        "splits": {"pairs": "test", "fitting": "train (same dataset; Vicuna uses Auto-J's)"},
        "seed": args.seed,
        "followups": {
            "per_aspect": args.per_aspect,
            "n": len(followups.texts),
            "texts": list(followups.texts),
        },
        "max_length": args.max_length,
        "fits": fits,
        "pairwise": {"autoj": pairwise["autoj"], "hh-rlhf": pairwise["hh-rlhf"]},
        "vicuna": vicuna,
        "conversations_computed_now": matrices.computed,
        "seconds": round(time.perf_counter() - started, 1),
        "threads": torch.get_num_threads(),
    }
    text = json.dumps(result)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
