"""Tests of the pairwise reward-model trainer, on a tiny bag-of-words reward model."""

from __future__ import annotations

import json
import math
import random
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from tacitly.data import load_preferences
from tacitly.errors import InputError
from tacitly.rewards.training import (
    LengthGroupedSampler,
    PairwiseTrainingConfig,
    bradley_terry_loss,
    evaluate_pairwise,
    latest_checkpoint,
    length_balanced_weights,
    make_scheduler,
    train_pairwise,
)

# -- a reward model small enough to train in milliseconds ----------------------------------


class BagOfWords(nn.Module):
    """Reward = linear head over the mean embedding of hashed words of prompt and response."""

    def __init__(self, *, buckets: int = 128, dim: int = 8, dropout: float = 0.0, seed: int = 0):
        super().__init__()
        self.settings = {"buckets": buckets, "dim": dim, "dropout": dropout, "seed": seed}
        self.embedding = nn.EmbeddingBag(buckets, dim, mode="mean")
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, 1)
        init = torch.Generator().manual_seed(seed)
        for parameter in self.parameters():
            nn.init.normal_(parameter, std=0.1, generator=init)

    def forward(self, *, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embedding(ids, offsets))).squeeze(-1)

    def _encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        buckets = self.settings["buckets"]
        words = [[zlib.crc32(w.encode()) % buckets for w in t.lower().split()] for t in texts]
        lengths = torch.tensor([len(w) for w in words])
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
        return {"ids": torch.tensor([i for w in words for i in w]), "offsets": offsets}

    def collate(self, rows: list[Mapping[str, Any]]) -> dict[str, Any]:
        def text(row: Mapping[str, Any], side: str) -> str:
            return " ".join(turn["content"] for turn in [*row["prompt"], *row[side]])

        return {
            "chosen": self._encode([text(row, "chosen") for row in rows]),
            "rejected": self._encode([text(row, "rejected") for row in rows]),
            "margin": None,
        }

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        return (p for p in self.parameters() if p.requires_grad)

    def save_pretrained(self, directory: str | Path) -> None:
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(self.settings))
        save_file(
            {k: v.contiguous() for k, v in self.state_dict().items()}, folder / "model.safetensors"
        )

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> BagOfWords:
        folder = Path(directory)
        model = cls(**json.loads((folder / "config.json").read_text()))
        model.load_state_dict(load_file(folder / "model.safetensors"))
        return model


GOOD = ["clear", "correct", "helpful", "precise", "kind", "accurate", "thorough", "honest"]
BAD = ["wrong", "rude", "vague", "false", "sloppy", "careless", "misleading", "confused"]
FILLER = [
    "the",
    "a",
    "answer",
    "is",
    "here",
    "so",
    "and",
    "then",
    "about",
    "it",
    "this",
    "that",
    "we",
    "you",
]


def turn(role: str, text: str) -> list[dict[str, str]]:
    return [{"role": role, "content": text}]


def separable_rows(n: int, *, seed: int, flip: bool = False) -> list[dict[str, Any]]:
    """Chosen answers use GOOD words, rejected ones BAD words (swapped when ``flip``)."""
    rng = random.Random(seed)

    def answer(words: list[str]) -> str:
        return " ".join(rng.sample(words, 2) + rng.sample(FILLER, 4))

    rows = []
    for index in range(n):
        good, bad = answer(GOOD), answer(BAD)
        if flip:
            good, bad = bad, good
        rows.append(
            {
                "prompt": turn("user", f"question {index} {rng.choice(FILLER)}"),
                "chosen": turn("assistant", good),
                "rejected": turn("assistant", bad),
                "margin": None,
                "weight": None,
                "meta": {"id": f"row-{index}"},
            }
        )
    return rows


def config_for(folder: Path, **overrides: Any) -> PairwiseTrainingConfig:
    settings: dict[str, Any] = {
        "learning_rate": 0.05,
        "batch_size": 4,
        "epochs": 2,
        "logging_steps": 5,
        "lr_scheduler_type": "constant",
        "output_dir": str(folder),
        "progress": False,
        "seed": 3,
    }
    settings.update(overrides)
    return PairwiseTrainingConfig(**settings)


