"""The pairwise trainer shared by every neural reward model.

:func:`train_pairwise` fits a reward model on preference pairs with the Bradley–Terry loss
``-log σ(r_chosen - r_rejected)`` and writes into ``config.output_dir``:

* ``best/``: the model with the best validation accuracy (``save_pretrained``); without
  validation pairs, the final model;
* ``checkpoint-<step>/``: resumable training state (``accelerator.save_state`` plus
  ``trainer_state.json``), the last ``save_total_limit`` of them;
* ``metrics.json``: the configuration, the evaluation history, the best step, validation and
  test accuracy (RewardBench's rule: a tie counts as wrong) with a bootstrap 95% CI, training
  time and throughput;
* ``training_curve.png``: training loss and validation accuracy against the optimizer step.

It is built on ``accelerate``: the same call runs on a CPU, one GPU, or several GPUs under
``accelerate launch`` (DDP, or DeepSpeed ZeRO-2 with ``configs/accelerate_multi_gpu.yaml``).

The model contract
------------------
A reward model is an ``nn.Module`` with

* ``forward(**inputs) -> Tensor[B]``: one scalar reward per sequence;
* ``collate(rows) -> {"chosen": inputs, "rejected": inputs, "margin": Tensor[B] | None}``;
* ``save_pretrained(directory)`` and the classmethod ``from_pretrained(directory)``;
* ``trainable_parameters()``: the parameters to optimise.

Policies
--------
* Steps are optimizer steps (after gradient accumulation). ``max_steps > 0`` overrides
  ``epochs``, as in ``transformers.TrainingArguments``.
* Evaluation and checkpoints happen every ``logging_steps`` and at the last step. The best
  model is the first to reach the highest validation accuracy (a later tie does not replace it).
* The validation and test loss is the plain Bradley–Terry loss (no margin, weight or centring),
  so that it compares across configurations.
* Row weights (``use_weight``) multiply each pair's loss and the batch loss is their mean (not
  normalised by the weights' sum), so gradient accumulation stays exact; a missing weight is 1.
  A missing margin (``use_margin``) is 0.
* Shuffling is a permutation drawn from ``seed + epoch``, independent of the global random
  state, and every data loader has its own generator, so that evaluating does not shift the
  dropout masks that follow; with the random states that ``accelerate`` saves in a checkpoint,
  a resumed run repeats the uninterrupted one exactly.
* Weight decay applies to matrices only (not to biases or normalisation gains).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from os import PathLike
from pathlib import Path
from typing import Any, Literal, cast, get_args

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader, Dataset, Sampler

from tacitly.errors import InputError
from tacitly.evaluate.length import response_length
from tacitly.evaluate.metrics import bootstrap_ci, pairwise_accuracy, pairwise_correct

__all__ = [
    "SCHEDULERS",
    "EpochShuffleSampler",
    "LengthGroupedSampler",
    "PairwiseEvaluation",
    "PairwiseTrainingConfig",
    "TrainingResult",
    "bradley_terry_loss",
    "evaluate_pairwise",
    "latest_checkpoint",
    "length_balanced_weights",
    "make_scheduler",
    "pair_length",
    "train_pairwise",
]

logger = logging.getLogger(__name__)

Row = Mapping[str, Any]
MixedPrecision = Literal["no", "fp16", "bf16"]

#: Learning-rate schedules accepted by :class:`PairwiseTrainingConfig` (names as in
#: ``transformers.get_scheduler``).
SCHEDULERS: tuple[str, ...] = (
    "constant",
    "constant_with_warmup",
    "linear",
    "cosine",
    "cosine_with_restarts",
    "cosine_with_min_lr",
    "polynomial",
    "inverse_sqrt",
)

STATE_FILE = "trainer_state.json"
METRICS_FILE = "metrics.json"
CURVE_FILE = "training_curve.png"
BEST_DIR = "best"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class PairwiseTrainingConfig:
    """Settings of :func:`train_pairwise`; each field carries its help text.

    Examples
    --------
    >>> config = PairwiseTrainingConfig(lr_scheduler_type="cosine_with_min_lr", min_lr_ratio=0.7)
    >>> config.batch_size, config.learning_rate
    (8, 5e-05)
    >>> PairwiseTrainingConfig(batch_size=0)
    Traceback (most recent call last):
    ...
    tacitly.errors.InputError: field "batch_size": is 0 (expected an integer >= 1)
    """

    learning_rate: float = field(default=5e-5, metadata=_help("Peak learning rate of AdamW."))
    lr_scheduler_type: str = field(
        default="linear",
        metadata=_help(
            "Learning-rate schedule: " + ", ".join(SCHEDULERS) + ". 'constant' with a warmup "
            "ratio > 0 warms up (it becomes 'constant_with_warmup')."
        ),
    )
    min_lr_ratio: float = field(
        default=0.0,
        metadata=_help("cosine_with_min_lr: final learning rate as a fraction of the peak."),
    )
    warmup_ratio: float = field(
        default=0.0, metadata=_help("Fraction of the optimizer steps spent warming up linearly.")
    )
    weight_decay: float = field(
        default=0.0, metadata=_help("AdamW weight decay, on weight matrices only.")
    )
    adam_epsilon: float = field(default=1e-8, metadata=_help("AdamW epsilon."))
    max_grad_norm: float | None = field(
        default=1.0,
        metadata=_help(
            "Clip the gradient norm to this (None: no clipping; under DeepSpeed the config "
            "file's gradient_clipping applies)."
        ),
    )
    batch_size: int = field(default=8, metadata=_help("Pairs per device per micro-batch."))
    eval_batch_size: int | None = field(
        default=None, metadata=_help("Pairs per device when evaluating (None: batch_size).")
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata=_help("Micro-batches accumulated into one optimizer step.")
    )
    epochs: int = field(default=1, metadata=_help("Passes over the training pairs."))
    max_steps: int = field(
        default=-1, metadata=_help("Total optimizer steps; > 0 overrides epochs.")
    )
    stop_after_steps: int | None = field(
        default=None,
        metadata=_help(
            "Stop at this optimizer step with a resumable checkpoint, as if interrupted; the "
            "schedule still spans the whole run (for time-limited jobs)."
        ),
    )
    logging_steps: int = field(
        default=64, metadata=_help("Evaluate, log and checkpoint every this many steps.")
    )
    seed: int = field(default=42, metadata=_help("Seed of the shuffling and of every RNG."))
    center_rewards_coefficient: float | None = field(
        default=None,
        metadata=_help(
            "Add this times mean((r_chosen + r_rejected)^2) to the loss, keeping rewards "
            "centred on 0 (as TRL's RewardConfig)."
        ),
    )
    use_margin: bool = field(
        default=False, metadata=_help("Use the rows' margins: -log σ(r_c - r_r - margin).")
    )
    use_weight: bool = field(
        default=False, metadata=_help("Weight each pair's loss by its row's weight.")
    )
    new_modules_learning_rate: float | None = field(
        default=None,
        metadata=_help(
            "Learning rate of the modules a model adds to its backbone (a gaze model's "
            "projector, eye tokens and head), for models with parameter_groups() (None: "
            "learning_rate)."
        ),
    )
    length_balance: bool = field(
        default=False,
        metadata=_help(
            "Reweight training pairs so that those whose chosen response is longer and those "
            "whose chosen response is shorter carry equal total weight (a debiasing option)."
        ),
    )
    group_by_length: bool = field(
        default=True,
        metadata=_help(
            "Batch pairs of similar length (sorted within shuffled windows of 50 batches), "
            "which cuts padding; False: plain shuffling."
        ),
    )
    output_dir: str = field(
        default="runs/reward-model",
        metadata=_help("Folder for best/, checkpoints, metrics.json and training_curve.png."),
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata=_help("Start afresh in an output folder that holds an earlier run's files."),
    )
    save_total_limit: int = field(
        default=2, metadata=_help("Keep this many of the latest checkpoints.")
    )
    resume: bool | str = field(
        default=False,
        metadata=_help(
            "True: continue from the latest checkpoint in output_dir (start afresh if there "
            "is none); a path: continue from that checkpoint."
        ),
    )
    mixed_precision: MixedPrecision = field(
        default="no", metadata=_help("'no', 'fp16' or 'bf16' (accelerate's mixed precision).")
    )
    num_workers: int = field(default=0, metadata=_help("Data-loader worker processes."))
    progress: bool = field(default=True, metadata=_help("Show a progress bar (main process)."))

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`~tacitly.errors.InputError` naming the first bad field."""
        for name in ("batch_size", "gradient_accumulation_steps", "epochs", "logging_steps"):
            _require(self, name, getattr(self, name) >= 1, "an integer >= 1")
        if self.eval_batch_size is not None:
            _require(self, "eval_batch_size", self.eval_batch_size >= 1, "an integer >= 1")
        if self.stop_after_steps is not None:
            _require(self, "stop_after_steps", self.stop_after_steps >= 1, "an integer >= 1")
        _require(self, "max_steps", self.max_steps != 0, "-1 (use epochs) or a step count >= 1")
        _require(self, "save_total_limit", self.save_total_limit >= 1, "an integer >= 1")
        _require(self, "num_workers", self.num_workers >= 0, "an integer >= 0")
        _require(self, "learning_rate", self.learning_rate > 0, "a positive number")
        if self.new_modules_learning_rate is not None:
            _require(
                self,
                "new_modules_learning_rate",
                self.new_modules_learning_rate > 0,
                "a positive number or None",
            )
        _require(self, "adam_epsilon", self.adam_epsilon > 0, "a positive number")
        _require(self, "weight_decay", self.weight_decay >= 0, "a number >= 0")
        _require(self, "warmup_ratio", 0 <= self.warmup_ratio < 1, "a fraction in [0, 1)")
        _require(self, "min_lr_ratio", 0 <= self.min_lr_ratio <= 1, "a fraction in [0, 1]")
        if self.max_grad_norm is not None:
            _require(self, "max_grad_norm", self.max_grad_norm > 0, "a positive number or None")
        _require(
            self, "lr_scheduler_type", self.lr_scheduler_type in SCHEDULERS, " | ".join(SCHEDULERS)
        )
        precisions = get_args(MixedPrecision)
        _require(
            self, "mixed_precision", self.mixed_precision in precisions, " | ".join(precisions)
        )

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name → help text, e.g. for a command-line parser."""
        return {item.name: str(item.metadata.get("help", "")) for item in fields(cls)}


def _require(config: PairwiseTrainingConfig, name: str, ok: bool, expected: str) -> None:
    if not ok:
        raise InputError(f"is {getattr(config, name)!r}", field=name, expected=expected)


@dataclass(frozen=True)
class PairwiseEvaluation:
    """Rewards of a set of pairs and what they score.

    Attributes
    ----------
    accuracy:
        Fraction of pairs with r_chosen > r_rejected (a tie counts as wrong).
    loss:
        Mean Bradley–Terry loss -log σ(r_chosen - r_rejected).
    chosen_rewards, rejected_rewards:
        One reward per pair, in the order of the rows.
    """

    accuracy: float
    loss: float
    chosen_rewards: np.ndarray
    rejected_rewards: np.ndarray

    @property
    def n(self) -> int:
        """Number of pairs."""
        return int(self.chosen_rewards.size)

    def accuracy_ci(self, *, n: int = 1000, seed: int = 0) -> tuple[float, float]:
        """Bootstrap 95% confidence interval of the accuracy (default: 1000 resamples)."""
        correct = pairwise_correct(self.chosen_rewards, self.rejected_rewards)
        return bootstrap_ci(correct.astype(np.float64), n=n, seed=seed)


@dataclass
class TrainingResult:
    """What :func:`train_pairwise` produced.

    Attributes
    ----------
    model:
        The best model, reloaded from ``best_dir`` (the trained model itself when the run
        stopped early through ``stop_after_steps``).
    best_dir:
        Where the best model was saved (None when the run stopped before any was saved).
    history:
        One entry per evaluation: ``step``, ``epoch``, ``learning_rate``, ``train_loss`` and,
        with validation pairs, ``val_loss`` and ``val_accuracy``.
    metrics:
        The content of ``metrics.json``.
    completed:
        False when the run stopped early through ``stop_after_steps``.
    """

    model: nn.Module
    best_dir: Path | None
    history: list[dict[str, float]]
    metrics: dict[str, Any]
    completed: bool = True


def bradley_terry_loss(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    *,
    margin: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    center_rewards_coefficient: float | None = None,
) -> torch.Tensor:
    """Mean Bradley–Terry loss of a batch of pairs.

    ``mean(w · -log σ(r_c - r_r - m)) + c · mean((r_c + r_r)²)``, where the margin ``m``, the
    weights ``w`` and the centring coefficient ``c`` are optional.

    Parameters
    ----------
    chosen_rewards, rejected_rewards:
        Rewards of shape ``[B]``.
    margin:
        Required reward gap per pair (default: None, no margin).
    weight:
        Weight of each pair's loss (default: None, all 1).
    center_rewards_coefficient:
        Weight of the centring term (default: None, no centring).

    Returns
    -------
    torch.Tensor
        A scalar.

    Examples
    --------
    >>> loss = bradley_terry_loss(torch.tensor([1.0]), torch.tensor([1.0]))
    >>> round(loss.item(), 4)  # log 2
    0.6931
    """
    difference = chosen_rewards - rejected_rewards
    if margin is not None:
        difference = difference - margin.to(difference.dtype)
    per_pair = -F.logsigmoid(difference)
    if weight is not None:
        per_pair = per_pair * weight.to(per_pair.dtype)
    loss = per_pair.mean()
    if center_rewards_coefficient:
        loss = loss + center_rewards_coefficient * torch.mean(
            (chosen_rewards + rejected_rewards) ** 2
        )
    return loss


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    config: PairwiseTrainingConfig,
    num_training_steps: int,
) -> LRScheduler:
    """Build the learning-rate schedule that ``config`` names, through ``transformers``.

    Parameters
    ----------
    optimizer:
        The optimizer whose learning rate the schedule drives.
    config:
        ``lr_scheduler_type``, ``warmup_ratio`` (warmup steps = ceil(ratio × steps)) and
        ``min_lr_ratio`` (for ``cosine_with_min_lr``, passed as transformers' ``min_lr_rate``).
    num_training_steps:
        Number of scheduler steps in the whole run.

    Returns
    -------
    torch.optim.lr_scheduler.LRScheduler

    Examples
    --------
    >>> weight = nn.Parameter(torch.zeros(1))
    >>> optimizer = torch.optim.AdamW([weight], lr=1.0)
    >>> config = PairwiseTrainingConfig(
    ...     learning_rate=1.0, lr_scheduler_type="cosine_with_min_lr", min_lr_ratio=0.7
    ... )
    >>> scheduler = make_scheduler(optimizer, config=config, num_training_steps=10)
    >>> for _ in range(10):
    ...     optimizer.step()
    ...     scheduler.step()
    >>> round(scheduler.get_last_lr()[0], 6)
    0.7
    """
    from transformers import get_scheduler

    config.validate()
    name = config.lr_scheduler_type
    warmup = math.ceil(config.warmup_ratio * num_training_steps)
    if name == "constant" and warmup > 0:
        name = "constant_with_warmup"
    extra = {"min_lr_rate": config.min_lr_ratio} if name == "cosine_with_min_lr" else None
    scheduler = get_scheduler(
        name,
        optimizer,
        num_warmup_steps=warmup,
        num_training_steps=num_training_steps,
        scheduler_specific_kwargs=extra,
    )
    return cast(LRScheduler, scheduler)


class EpochShuffleSampler(Sampler[int]):
    """A permutation of the rows drawn afresh each epoch from ``seed + epoch``.

    It keeps no random state between epochs, so a run resumed at epoch e sees the order the
    uninterrupted run saw, and every process of a multi-GPU run draws the same order.

    Examples
    --------
    >>> sampler = EpochShuffleSampler(5, seed=0)
    >>> sorted(sampler) == [0, 1, 2, 3, 4]
    True
    >>> first = list(sampler)
    >>> sampler.set_epoch(1)
    >>> list(sampler) != first
    True
    """

    def __init__(self, size: int, *, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        shuffler = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from torch.randperm(self.size, generator=shuffler).tolist()

    def __len__(self) -> int:
        return self.size


class LengthGroupedSampler(EpochShuffleSampler):
    """Shuffled rows, sorted by length within windows of ``window`` batches.

    Each epoch draws a permutation from ``seed + epoch`` (as :class:`EpochShuffleSampler`),
    cuts it into windows of ``batch_size * window`` rows and orders each window longest first,
    so a batch holds rows of similar length and little padding, while the windows keep the
    order random. The longest window's first batch comes first, so that running out of
    memory shows at once.

    Examples
    --------
    >>> sampler = LengthGroupedSampler([5, 1, 9, 3, 7, 2], batch_size=2, seed=0, window=1)
    >>> order = list(sampler)
    >>> sorted(order) == [0, 1, 2, 3, 4, 5]
    True
    >>> all(
    ...     [5, 1, 9, 3, 7, 2][order[i]] >= [5, 1, 9, 3, 7, 2][order[i + 1]] for i in (0, 2, 4)
    ... )
    True
    """

    def __init__(
        self, lengths: Sequence[int], *, batch_size: int, seed: int, window: int = 50
    ) -> None:
        super().__init__(len(lengths), seed=seed)
        self.lengths = torch.tensor(list(lengths), dtype=torch.long)
        self.group = batch_size * window

    def __iter__(self) -> Iterator[int]:
        shuffler = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.size, generator=shuffler)
        windows = [
            window[torch.argsort(self.lengths[window], descending=True, stable=True)]
            for window in torch.split(order, self.group)
        ]
        if len(windows) > 1:
            longest = max(range(len(windows)), key=lambda k: int(self.lengths[windows[k][0]]))
            windows[0], windows[longest] = windows[longest], windows[0]
        yield from torch.cat(windows).tolist() if windows else []


def pair_length(row: Row) -> int:
    """Characters of a pair's text (prompt, chosen and rejected), a proxy for its tokens."""
    return sum(_text_length(row.get(side)) for side in ("prompt", "chosen", "rejected"))


def _text_length(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Sequence):
        return sum(
            len(m.get("content", "")) if isinstance(m, Mapping) else len(str(m)) for m in value
        )
    return 0


def length_balanced_weights(rows: Sequence[Row]) -> list[float]:
    """Weights that give chosen-longer and chosen-shorter pairs equal total weight.

    Each group's weights sum to half the number of unequal-length pairs; pairs of equal length
    keep weight 1, as does everything when one group is empty (nothing to balance). The mean
    weight stays 1, so the loss keeps its scale.

    Examples
    --------
    >>> rows = [
    ...     {"chosen": "long answer", "rejected": "short"},
    ...     {"chosen": "longer one", "rejected": "brief"},
    ...     {"chosen": "longest reply", "rejected": "tiny"},
    ...     {"chosen": "ok", "rejected": "much longer"},
    ... ]
    >>> length_balanced_weights(rows)
    [0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 2.0]
    """
    signs = [_length_order(row) for row in rows]
    longer, shorter = signs.count(1), signs.count(-1)
    if not longer or not shorter:
        return [1.0] * len(rows)
    half = (longer + shorter) / 2
    share = {1: half / longer, -1: half / shorter, 0: 1.0}
    return [share[sign] for sign in signs]


def _length_order(row: Row) -> int:
    """1 when the chosen response is longer, -1 when shorter, 0 when equally long."""
    chosen, rejected = (response_length(row[side]) for side in ("chosen", "rejected"))
    return (chosen > rejected) - (chosen < rejected)


class _Rows(Dataset[Row]):
    def __init__(self, rows: Sequence[Row]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Row:
        return self.rows[index]


class _PairCollator:
    """The model's ``collate`` plus the per-pair margins and weights the loss needs."""

    def __init__(
        self, collate: Callable[[list[Row]], Mapping[str, Any]], *, margin: bool, weight: bool
    ) -> None:
        self.collate = collate
        self.margin = margin
        self.weight = weight

    def __call__(self, rows: list[Row]) -> dict[str, Any]:
        batch = dict(self.collate(rows))
        if self.margin and batch.get("margin") is None:
            batch["margin"] = _row_values(rows, "margin", default=0.0)
        if not self.margin:
            batch["margin"] = None
        batch["weight"] = _row_values(rows, "weight", default=1.0) if self.weight else None
        return batch


def _with_length_balance(rows: list[Row], *, keep_weights: bool) -> list[Row]:
    balance = length_balanced_weights(rows)
    weighted: list[Row] = []
    for row, factor in zip(rows, balance, strict=True):
        own = row.get("weight") if keep_weights else None
        weighted.append({**row, "weight": factor * (1.0 if own is None else float(own))})
    return weighted


def _row_values(rows: Sequence[Row], key: str, *, default: float) -> torch.Tensor:
    values = [row.get(key) for row in rows]
    return torch.tensor([default if v is None else float(v) for v in values], dtype=torch.float32)


def _check_model(model: nn.Module) -> None:
    missing = [
        name
        for name in ("collate", "save_pretrained", "from_pretrained", "trainable_parameters")
        if not callable(getattr(model, name, None))
    ]
    if missing:
        raise TypeError(
            f"{type(model).__name__} is not a pairwise reward model: it lacks " + ", ".join(missing)
        )


def _check_rows(rows: Sequence[Row] | None, name: str, *, required: bool) -> list[Row]:
    checked = list(rows or [])
    if required and not checked:
        raise InputError("no pairs", field=name, expected="at least one preference row")
    for index, row in enumerate(checked, start=1):
        if not isinstance(row, Mapping) or "chosen" not in row or "rejected" not in row:
            raise InputError(
                "not a preference row",
                source=name,
                row=index,
                expected='a mapping with "prompt", "chosen" and "rejected"',
            )
    return checked


@dataclass
class _Plan:
    batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int
    stop_step: int


def _plan(n_rows: int, *, processes: int, config: PairwiseTrainingConfig) -> _Plan:
    # accelerate shards the batches round-robin and pads the last round (even_batches).
    batches = math.ceil(math.ceil(n_rows / config.batch_size) / processes)
    steps_per_epoch = math.ceil(batches / config.gradient_accumulation_steps)
    total = config.max_steps if config.max_steps > 0 else config.epochs * steps_per_epoch
    stop = min(total, config.stop_after_steps or total)
    return _Plan(batches, steps_per_epoch, total, stop)


@dataclass
class _State:
    """What a checkpoint records beyond the model, optimizer, scheduler and RNG states."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    best_step: int | None = None
    best_val_accuracy: float | None = None
    best_val_accuracy_ci95: list[float] | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    pending_loss: float = 0.0
    pending_steps: int = 0
    train_seconds: float = 0.0
    pairs_seen: int = 0

    @classmethod
    def read(cls, checkpoint: Path) -> _State:
        path = checkpoint / STATE_FILE
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError) as error:
            raise InputError(
                f"not a tacitly checkpoint: {error}", source=path, expected=STATE_FILE
            ) from None


def latest_checkpoint(output_dir: str | PathLike[str]) -> Path | None:
    """The complete ``checkpoint-<step>`` folder with the highest step, or None.

    Examples
    --------
    >>> latest_checkpoint("no/such/folder") is None
    True
    """
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    found = [
        (int(match.group(1)), path)
        for path in folder.iterdir()
        if (match := _CHECKPOINT.match(path.name)) and (path / STATE_FILE).is_file()
    ]
    return max(found)[1] if found else None


def _resume_point(config: PairwiseTrainingConfig, output_dir: Path) -> Path | None:
    if config.resume is False:
        return None
    if config.resume is True:
        found = latest_checkpoint(output_dir)
        if found is None:
            logger.warning("no checkpoint in %s to resume from; starting afresh", output_dir)
        return found
    path = Path(config.resume)
    if not (path / STATE_FILE).is_file():
        raise InputError(
            "no checkpoint there",
            source=path,
            field="resume",
            expected=f"a checkpoint-<step> folder holding {STATE_FILE}",
        )
    return path


def _earlier_run_files(output_dir: Path) -> list[Path]:
    if not output_dir.is_dir():
        return []
    return [
        path
        for path in output_dir.iterdir()
        if _CHECKPOINT.match(path.name) or path.name in (BEST_DIR, METRICS_FILE)
    ]


def _start_afresh(output_dir: Path, config: PairwiseTrainingConfig) -> None:
    earlier = _earlier_run_files(output_dir)
    if earlier and not config.overwrite_output_dir:
        raise InputError(
            "holds an earlier run (" + ", ".join(sorted(p.name for p in earlier)) + ")",
            source=output_dir,
            field="output_dir",
            expected="an empty folder, resume=True, or overwrite_output_dir=True",
        )
    for path in earlier:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    output_dir.mkdir(parents=True, exist_ok=True)


def _optimizer(model: nn.Module, config: PairwiseTrainingConfig) -> torch.optim.AdamW:
    groups = _learning_rate_groups(model, config)
    if not any(group["params"] for group in groups):
        raise InputError(
            "the model has no trainable parameters", field="model", expected="some to train"
        )
    split = []
    for group in groups:
        params = [p for p in group["params"] if p.requires_grad]
        split.append({"params": [p for p in params if p.ndim >= 2], "lr": group["lr"]})
        split[-1]["weight_decay"] = config.weight_decay
        split.append({"params": [p for p in params if p.ndim < 2], "lr": group["lr"]})
        split[-1]["weight_decay"] = 0.0
    return torch.optim.AdamW(
        [g for g in split if g["params"]], lr=config.learning_rate, eps=config.adam_epsilon
    )


def _learning_rate_groups(model: nn.Module, config: PairwiseTrainingConfig) -> list[dict[str, Any]]:
    """The model's own parameter groups when it has them, else one group at learning_rate."""
    groups_of = getattr(model, "parameter_groups", None)
    if callable(groups_of):
        groups = groups_of(
            learning_rate=config.learning_rate,
            new_modules_learning_rate=config.new_modules_learning_rate,
        )
        return [{"params": list(g["params"]), "lr": float(g["lr"])} for g in groups]
    if config.new_modules_learning_rate is not None:
        raise InputError(
            f"{type(model).__name__} has no parameter_groups(), so it has no separate new "
            "modules to train at their own rate",
            field="new_modules_learning_rate",
            expected="None for this model",
        )
    params = list(model.trainable_parameters())  # type: ignore[operator]
    return [{"params": params, "lr": config.learning_rate}]


def _loader(
    rows: list[Row],
    collator: _PairCollator,
    *,
    batch_size: int,
    seed: int,
    workers: int,
    sampler: Sampler[int] | None = None,
) -> DataLoader[Row]:
    # An own generator keeps DataLoader's per-iterator seed draw off the global RNG, which
    # drives dropout; otherwise each evaluation would shift the masks of later steps.
    return DataLoader(
        _Rows(rows),
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        collate_fn=collator,
        num_workers=workers,
        generator=torch.Generator().manual_seed(seed),
    )


def _pair_rewards(model: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    # A model that can score both sides at once (one pass over the shared prompt) says so with
    # pair_rewards; a wrapped (distributed) model runs each side through its own forward.
    pair_rewards = getattr(model, "pair_rewards", None)
    if callable(pair_rewards):
        chosen, rejected = pair_rewards(batch["chosen"], batch["rejected"])
    else:
        chosen = model(**batch["chosen"])
        rejected = model(**batch["rejected"])
    if chosen.ndim != 1 or chosen.shape != rejected.shape:
        raise TypeError(
            "a reward model's forward must return one reward per sequence, shape [B]; got "
            f"{tuple(chosen.shape)} and {tuple(rejected.shape)}"
        )
    return chosen, rejected


def _run_evaluation(
    model: nn.Module, loader: Iterable[Mapping[str, Any]], accelerator: Accelerator | None
) -> PairwiseEvaluation:
    was_training = model.training
    model.eval()
    chosen_parts: list[np.ndarray] = []
    rejected_parts: list[np.ndarray] = []
    autocast = accelerator.autocast() if accelerator is not None else contextlib.nullcontext()
    with torch.no_grad(), autocast:
        for batch in loader:
            chosen, rejected = _pair_rewards(model, batch)
            if accelerator is not None:
                chosen, rejected = accelerator.gather_for_metrics((chosen, rejected))
            chosen_parts.append(chosen.float().cpu().numpy())
            rejected_parts.append(rejected.float().cpu().numpy())
    model.train(was_training)
    chosen_all = np.concatenate(chosen_parts).astype(np.float64)
    rejected_all = np.concatenate(rejected_parts).astype(np.float64)
    loss = float(np.logaddexp(0.0, rejected_all - chosen_all).mean())
    return PairwiseEvaluation(
        accuracy=pairwise_accuracy(chosen_all, rejected_all),
        loss=loss,
        chosen_rewards=chosen_all,
        rejected_rewards=rejected_all,
    )


def evaluate_pairwise(
    model: nn.Module, rows: Sequence[Row], *, batch_size: int = 16
) -> PairwiseEvaluation:
    """Score preference rows with a reward model: accuracy (ties wrong), loss and rewards.

    Parameters
    ----------
    model:
        A reward model (see the module's contract), on the device it should run on.
    rows:
        Preference rows.
    batch_size:
        Pairs per forward pass (default: 16).

    Returns
    -------
    PairwiseEvaluation

    Raises
    ------
    InputError
        If there are no rows or a row is not a preference row.
    """
    checked = _check_rows(rows, "rows", required=True)
    collator = _PairCollator(model.collate, margin=False, weight=False)  # type: ignore[arg-type]
    device = next(model.parameters()).device
    loader = DataLoader(_Rows(checked), batch_size=batch_size, collate_fn=collator)
    moved = (_to_device(batch, device) for batch in loader)
    return _run_evaluation(model, moved, None)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {key: _to_device(value, device) for key, value in batch.items()}
    return batch


class _Progress:
    """A rich progress bar on the main process, or nothing."""

    def __init__(self, *, total: int, done: int, enabled: bool) -> None:
        self.bar: Any = None
        self.task: Any = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]reward model"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=Console(stderr=True),
        )
        self.task = self.bar.add_task("train", total=total, completed=done, status="")
        self.bar.start()

    def update(self, status: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, status=status)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _fit_input_scaling(model: nn.Module, train: list[Row], *, fresh: bool) -> None:
    """Let a model that standardises its inputs fit the statistics on the training rows.

    Only on a fresh run whose model is not fitted yet (the CLI fits on a capped sample first);
    a resumed run restores the fitted buffers with the model's state.
    """
    fit = getattr(model, "fit_feature_scaling", None)
    fitted = getattr(model, "feature_scaling_fitted", None)
    if fresh and callable(fit) and not (fitted is not None and bool(fitted)):
        fit(train)


def train_pairwise(
    model: nn.Module,
    train_rows: Sequence[Row],
    *,
    config: PairwiseTrainingConfig,
    valid_rows: Sequence[Row] | None = None,
    test_rows: Sequence[Row] | None = None,
) -> TrainingResult:
    """Train a reward model on preference pairs with the Bradley–Terry loss.

    Parameters
    ----------
    model:
        A reward model following the contract in this module's docstring. It is trained in
        place; build it (and seed its initialisation) before calling. A model with a
        ``fit_feature_scaling(rows)`` method (gaze reward models) has it called on the
        training rows first, unless the run resumes.
    train_rows:
        Training preference rows (``prompt``, ``chosen``, ``rejected``, optional ``margin``,
        ``weight``).
    config:
        The settings (see :class:`PairwiseTrainingConfig`).
    valid_rows:
        Pairs that choose the best checkpoint (default: None: the final model is kept).
    test_rows:
        Pairs scored once with the best model at the end (default: None).

    Returns
    -------
    TrainingResult
        The best model reloaded from ``output_dir/best``, its folder, the evaluation history
        and the metrics written to ``output_dir/metrics.json``.

    Raises
    ------
    InputError
        On a bad configuration, no training pairs, a malformed row, an output folder holding
        an earlier run (without ``resume`` or ``overwrite_output_dir``), or a ``resume`` path
        that is not a checkpoint.
    TypeError
        If ``model`` does not follow the reward-model contract.

    Examples
    --------
    Under several GPUs, run the same script with
    ``accelerate launch --config_file configs/accelerate_multi_gpu.yaml script.py``.
    The test suite (``tests/rewards/test_training.py``) trains a bag-of-words model end to end.
    """
    config.validate()
    _check_model(model)
    train = _check_rows(train_rows, "train_rows", required=True)
    valid = _check_rows(valid_rows, "valid_rows", required=False)
    test = _check_rows(test_rows, "test_rows", required=False)
    output_dir = Path(config.output_dir)

    accelerator = _accelerator(config)
    set_seed(config.seed)
    resume_from = _resume_point(config, output_dir)
    if resume_from is None and accelerator.is_main_process:
        _start_afresh(output_dir, config)
    accelerator.wait_for_everyone()
    _fit_input_scaling(model, train, fresh=resume_from is None)

    trainer = _Trainer(model, accelerator, config, train=train, valid=valid, test=test)
    try:
        return trainer.run(resume_from)
    finally:
        trainer.close()


def _accelerator(config: PairwiseTrainingConfig) -> Accelerator:
    """An Accelerator for this run, even when another library (e.g. a TRL trainer run earlier
    in the same process) left accelerate's process-wide state set to other options."""
    options: dict[str, Any] = {
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "mixed_precision": config.mixed_precision,
    }
    try:
        return Accelerator(**options)
    except ValueError as error:
        if "already been initialized" not in str(error):
            raise
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(**options)


class _Trainer:
    """The state of one call of :func:`train_pairwise`."""

    def __init__(
        self,
        model: nn.Module,
        accelerator: Accelerator,
        config: PairwiseTrainingConfig,
        *,
        train: list[Row],
        valid: list[Row],
        test: list[Row],
    ) -> None:
        self.accelerator = accelerator
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.n_train, self.n_valid, self.n_test = len(train), len(valid), len(test)
        self.model_class = type(model)
        collate = cast(Callable[[list[Row]], Mapping[str, Any]], model.collate)
        if config.length_balance:
            train = _with_length_balance(train, keep_weights=config.use_weight)
        weighted = config.use_weight or config.length_balance
        collator = _PairCollator(collate, margin=config.use_margin, weight=weighted)
        eval_collator = _PairCollator(collate, margin=False, weight=False)
        eval_size = config.eval_batch_size or config.batch_size
        self.sampler: EpochShuffleSampler = EpochShuffleSampler(len(train), seed=config.seed)
        if config.group_by_length:
            self.sampler = LengthGroupedSampler(
                [pair_length(row) for row in train], batch_size=config.batch_size, seed=config.seed
            )
        loaders = [
            _loader(
                train,
                collator,
                batch_size=config.batch_size,
                seed=config.seed,
                workers=config.num_workers,
                sampler=self.sampler,
            )
        ] + [
            _loader(
                rows,
                eval_collator,
                batch_size=eval_size,
                seed=config.seed,
                workers=config.num_workers,
            )
            for rows in (valid, test)
            if rows
        ]
        self.plan = _plan(len(train), processes=accelerator.num_processes, config=config)
        optimizer = _optimizer(model, config)
        # accelerate steps a prepared scheduler once per process at each optimizer step
        # (DeepSpeed steps it once), so the schedule spans that many scheduler steps.
        deepspeed = accelerator.distributed_type == DistributedType.DEEPSPEED
        per_step = 1 if deepspeed else accelerator.num_processes
        scheduler = make_scheduler(
            optimizer, config=config, num_training_steps=self.plan.total_steps * per_step
        )
        prepared = accelerator.prepare(model, optimizer, loaders[0], scheduler, *loaders[1:])
        self.model, self.optimizer, self.train_loader, self.scheduler = prepared[:4]
        eval_loaders = list(prepared[4:])
        self.valid_loader = eval_loaders.pop(0) if valid else None
        self.test_loader = eval_loaders.pop(0) if test else None
        if len(self.train_loader) != self.plan.batches_per_epoch:
            logger.warning(
                "the learning-rate schedule assumed %d batches an epoch, the data loader has %d",
                self.plan.batches_per_epoch,
                len(self.train_loader),
            )
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.state = _State()
        self.progress: _Progress | None = None

    # -- the loop -------------------------------------------------------------------------

    def run(self, resume_from: Path | None) -> TrainingResult:
        accelerator, config, plan = self.accelerator, self.config, self.plan
        if resume_from is not None:
            accelerator.load_state(str(resume_from))
            self.state = _State.read(resume_from)
            logger.info("resumed from %s at step %d", resume_from, self.state.step)
        state = self.state
        self.progress = _Progress(
            total=plan.total_steps,
            done=state.step,
            enabled=config.progress and accelerator.is_main_process,
        )
        self.model.train()
        micro_losses: list[torch.Tensor] = []
        while state.step < plan.stop_step:
            loader = self.train_loader
            if state.batches_in_epoch:
                loader = accelerator.skip_first_batches(loader, state.batches_in_epoch)
            # accelerate's loaders count their own passes and hand that count to the sampler
            # at each pass; a resumed run must set it from the checkpoint.
            loader.set_epoch(state.epoch)
            self.sampler.set_epoch(state.epoch)
            for batch in loader:
                started = time.perf_counter()
                with accelerator.accumulate(self.model):
                    loss, pairs = self._micro_step(batch)
                micro_losses.append(loss.detach())
                state.batches_in_epoch += 1
                if state.batches_in_epoch == len(self.train_loader):
                    state.epoch, state.batches_in_epoch = state.epoch + 1, 0
                state.pairs_seen += pairs * accelerator.num_processes
                state.train_seconds += time.perf_counter() - started
                if not accelerator.sync_gradients:
                    continue
                step_loss = accelerator.reduce(torch.stack(micro_losses).mean(), "mean")
                micro_losses = []
                state.step += 1
                state.pending_loss += float(step_loss.item())
                state.pending_steps += 1
                self._after_step()
                if state.step >= plan.stop_step:
                    break
        if state.step < plan.total_steps:
            return self._stopped_early()
        return self._finish()

    def _micro_step(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, int]:
        chosen, rejected = _pair_rewards(self.model, batch)
        loss = bradley_terry_loss(
            chosen,
            rejected,
            margin=batch.get("margin"),
            weight=batch.get("weight"),
            center_rewards_coefficient=self.config.center_rewards_coefficient,
        )
        self.accelerator.backward(loss)
        if self.accelerator.sync_gradients and self.config.max_grad_norm is not None:
            self.accelerator.clip_grad_norm_(self.params, self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()
        return loss, int(chosen.shape[0])

    def _after_step(self) -> None:
        state, plan = self.state, self.plan
        last = state.step == plan.total_steps
        status = f"loss {state.pending_loss / state.pending_steps:.4f}"
        if state.step % self.config.logging_steps == 0 or last:
            entry = self._log()
            if "val_accuracy" in entry:
                status += f" · val acc {entry['val_accuracy']:.3f}"
            self._save_checkpoint()
        elif state.step == plan.stop_step:
            self._save_checkpoint()
        assert self.progress is not None
        self.progress.update(status)

    def _log(self) -> dict[str, float]:
        state = self.state
        entry: dict[str, float] = {
            "step": state.step,
            "epoch": round(state.step / self.plan.steps_per_epoch, 4),
            "learning_rate": float(self.scheduler.get_last_lr()[0]),
            "train_loss": state.pending_loss / state.pending_steps,
        }
        state.pending_loss, state.pending_steps = 0.0, 0
        if self.valid_loader is not None:
            evaluation = _run_evaluation(self.model, self.valid_loader, self.accelerator)
            entry["val_loss"] = evaluation.loss
            entry["val_accuracy"] = evaluation.accuracy
            if state.best_val_accuracy is None or evaluation.accuracy > state.best_val_accuracy:
                state.best_val_accuracy = evaluation.accuracy
                state.best_val_accuracy_ci95 = list(evaluation.accuracy_ci())
                state.best_step = state.step
                self._save_best()
        state.history.append(entry)
        logger.info("step %d: %s", state.step, entry)
        return entry

    # -- saving -----------------------------------------------------------------------------

    def _save_best(self) -> None:
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            # Written aside, then swapped in: an interrupted save never leaves a broken best/.
            final = self.output_dir / BEST_DIR
            staging = self.output_dir / (BEST_DIR + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            accelerator.unwrap_model(self.model).save_pretrained(staging)
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)
        accelerator.wait_for_everyone()

    def _save_checkpoint(self) -> None:
        accelerator = self.accelerator
        checkpoint = self.output_dir / f"checkpoint-{self.state.step}"
        accelerator.save_state(str(checkpoint))
        if accelerator.is_main_process:
            (checkpoint / STATE_FILE).write_text(json.dumps(asdict(self.state), indent=1))
            self._prune_checkpoints()
        accelerator.wait_for_everyone()

    def _prune_checkpoints(self) -> None:
        found = sorted(
            (int(match.group(1)), path)
            for path in self.output_dir.iterdir()
            if (match := _CHECKPOINT.match(path.name))
        )
        for _, path in found[: -self.config.save_total_limit]:
            shutil.rmtree(path, ignore_errors=True)

    # -- the end ----------------------------------------------------------------------------

    def _stopped_early(self) -> TrainingResult:
        best_dir = self.output_dir / BEST_DIR
        metrics = self._metrics(completed=False, test=None)
        self._write_reports(metrics)
        return TrainingResult(
            model=self.accelerator.unwrap_model(self.model),
            best_dir=best_dir if best_dir.is_dir() else None,
            history=list(self.state.history),
            metrics=metrics,
            completed=False,
        )

    def _finish(self) -> TrainingResult:
        accelerator, state = self.accelerator, self.state
        if self.valid_loader is None:
            state.best_step = state.step
            self._save_best()
        best_dir = self.output_dir / BEST_DIR
        best = self.model_class.from_pretrained(best_dir)  # type: ignore[attr-defined]
        if getattr(best, "hf_device_map", None) is None:
            best = best.to(accelerator.device)
        test = None
        if self.test_loader is not None:
            test = _run_evaluation(best, self.test_loader, accelerator)
        metrics = self._metrics(completed=True, test=test)
        self._write_reports(metrics)
        return TrainingResult(
            model=best, best_dir=best_dir, history=list(state.history), metrics=metrics
        )

    def _metrics(self, *, completed: bool, test: PairwiseEvaluation | None) -> dict[str, Any]:
        state = self.state
        seconds = state.train_seconds
        metrics: dict[str, Any] = {
            "completed": completed,
            "step": state.step,
            "total_steps": self.plan.total_steps,
            "best_step": state.best_step,
            "val_accuracy": state.best_val_accuracy,
            "val_accuracy_ci95": state.best_val_accuracy_ci95,
            "test_accuracy": None if test is None else test.accuracy,
            "test_accuracy_ci95": None if test is None else list(test.accuracy_ci()),
            "test_loss": None if test is None else test.loss,
            "n_train": self.n_train,
            "n_valid": self.n_valid,
            "n_test": self.n_test,
            "num_processes": self.accelerator.num_processes,
            "train_seconds": seconds,
            "train_pairs_per_second": state.pairs_seen / seconds if seconds > 0 else None,
            "config": self.config.to_dict(),
            "history": list(state.history),
        }
        return metrics

    def _write_reports(self, metrics: dict[str, Any]) -> None:
        if not self.accelerator.is_main_process:
            return
        (self.output_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
        _plot_curve(self.state.history, self.output_dir / CURVE_FILE)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
        self.accelerator.free_memory()


def _plot_curve(history: Sequence[Mapping[str, float]], path: Path) -> None:
    """Training loss and validation accuracy against the step, without touching pyplot state."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        logger.warning("matplotlib is not installed; %s not drawn", path.name)
        return
    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    steps = [entry["step"] for entry in history]
    axes.plot(steps, [entry["train_loss"] for entry in history], color="tab:blue", marker=".")
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("training loss (Bradley–Terry)", color="tab:blue")
    accuracy = [(e["step"], e["val_accuracy"]) for e in history if "val_accuracy" in e]
    if accuracy:
        right = axes.twinx()
        right.plot(*zip(*accuracy, strict=True), color="tab:orange", marker=".")
        right.set_ylabel("validation accuracy", color="tab:orange")
        right.set_ylim(-0.02, 1.02)
    figure.suptitle("reward model training")
    figure.tight_layout()
    figure.savefig(path)