def flat_parameters(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


# -- the loss --------------------------------------------------------------------------------

# log(1 + e^-1) and log(1 + e^1)
SOFTPLUS_M1 = 0.31326168751822286
SOFTPLUS_P1 = 1.3132616875182228


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({}, (SOFTPLUS_M1 + SOFTPLUS_P1) / 2, id="plain"),
        # margins 1 and -1 shift the differences 1, -1 to 0, 0
        pytest.param({"margin": torch.tensor([1.0, -1.0])}, math.log(2), id="margin"),
        pytest.param({"weight": torch.tensor([1.0, 0.0])}, SOFTPLUS_M1 / 2, id="weight"),
        # mean((2 + 1)^2, (0 + 1)^2) = 5, times 0.5
        pytest.param(
            {"center_rewards_coefficient": 0.5},
            (SOFTPLUS_M1 + SOFTPLUS_P1) / 2 + 2.5,
            id="centring",
        ),
    ],
)
def test_bradley_terry_loss_hand_computed(kwargs: dict[str, Any], expected: float) -> None:
    chosen, rejected = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    loss = bradley_terry_loss(chosen, rejected, **kwargs)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_row_margins_and_weights_reach_the_loss(tmp_path: Path) -> None:
    rows = separable_rows(8, seed=0)
    for row in rows:
        row["weight"] = 0.0
    model = BagOfWords()
    before = flat_parameters(model)
    config = config_for(tmp_path, use_weight=True, use_margin=True, epochs=1)
    result = train_pairwise(model, rows, config=config)
    # every pair weighs nothing: zero gradients, and AdamW without decay does not move
    assert torch.equal(flat_parameters(result.model), before)
    assert result.history[-1]["train_loss"] == 0.0


# -- the schedule ----------------------------------------------------------------------------


def test_cosine_with_min_lr_warms_up_then_ends_at_the_floor() -> None:
    weight = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([weight], lr=2.0)
    config = PairwiseTrainingConfig(
        learning_rate=2.0,
        lr_scheduler_type="cosine_with_min_lr",
        min_lr_ratio=0.7,
        warmup_ratio=0.1,
    )
    scheduler = make_scheduler(optimizer, config=config, num_training_steps=20)
    rates = [scheduler.get_last_lr()[0]]
    for _ in range(20):
        optimizer.step()
        scheduler.step()
        rates.append(scheduler.get_last_lr()[0])
    assert rates[0] == 0.0  # warmup starts at 0 ...
    assert rates[1] == pytest.approx(1.0)  # ... and reaches the peak after ceil(0.1 × 20) steps
    assert rates[2] == pytest.approx(2.0)
    assert rates[-1] == pytest.approx(1.4)  # 0.7 × 2.0
    assert min(rates[2:]) == pytest.approx(1.4)


def test_training_schedule_ends_at_min_lr(tmp_path: Path) -> None:
    config = config_for(
        tmp_path, lr_scheduler_type="cosine_with_min_lr", min_lr_ratio=0.7, warmup_ratio=0.1
    )
    result = train_pairwise(BagOfWords(), separable_rows(20, seed=1), config=config)
    assert result.history[-1]["step"] == 10
    assert result.history[-1]["learning_rate"] == pytest.approx(0.7 * 0.05)


# -- gradient accumulation -------------------------------------------------------------------


def test_accumulating_two_half_batches_equals_one_full_batch(tmp_path: Path) -> None:
    rows = separable_rows(16, seed=2)
    # A huge epsilon makes AdamW's step proportional to the gradient (Adam is otherwise
    # blind to its scale), so a wrong accumulation scale would show.
    common = {"max_steps": 2, "adam_epsilon": 1e3, "learning_rate": 100.0, "max_grad_norm": None}
    accumulated = train_pairwise(
        BagOfWords(),
        rows,
        config=config_for(tmp_path / "acc", batch_size=4, gradient_accumulation_steps=2, **common),
    )
    whole = train_pairwise(
        BagOfWords(), rows, config=config_for(tmp_path / "whole", batch_size=8, **common)
    )
    moved = flat_parameters(whole.model) - flat_parameters(BagOfWords())
    assert moved.abs().max() > 1e-3  # the steps did something measurable
    torch.testing.assert_close(
        flat_parameters(accumulated.model), flat_parameters(whole.model), atol=1e-6, rtol=0
    )
    assert accumulated.history[-1]["train_loss"] == pytest.approx(
        whole.history[-1]["train_loss"], abs=1e-6
    )


# -- learning, best checkpoint, reports ------------------------------------------------------


def test_training_learns_and_writes_its_reports(tmp_path: Path) -> None:
    config = config_for(tmp_path, epochs=3, save_total_limit=2, progress=True)
    result = train_pairwise(
        BagOfWords(),
        separable_rows(40, seed=4),
        config=config,
        valid_rows=separable_rows(20, seed=5),
        test_rows=separable_rows(20, seed=6),
    )
    assert result.completed
    assert result.metrics["val_accuracy"] >= 0.9
    assert result.metrics["test_accuracy"] >= 0.9
    low, high = result.metrics["test_accuracy_ci95"]
    assert low <= result.metrics["test_accuracy"] <= high

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_accuracy"] == result.metrics["test_accuracy"]
    assert metrics["config"]["batch_size"] == 4
    assert [entry["step"] for entry in metrics["history"]] == [5, 10, 15, 20, 25, 30]
    assert metrics["n_train"] == 40 and metrics["train_pairs_per_second"] > 0
    with Image.open(tmp_path / "training_curve.png") as image:
        assert image.size == (640, 400)
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == [
        "checkpoint-25",
        "checkpoint-30",
    ]
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-30"


def test_best_checkpoint_is_chosen_by_validation_accuracy(tmp_path: Path) -> None:
    # Validation pairs with swapped labels: the more the model learns, the worse it scores
    # there, so the best checkpoint is the first evaluation, not the last.
    valid = separable_rows(20, seed=7, flip=True)
    config = config_for(tmp_path, epochs=3, logging_steps=2)
    result = train_pairwise(
        BagOfWords(), separable_rows(40, seed=8), config=config, valid_rows=valid
    )
    accuracies = [entry["val_accuracy"] for entry in result.history]
    best = max(range(len(accuracies)), key=lambda i: (accuracies[i], -i))
    assert result.metrics["best_step"] == result.history[best]["step"]
    assert result.metrics["best_step"] < result.history[-1]["step"]
    assert accuracies[-1] < accuracies[best]
    reloaded = BagOfWords.from_pretrained(tmp_path / "best")
    assert evaluate_pairwise(reloaded, valid).accuracy == accuracies[best]
    assert evaluate_pairwise(result.model, valid).accuracy == accuracies[best]


def test_demo_set_trains_end_to_end(tmp_path: Path) -> None:
    demo = load_preferences("demo")
    result = train_pairwise(
        BagOfWords(),
        demo["train"],
        config=config_for(tmp_path, epochs=1),
        valid_rows=demo["validation"],
        test_rows=demo["test"],
    )
    assert result.metrics["n_test"] == len(demo["test"])
    assert 0.0 <= result.metrics["test_accuracy"] <= 1.0


# -- resuming --------------------------------------------------------------------------------


def test_resumed_run_equals_uninterrupted_run(tmp_path: Path) -> None:
    # 40 pairs in batches of 4, two per step: 5 steps an epoch; stopping at step 7 is
    # mid-epoch and between evaluations. Dropout checks that the RNG states come back too.
    train, valid, test = (separable_rows(n, seed=s) for n, s in ((40, 9), (12, 10), (12, 11)))
    settings = {
        "epochs": 3,
        "gradient_accumulation_steps": 2,
        "logging_steps": 3,
        "lr_scheduler_type": "cosine",
        "warmup_ratio": 0.2,
    }

    def run(folder: Path, **more: Any) -> Any:
        config = config_for(folder, **settings, **more)
        return train_pairwise(
            BagOfWords(dropout=0.3), train, config=config, valid_rows=valid, test_rows=test
        )

    whole = run(tmp_path / "whole")
    stopped = run(tmp_path / "parts", stop_after_steps=7)
    assert not stopped.completed and stopped.metrics["step"] == 7
    assert latest_checkpoint(tmp_path / "parts") == tmp_path / "parts" / "checkpoint-7"
    resumed = run(tmp_path / "parts", resume=True)

    assert resumed.completed
    assert resumed.history == whole.history
    torch.testing.assert_close(
        flat_parameters(resumed.model), flat_parameters(whole.model), atol=0, rtol=0
    )
    for key in ("best_step", "val_accuracy", "test_accuracy", "test_loss"):
        assert resumed.metrics[key] == whole.metrics[key]


# -- batching, length balance and learning-rate groups ------------------------------------


def test_length_grouped_batches_hold_similar_lengths() -> None:
    lengths = [random.Random(k).randrange(1, 1000) for k in range(40)]
    sampler = LengthGroupedSampler(lengths, batch_size=4, seed=1, window=5)
    first = list(sampler)
    assert sorted(first) == list(range(40))
    # windows of 20 rows, each sorted longest first; the longest window leads
    for start in (0, 20):
        window = [lengths[i] for i in first[start : start + 20]]
        assert window == sorted(window, reverse=True)
    assert lengths[first[0]] == max(lengths)
    assert list(sampler) == first  # same epoch, same order
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_length_balanced_weights_equalise_the_two_groups() -> None:
    def row(chosen: str, rejected: str) -> dict[str, Any]:
        return {
            "prompt": [],
            "chosen": turn("assistant", chosen),
            "rejected": turn("assistant", rejected),
        }

    rows = [row("aaaa", "a"), row("aaa", "a"), row("aaa", "aa"), row("a", "aaaa"), row("ab", "cd")]
    weights = length_balanced_weights(rows)
    # 3 longer, 1 shorter: each group sums to (3 + 1) / 2 = 2; the equal pair keeps 1
    assert weights == pytest.approx([2 / 3, 2 / 3, 2 / 3, 2.0, 1.0])
    assert length_balanced_weights(rows[:3]) == [1.0, 1.0, 1.0]


def test_length_balance_reaches_the_loss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tacitly.rewards.training as training

    rows = separable_rows(8, seed=4)
    for index, row in enumerate(rows):
        # the chosen answer is longer in the first 6 pairs, shorter in the last 2
        side = "chosen" if index < 6 else "rejected"
        row[side][0]["content"] += " more words here"
    seen: list[torch.Tensor] = []

    def recording_loss(*args: Any, **kwargs: Any) -> torch.Tensor:
        seen.append(kwargs["weight"])
        return bradley_terry_loss(*args, **kwargs)

    monkeypatch.setattr(training, "bradley_terry_loss", recording_loss)
    config = config_for(tmp_path, length_balance=True, epochs=1, batch_size=8)
    train_pairwise(BagOfWords(), rows, config=config)
    # each group sums to 4: six pairs of 2/3, two of 2
    assert sorted(seen[0].tolist()) == pytest.approx([2 / 3] * 6 + [2.0] * 2)


class TwoGroups(BagOfWords):
    """A bag of words whose head counts as a 'new module' with its own learning rate."""

    def parameter_groups(
        self, *, learning_rate: float, new_modules_learning_rate: float | None = None
    ) -> list[dict[str, Any]]:
        rate = learning_rate if new_modules_learning_rate is None else new_modules_learning_rate
        return [
            {"params": [self.embedding.weight], "lr": learning_rate},
            {"params": list(self.head.parameters()), "lr": rate},
        ]


def test_new_modules_get_their_own_learning_rate(tmp_path: Path) -> None:
    from tacitly.rewards.training import _optimizer

    config = config_for(tmp_path, learning_rate=0.01, new_modules_learning_rate=0.5)
    optimizer = _optimizer(TwoGroups(), config)
    rates = sorted((g["lr"], sum(p.numel() for p in g["params"])) for g in optimizer.param_groups)
    # embedding 128 x 8 at 0.01; head weight 8 and bias 1 at 0.5
    assert rates == [(0.01, 1024), (0.5, 1), (0.5, 8)]
    with pytest.raises(InputError, match="parameter_groups"):
        _optimizer(BagOfWords(), config)


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"lr_scheduler_type": "cosine_forever"}, "lr_scheduler_type", id="scheduler"),
        pytest.param({"batch_size": 0}, "batch_size", id="batch-size"),
        pytest.param({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps", id="acc"),
        pytest.param({"min_lr_ratio": 1.5}, "min_lr_ratio", id="min-lr"),
        pytest.param({"warmup_ratio": -0.1}, "warmup_ratio", id="warmup"),
        pytest.param({"mixed_precision": "fp8"}, "mixed_precision", id="precision"),
        pytest.param({"max_steps": 0}, "max_steps", id="max-steps"),
    ],
)
def test_bad_config_is_an_input_error(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as error:
        PairwiseTrainingConfig(**overrides)
    assert error.value.field == field


def test_config_fields_carry_help() -> None:
    help_texts = PairwiseTrainingConfig.help()
    assert "min_lr_ratio" in help_texts and all(help_texts.values())


def test_bad_training_calls(tmp_path: Path) -> None:
    rows = separable_rows(8, seed=12)
    with pytest.raises(InputError, match="no pairs"):
        train_pairwise(BagOfWords(), [], config=config_for(tmp_path / "a"))
    with pytest.raises(InputError, match="row 2"):
        train_pairwise(BagOfWords(), [rows[0], {"prompt": []}], config=config_for(tmp_path / "b"))
    with pytest.raises(TypeError, match="collate"):
        train_pairwise(nn.Linear(2, 1), rows, config=config_for(tmp_path / "c"))
    with pytest.raises(InputError, match="resume"):
        train_pairwise(BagOfWords(), rows, config=config_for(tmp_path / "d", resume=str(tmp_path)))

    train_pairwise(BagOfWords(), rows, config=config_for(tmp_path / "e", epochs=1))
    with pytest.raises(InputError, match="earlier run"):
        train_pairwise(BagOfWords(), rows, config=config_for(tmp_path / "e", epochs=1))
    again = config_for(tmp_path / "e", epochs=1, overwrite_output_dir=True)
    assert train_pairwise(BagOfWords(), rows, config=again).completed
