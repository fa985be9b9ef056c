"""Gaze-augmented reward models (GazeReward): baseline, GazeConcat and GazeAdd.

A reward model here is a causal language model (SmolLM2-135M-Instruct by default, any Hugging
Face causal LM otherwise) with LoRA adapters and a scalar head on the hidden state of the last
non-pad token. Its input may also carry human reading measures (nFix, FFD, GPT, TRT, fixProp)
predicted for every word of the conversation by
:class:`~tacitly.signals.synthetic.predictor.GazePredictor`:

``baseline``
    Text only.
``concat`` (GazeConcat)
    ``[<eye/>, g_1 … g_n, </eye>, t_1 … t_n]``: the projected gaze vector of every token comes
    first, framed by two learned eye-token embeddings, then the token embeddings; the attention
    mask covers all ``2n + 2`` positions.
``add`` (GazeAdd)
    ``t_i + g_i``: the projected, layer-normed gaze vector of each token is added to its
    embedding; the length does not change.

Design decisions
----------------
Gaze tokens are the reward model's own tokens.
    The reference implementation gives GazeConcat one gaze vector per token of the *predictor's*
    tokenizer. tacitly's predictors work on words, so the word values are put on the reward
    model's own tokens (:func:`~tacitly.signals.gaze.alignment.align_conversation`, a word's
    value divided equally among its tokens by default) and both gaze modes use the same
    per-token features: GazeConcat prefixes them, GazeAdd adds them position-wise. Template
    markup and special tokens have no reading measures and get 0; in GazeAdd they still receive
    the projection of that zero vector, a learned constant that marks them as "not read".
The new modules train and are saved.
    In the reference, the projector, the eye-token embeddings and the head sit inside the model
    that ``get_peft_model`` freezes, so they stay at their random initialisation; the eye tokens
    are rows of the embedding matrix, which LoRA never updates either. Here LoRA wraps only the
    transformer; the projector, the head and a separate two-row parameter for ``<eye/>`` and
    ``</eye>`` are siblings of it, always trainable, and stored in ``model.safetensors``. The
    tokenizer and the embedding matrix are left untouched, so the base model stays shareable.
Features are standardised by default (``standardise=True``).
    The five measures live on different scales (fixProp is a percentage, nFix a count, the
    durations are in other units), and the projector's first LayerNorm normalises the *mixed*
    128-d vector, not each measure, so unscaled inputs let the widest measures drown the others
    at initialisation. :meth:`GazeRewardModel.fit_feature_scaling` computes mean and standard
    deviation per measure on the training rows (tokens that carry values only) and stores them
    as buffers that are saved with the model. Tokens without values (markup, padding) stay 0.
    Until it is called the features pass unscaled, with a warning, so a trainer should call it
    once on the training rows before the first step.
Truncation never cuts the response first (``max_length`` counts text tokens).
    When a rendered conversation is longer than ``max_length`` tokens, the earliest prompt
    turns are dropped whole, one at a time, while more than one prompt turn remains; if it is
    still too long, tokens are cut from the start of what remains of the prompt. The response
    (every token after the last prompt token) is never cut: a response that alone exceeds
    ``max_length`` raises :class:`~tacitly.errors.InputError` (``long_responses="error"``,
    the default, because two answers that differ only near their ends would otherwise look
    the same), or with ``long_responses="cut_end"`` keeps at most ``max_length // 2`` prompt
    tokens and cuts the response at its end. GazeConcat sequences are ``2 n + 2`` positions
    long for ``n`` text tokens.

Gaze can enter at a middle layer (``inject_layer=k``), for CPUs.
    The projected gaze is then added to (GazeAdd) or prefixed before (GazeConcat) the input of
    decoder layer ``k`` rather than the embeddings; LoRA adapts layers ``k`` and above only, and
    the frozen layers below ``k`` run once per conversation, their output kept by
    :class:`~tacitly.rewards.layer_cache.LowerLayerCache`. In GazeConcat the text's cached
    states were computed at positions ``0 … n-1`` and sit at ``n + 2 …`` above layer ``k``;
    the upper layers learn that shift. The baseline with ``inject_layer`` is the plain model
    with its lower layers frozen.

Examples
--------
>>> config = GazeRewardConfig(mode="add", features_used="0,1,0,1,0")
>>> config.features_used, config.n_features
((0, 1, 0, 1, 0), 2)
>>> mode_from_flags(concat=False, use_softprompt=True)
'add'
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast, get_args

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from tacitly.errors import InputError
from tacitly.rewards.inputs import (
    as_messages,
    check_choice,
    check_known_keys,
    checked_messages,
    checked_row,
    config_dict,
)
from tacitly.rewards.layer_cache import (
    LowerLayerCache,
    decoder_layers,
    run_upper_layers,
    split_layer_count,
)
from tacitly.rewards.shared_prefix import PackedPairs, pack_pairs
from tacitly.signals.gaze.alignment import WORD_MEASURES, align_conversation

if TYPE_CHECKING:
    from tacitly.data.schema import PreferenceRow
    from tacitly.signals.synthetic.predictor import GazePredictor

__all__ = [
    "EYE_TOKENS",
    "GazeProjector",
    "GazeRewardConfig",
    "GazeRewardModel",
    "Mode",
    "mode_from_flags",
]

Mode: TypeAlias = Literal["baseline", "concat", "add"]
FeatureScope: TypeAlias = Literal["conversation", "response"]
TokenValues: TypeAlias = Literal["split", "first", "max"]
LongResponses: TypeAlias = Literal["error", "cut_end"]
Conversation: TypeAlias = Sequence[Mapping[str, str]]
IntArray: TypeAlias = npt.NDArray[np.int64]
FloatArray: TypeAlias = npt.NDArray[np.float32]

EYE_TOKENS: tuple[str, str] = ("<eye/>", "</eye>")
MODEL_TYPE = "tacitly-gaze-reward"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ADAPTER_FOLDER = "adapter"
_FORMAT = 1
_DEFAULT_CACHE: Any = object()
_MIN_STD = 1e-6


def _help(text: str) -> dict[str, str]:
    return {"help": text}


def _parse_numbers(value: object, name: str) -> tuple[float, ...]:
    """A tuple of numbers from a sequence or from a comma-separated string (the CLI form)."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        return tuple(float(item) for item in cast("Sequence[Any]", items))
    except (TypeError, ValueError) as error:
        raise InputError(
            f"cannot read {value!r} as numbers", field=name, expected="e.g. 0,1,0,1,0"
        ) from error


@dataclass
class GazeRewardConfig:
    """Everything that defines a gaze reward model; saved as ``config.json``.

    Examples
    --------
    >>> GazeRewardConfig(fp_dropout="0.1,0.3").fp_dropout
    (0.1, 0.3)
    >>> GazeRewardConfig(features_used=(1, 1))
    Traceback (most recent call last):
    ...
    tacitly.errors.InputError: field "features_used": 2 flags given (expected 5 flags of 0 or 1, \
one per measure nFix, FFD, GPT, TRT, fixProp)
    """

    model_name: str | None = field(
        default=None,
        metadata=_help(
            "Causal LM: None for the embedded SmolLM2-135M-Instruct, a local folder or a "
            "Hugging Face id (default: None)."
        ),
    )
    mode: Mode = field(
        default="concat",
        metadata=_help(
            "'baseline' (text only), 'concat' (GazeConcat: gaze prefix inside <eye/> … </eye>) "
            "or 'add' (GazeAdd: gaze added to the token embeddings) (default: 'concat')."
        ),
    )
    lora_r: int = field(default=8, metadata=_help("LoRA rank (default: 8)."))
    lora_alpha: int = field(default=32, metadata=_help("LoRA alpha (default: 32)."))
    lora_dropout: float = field(default=0.1, metadata=_help("LoRA dropout (default: 0.1)."))
    lora_target_modules: tuple[str, ...] | None = field(
        default=None,
        metadata=_help(
            "Module names that get LoRA adapters, or None for peft's default for the "
            "architecture (q_proj and v_proj for Llama/Mistral) (default: None)."
        ),
    )
    fp_dropout: tuple[float, float] = field(
        default=(0.1, 0.3),
        metadata=_help(
            "Dropout after the projector's first and second linear layers, p1,p2 "
            "(default: (0.1, 0.3))."
        ),
    )
    projector_width: int = field(
        default=128, metadata=_help("Width of the projector's hidden layer (default: 128).")
    )
    features_used: tuple[int, ...] = field(
        default=(1, 1, 1, 1, 1),
        metadata=_help(
            "Five 0/1 flags for nFix, FFD, GPT, TRT, fixProp; a 0 leaves that measure out "
            "(default: all five)."
        ),
    )
    predictor_version: int = field(
        default=1,
        metadata=_help("Gaze predictor version (-fmv): 1 (boosting) or 2 (MiniLM) (default: 1)."),
    )
    features_scope: FeatureScope = field(
        default="conversation",
        metadata=_help(
            "Which messages get reading measures: 'conversation' (all) or 'response' (the "
            "trailing assistant turns only) (default: 'conversation')."
        ),
    )
    token_values: TokenValues = field(
        default="split",
        metadata=_help(
            "How a word's values go onto its tokens: 'split' (divided equally), 'first' "
            "(first token) or 'max' (every token gets them) (default: 'split')."
        ),
    )
    standardise: bool = field(
        default=True,
        metadata=_help(
            "Standardise each measure with the training statistics from "
            "fit_feature_scaling() (default: True)."
        ),
    )
    max_length: int | None = field(
        default=1024,
        metadata=_help(
            "Most text tokens per conversation; earliest prompt turns, then prompt tokens, are "
            "dropped first (default: 1024; None: no limit)."
        ),
    )
    long_responses: LongResponses = field(
        default="error",
        metadata=_help(
            "A response longer than max_length on its own: 'error', or 'cut_end' (keep at most "
            "max_length // 2 prompt tokens and cut the response's end) (default: 'error')."
        ),
    )
    inject_layer: int | None = field(
        default=None,
        metadata=_help(
            "Enter the gaze at the input of decoder layer k instead of the embeddings; LoRA "
            "then adapts layers >= k only and the frozen layers below k run once per "
            "conversation, their output cached in memory (for CPUs) (default: None, the "
            "embeddings, as the reference)."
        ),
    )
    share_prompt: bool = field(
        default=True,
        metadata=_help(
            "Baseline mode: run each pair as one sequence, the shared prompt once and both "
            "responses after it under a mask that keeps them apart; same rewards, fewer tokens "
            "(default: True)."
        ),
    )
    load_in_4bit: bool | None = field(
        default=None,
        metadata=_help(
            "Load the base model in 4-bit NF4 with bitsandbytes; None: when CUDA and "
            "bitsandbytes are available (default: None)."
        ),
    )

    def __post_init__(self) -> None:
        check_choice(self.mode, get_args(Mode), "mode")
        check_choice(self.features_scope, get_args(FeatureScope), "features_scope")
        check_choice(self.token_values, get_args(TokenValues), "token_values")
        check_choice(self.long_responses, get_args(LongResponses), "long_responses")
        self.features_used = self._checked_flags(self.features_used)
        dropout = _parse_numbers(self.fp_dropout, "fp_dropout")
        if len(dropout) != 2 or not all(0.0 <= p < 1.0 for p in dropout):
            raise InputError(
                f"fp_dropout {self.fp_dropout!r} is not two probabilities",
                field="fp_dropout",
                expected="p1,p2 with 0 <= p < 1, e.g. 0.1,0.3",
            )
        self.fp_dropout = (dropout[0], dropout[1])
        if self.predictor_version not in (1, 2):
            raise InputError(
                f"unknown predictor version {self.predictor_version!r}",
                field="predictor_version",
                expected="1 or 2",
            )
        if self.lora_target_modules is not None:
            self.lora_target_modules = tuple(self.lora_target_modules)
        self._check_positive("lora_r", self.lora_r)
        self._check_positive("projector_width", self.projector_width)
        if self.max_length is not None:
            self._check_positive("max_length", self.max_length)
        if self.inject_layer == 0:
            self.inject_layer = None
        if self.inject_layer is not None:
            self._check_positive("inject_layer", self.inject_layer)
        if not 0.0 <= self.lora_dropout < 1.0:
            raise InputError("lora_dropout must be a probability", field="lora_dropout")
        if self.mode != "baseline" and self.n_features == 0:
            raise InputError(
                f"features_used leaves no measure for mode {self.mode!r}",
                field="features_used",
                expected="at least one 1, or mode 'baseline'",
            )

    @staticmethod
    def _checked_flags(value: object) -> tuple[int, ...]:
        numbers = _parse_numbers(value, "features_used")
        if len(numbers) != len(WORD_MEASURES):
            raise InputError(
                f"{len(numbers)} flags given",
                field="features_used",
                expected=f"5 flags of 0 or 1, one per measure {', '.join(WORD_MEASURES)}",
            )
        if any(n not in (0.0, 1.0) for n in numbers):
            raise InputError(
                f"flags {value!r} are not all 0 or 1", field="features_used", expected="0 or 1"
            )
        return tuple(int(n) for n in numbers)

    @staticmethod
    def _check_positive(name: str, value: int) -> None:
        if not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}", field=name)

    @property
    def n_features(self) -> int:
        """How many measures the projector sees."""
        return sum(self.features_used)

    @property
    def uses_gaze(self) -> bool:
        """Whether the model reads gaze features (not ``baseline``)."""
        return self.mode != "baseline"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return config_dict(self)

    @classmethod
    def from_dict(
        cls, values: Mapping[str, Any], *, source: str | os.PathLike[str] | None = None
    ) -> GazeRewardConfig:
        """Build a config from :meth:`to_dict`'s output; unknown keys are an error."""
        check_known_keys(cls, values, source=source)
        converted = {
            key: tuple(value) if isinstance(value, list) else value for key, value in values.items()
        }
        return cls(**cast("dict[str, Any]", converted))


def mode_from_flags(*, concat: bool, use_softprompt: bool) -> Mode:
    """The mode named by the GazeReward reference's flags.

    ``--use_softprompt False`` means no gaze at all (baseline); otherwise ``--concat True`` is
    GazeConcat and ``--concat False`` GazeAdd.

    Examples
    --------
    >>> mode_from_flags(concat=True, use_softprompt=False)
    'baseline'
    """
    if not use_softprompt:
        return "baseline"
    return "concat" if concat else "add"


class GazeProjector(nn.Sequential):
    """Reading measures → embedding space.

    ``Linear(n_features, width) → LayerNorm → ReLU → Dropout(p1) → Linear(width, hidden) →
    Dropout(p2) → LayerNorm(hidden)``.

    Examples
    --------
    >>> GazeProjector(n_features=2, hidden_size=8)(torch.zeros(3, 2)).shape
    torch.Size([3, 8])
    """

    def __init__(
        self,
        *,
        n_features: int,
        hidden_size: int,
        width: int = 128,
        dropout: tuple[float, float] = (0.1, 0.3),
    ) -> None:
        super().__init__(
            nn.Linear(n_features, width),
            nn.LayerNorm(width),
            nn.ReLU(),
            nn.Dropout(dropout[0]),
            nn.Linear(width, hidden_size),
            nn.Dropout(dropout[1]),
            nn.LayerNorm(hidden_size),
        )


@dataclass(frozen=True)
class _Item:
    """One conversation to encode: its messages and how many trailing turns are the response."""

    messages: list[dict[str, str]]
    n_response: int
    row: int


@dataclass(frozen=True)
class _Tokens:
    input_ids: IntArray
    features: FloatArray


class GazeRewardModel(nn.Module):
    """A scalar reward for a conversation, from text and (optionally) predicted reading measures.

    Parameters
    ----------
    config:
        The model's definition (default: None, i.e. ``GazeRewardConfig()``: SmolLM2,
        GazeConcat).
    predictor:
        A ready gaze predictor to share between models (default: None, i.e. built from
        ``config.predictor_version`` when a gaze mode first needs it).
    predictor_cache:
        Prediction cache for that predictor: a path, or None to disable it (default: the
        tacitly cache folder, so repeated conversations are never predicted twice).

    Examples
    --------
    >>> model = GazeRewardModel(GazeRewardConfig(mode="concat"))  # doctest: +SKIP
    >>> model.score([[{"role": "user", "content": "Hi"}]], ["Hello! How can I help?"])
    ... # doctest: +SKIP
    array([0.13], dtype=float32)
    """

    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    feature_scaling_fitted: torch.Tensor

    def __init__(
        self,
        config: GazeRewardConfig | None = None,
        *,
        predictor: GazePredictor | None = None,
        predictor_cache: str | os.PathLike[str] | None = _DEFAULT_CACHE,
        _adapter: Path | None = None,
    ) -> None:
        super().__init__()
        self.config = config if config is not None else GazeRewardConfig()
        base, tokenizer = _load_base(self.config)
        self.tokenizer: Any = tokenizer
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        hidden_size = int(base.config.get_text_config().hidden_size)
        self.hidden_size = hidden_size
        self.lower_cache: LowerLayerCache | None = None
        if self.config.inject_layer is not None:
            split_layer_count(base.base_model, self.config.inject_layer)
            self.lower_cache = LowerLayerCache(k=self.config.inject_layer)
        # LoRA wraps only the transformer, so the modules below stay outside peft's freezing.
        self.backbone: Any = _with_lora(base.base_model, self.config, adapter=_adapter)
        self.head = nn.Linear(hidden_size, 1)
        self.projector: GazeProjector | None = None
        self.eye_embeddings: nn.Parameter | None = None
        if self.config.uses_gaze:
            self.projector = GazeProjector(
                n_features=self.config.n_features,
                hidden_size=hidden_size,
                width=self.config.projector_width,
                dropout=self.config.fp_dropout,
            )
        if self.config.mode == "concat":
            self.eye_embeddings = nn.Parameter(self._eye_initialisation())
        n = len(WORD_MEASURES)
        self.register_buffer("feature_mean", torch.zeros(n))
        self.register_buffer("feature_std", torch.ones(n))
        self.register_buffer("feature_scaling_fitted", torch.tensor(False))
        self._predictor = predictor
        self._predictor_cache = predictor_cache
        self._place_new_modules()

    # ------------------------------------------------------------------ set-up
    def _eye_initialisation(self) -> torch.Tensor:
        """Two vectors drawn like the existing embeddings (their mean and spread)."""
        weight = self.backbone.get_input_embeddings().weight.detach().float()
        mean, std = weight.mean(dim=0), weight.std(dim=0)
        initial: torch.Tensor = mean + std * torch.randn(2, self.hidden_size)
        return initial

    def _place_new_modules(self) -> None:
        # With device_map loading (4-bit) the backbone already sits on the GPU.
        device = self.backbone.get_input_embeddings().weight.device
        if device.type != "meta":
            self.head.to(device)
            if self.projector is not None:
                self.projector.to(device)
            if self.eye_embeddings is not None:
                self.eye_embeddings.data = self.eye_embeddings.data.to(device)
            for name in ("feature_mean", "feature_std", "feature_scaling_fitted"):
                setattr(self, name, getattr(self, name).to(device))

    @property
    def predictor(self) -> GazePredictor:
        """The gaze predictor, built on first use."""
        if self._predictor is None:
            from tacitly.signals.synthetic.predictor import GazePredictor

            version = cast("Literal[1, 2]", self.config.predictor_version)
            if self._predictor_cache is _DEFAULT_CACHE:
                self._predictor = GazePredictor(version)
            else:
                self._predictor = GazePredictor(version, cache=self._predictor_cache)
        return self._predictor

    @property
    def device(self) -> torch.device:
        """Where the trained modules live."""
        return self.head.weight.device

    def named_trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Name and tensor of every parameter the optimiser should update."""
        return [(name, p) for name, p in self.named_parameters() if p.requires_grad]

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Every parameter the optimiser should update: LoRA, projector, eye tokens, head."""
        return [p for _, p in self.named_trainable_parameters()]

    def parameter_groups(
        self,
        *,
        learning_rate: float,
        new_modules_learning_rate: float | None = None,
        weight_decay: float = 0.0,
    ) -> list[dict[str, Any]]:
        """Optimiser groups: LoRA at ``learning_rate``; projector, eye tokens, head at their own.

        Parameters
        ----------
        learning_rate:
            For the LoRA adapters.
        new_modules_learning_rate:
            For the projector, the eye tokens and the head (default: None, ``learning_rate``).
        weight_decay:
            For every group (default: 0.0).
        """
        lora = [p for name, p in self.named_trainable_parameters() if name.startswith("backbone.")]
        new = [
            p for name, p in self.named_trainable_parameters() if not name.startswith("backbone.")
        ]
        other_rate = (
            learning_rate if new_modules_learning_rate is None else new_modules_learning_rate
        )
        return [
            {"params": lora, "lr": learning_rate, "weight_decay": weight_decay},
            {"params": new, "lr": other_rate, "weight_decay": weight_decay},
        ]

    # ------------------------------------------------------------------ encoding
    def encode(
        self,
        conversations: Sequence[Conversation],
        *,
        response_turns: Sequence[int] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Tokenize full conversations (prompt + response) into the inputs of :meth:`forward`.

        Parameters
        ----------
        conversations:
            Conversations in TRL's format; each ends with the response to be scored.
        response_turns:
            How many trailing messages of each conversation are the response (default: None,
            i.e. the trailing run of assistant messages, which must not be empty).

        Returns
        -------
        dict[str, torch.Tensor]
            ``input_ids`` and ``attention_mask`` ``[batch, length]`` (right-padded) and, in the
            gaze modes, ``gaze_features`` ``[batch, length, 5]`` (raw measures; scaling and
            ``features_used`` are applied in :meth:`forward`).
        """
        if isinstance(conversations, str | Mapping) or not conversations:
            raise InputError(
                "no conversations given", field="conversations", expected="a non-empty list"
            )
        if response_turns is not None and len(response_turns) != len(conversations):
            raise InputError(
                f"{len(response_turns)} response_turns for {len(conversations)} conversations",
                field="response_turns",
            )
        items = [
            _checked_item(
                conversation,
                row=i + 1,
                n_response=None if response_turns is None else response_turns[i],
            )
            for i, conversation in enumerate(conversations)
        ]
        word_values = self._word_values(items)
        encoded = [
            self._fit_length(item, values) for item, values in zip(items, word_values, strict=True)
        ]
        return self._padded(encoded)

    def collate(self, rows: Sequence[PreferenceRow]) -> dict[str, Any]:
        """Preference rows → ``{"chosen": inputs, "rejected": inputs, "margin": Tensor | None}``.

        ``margin`` is None when no row has one; rows without one get 0 otherwise.
        """
        if not rows:
            raise InputError("no rows given", field="rows", expected="a non-empty list of rows")
        checked = [checked_row(row, row_number=i + 1) for i, row in enumerate(rows)]
        chosen = self.encode(
            [prompt + answer for prompt, answer, _ in checked],
            response_turns=[len(answer) for _, answer, _ in checked],
        )
        rejected = self.encode(
            [prompt + answer for prompt, _, answer in checked],
            response_turns=[len(answer) for _, _, answer in checked],
        )
        margins = [row.get("margin") for row in rows]
        margin = None
        if any(m is not None for m in margins):
            margin = torch.tensor([0.0 if m is None else float(m) for m in margins])
        return {"chosen": chosen, "rejected": rejected, "margin": margin}

    def _word_values(self, items: Sequence[_Item]) -> list[dict[int, FloatArray]]:
        """Predicted measures per in-scope message, all texts of the batch in one call."""
        if not self.config.uses_gaze:
            return [{} for _ in items]
        wanted: list[tuple[int, int, list[str]]] = []
        for k, item in enumerate(items):
            first = 0
            if self.config.features_scope == "response":
                first = len(item.messages) - item.n_response
            for index in range(first, len(item.messages)):
                words = item.messages[index]["content"].split()
                if words:
                    wanted.append((k, index, words))
        predicted = self.predictor.predict_words([words for _, _, words in wanted])
        values: list[dict[int, FloatArray]] = [{} for _ in items]
        for (k, index, _), matrix in zip(wanted, predicted, strict=True):
            values[k][index] = matrix
        return values

    def _render(self, messages: Sequence[dict[str, str]], values: Mapping[int, FloatArray]) -> Any:
        return align_conversation(
            messages,
            dict(values) or None,
            self.tokenizer,
            mode=self.config.token_values,
            uncovered="ignore",
        )

    def _fit_length(self, item: _Item, values: Mapping[int, FloatArray]) -> _Tokens:
        """Render and tokenize, dropping earliest prompt turns, then prompt tokens, to fit."""
        limit = self.config.max_length
        n_prompt = len(item.messages) - item.n_response
        first = 0
        aligned = self._render(item.messages, values)
        while limit is not None and len(aligned.input_ids) > limit and first < n_prompt - 1:
            first += 1
            kept = {i - first: v for i, v in values.items() if i >= first}
            aligned = self._render(item.messages[first:], kept)
        ids = np.asarray(aligned.input_ids, dtype=np.int64)
        features = _feature_matrix(aligned.values, len(ids))
        if limit is None or len(ids) <= limit:
            return _Tokens(ids, features)
        prompt_tokens = np.flatnonzero(
            (aligned.message_index >= 0) & (aligned.message_index < n_prompt - first)
        )
        response_start = int(prompt_tokens[-1]) + 1 if len(prompt_tokens) else 0
        start = len(ids) - limit
        if start > response_start:
            if self.config.long_responses == "error":
                raise InputError(
                    f"the response takes {len(ids) - response_start} tokens, more than "
                    f"max_length={limit} on its own",
                    row=item.row,
                    field="response",
                    expected="a larger max_length, shorter responses, or long_responses='cut_end'",
                )
            start = response_start - min(response_start, limit // 2)
        window = slice(start, start + limit)
        return _Tokens(ids[window], features[window])

    def _padded(self, encoded: Sequence[_Tokens]) -> dict[str, torch.Tensor]:
        length = max(len(tokens.input_ids) for tokens in encoded)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(encoded), length), int(pad), dtype=torch.long)
        mask = torch.zeros((len(encoded), length), dtype=torch.long)
        features = torch.zeros((len(encoded), length, len(WORD_MEASURES)))
        for k, tokens in enumerate(encoded):
            n = len(tokens.input_ids)
            input_ids[k, :n] = torch.from_numpy(tokens.input_ids)
            mask[k, :n] = 1
            features[k, :n] = torch.from_numpy(tokens.features)
        inputs = {"input_ids": input_ids, "attention_mask": mask}
        if self.config.uses_gaze:
            inputs["gaze_features"] = features
        return inputs

    # ------------------------------------------------------------------ feature scaling
    def fit_feature_scaling(
        self, rows: Sequence[PreferenceRow], *, batch_size: int = 32, max_rows: int | None = None
    ) -> tuple[FloatArray, FloatArray] | None:
        """Set the standardisation statistics from training rows (chosen and rejected sides).

        Only tokens that carry reading measures count. Does nothing in ``baseline`` mode.

        Parameters
        ----------
        rows:
            Training rows.
        batch_size:
            Rows encoded at a time (default: 32).
        max_rows:
            Use only the first rows (default: None, all).

        Returns
        -------
        tuple[np.ndarray, np.ndarray] | None
            Mean and standard deviation per measure, or None in baseline mode.
        """
        if not self.config.uses_gaze:
            return None
        chosen = list(rows if max_rows is None else rows[:max_rows])
        total = torch.zeros(len(WORD_MEASURES), dtype=torch.float64)
        squares = torch.zeros_like(total)
        count = 0
        for begin in range(0, len(chosen), batch_size):
            batch = self.collate(chosen[begin : begin + batch_size])
            for side in ("chosen", "rejected"):
                features = batch[side]["gaze_features"].double()
                present = features.abs().sum(dim=-1) > 0
                values = features[present]
                total += values.sum(dim=0)
                squares += (values**2).sum(dim=0)
                count += values.shape[0]
        if count == 0:
            raise InputError("the rows hold no tokens with reading measures", field="rows")
        mean = total / count
        std = (squares / count - mean**2).clamp(min=0).sqrt()
        std = torch.where(std > _MIN_STD, std, torch.ones_like(std))
        self.feature_mean.copy_(mean.float())
        self.feature_std.copy_(std.float())
        self.feature_scaling_fitted.fill_(True)
        return mean.float().numpy(), std.float().numpy()

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        gaze_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One reward per sequence, shape ``[batch]`` (float32).

        Padding may be on either side; the reward is read at the last token the mask keeps.
        """
        device = self.device
        input_ids = input_ids.to(device)
        mask = attention_mask.to(device)
        if self.lower_cache is not None:
            embeddings = self.lower_cache.states(self.backbone, input_ids, mask)
        else:
            embeddings = self.backbone.get_input_embeddings()(input_ids)
        if self.config.uses_gaze:
            if gaze_features is None:
                raise InputError(
                    f"mode {self.config.mode!r} needs gaze_features",
                    field="gaze_features",
                    expected="the inputs made by encode()",
                )
            gaze = self._project(gaze_features.to(device)).to(embeddings.dtype)
            if self.config.mode == "add":
                embeddings = embeddings + gaze
            else:
                embeddings, mask = self._prefix_gaze(embeddings, gaze, mask)
        positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
        if self.lower_cache is not None:
            hidden = run_upper_layers(
                self.backbone, embeddings, mask, positions, k=self.lower_cache.k
            )
        else:
            hidden = self.backbone(
                inputs_embeds=embeddings, attention_mask=mask, position_ids=positions
            ).last_hidden_state
        last = (mask * torch.arange(mask.shape[1], device=device)).argmax(dim=-1)
        pooled = hidden[torch.arange(hidden.shape[0], device=device), last]
        reward: torch.Tensor = self.head(pooled.float()).squeeze(-1)
        return reward

    def pair_rewards(
        self, chosen: Mapping[str, torch.Tensor], rejected: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewards of both sides of each pair, ``([pairs], [pairs])``, from :meth:`collate`'s
        ``chosen`` and ``rejected`` inputs.

        With ``share_prompt`` (baseline mode, SDPA or eager attention, no layer cache) each pair
        runs as one packed sequence (:mod:`tacitly.rewards.shared_prefix`) whenever that takes
        fewer tokens than two; otherwise, and in the gaze modes, each side runs on its own.
        """
        packed = self._packed(chosen, rejected)
        if packed is None:
            return self(**chosen), self(**rejected)
        device = self.device
        mask = packed.attention_mask.to(device)
        if self.backbone.config._attn_implementation == "eager":
            mask = torch.zeros(mask.shape, device=device).masked_fill(
                ~mask, torch.finfo(torch.float32).min
            )
        hidden = self.backbone(
            input_ids=packed.input_ids.to(device),
            attention_mask=mask,
            position_ids=packed.position_ids.to(device),
        ).last_hidden_state
        rows = torch.arange(hidden.shape[0], device=device)
        pooled = torch.cat(
            [
                hidden[rows, packed.chosen_last.to(device)],
                hidden[rows, packed.rejected_last.to(device)],
            ]
        )
        rewards: torch.Tensor = self.head(pooled.float()).squeeze(-1)
        return rewards[: len(rows)], rewards[len(rows) :]

    def _packed(
        self, chosen: Mapping[str, torch.Tensor], rejected: Mapping[str, torch.Tensor]
    ) -> PackedPairs | None:
        usable = (
            self.config.share_prompt
            and self.config.mode == "baseline"
            and self.lower_cache is None
            and self.backbone.config._attn_implementation in ("sdpa", "eager")
            and _right_padded(chosen["attention_mask"])
            and _right_padded(rejected["attention_mask"])
        )
        if not usable:
            return None
        packed = pack_pairs(
            chosen["input_ids"],
            chosen["attention_mask"],
            rejected["input_ids"],
            rejected["attention_mask"],
            pad_id=int(self.tokenizer.pad_token_id),
        )
        separate = chosen["input_ids"].numel() + rejected["input_ids"].numel()
        return packed if packed.input_ids.numel() < separate else None

    def _project(self, features: torch.Tensor) -> torch.Tensor:
        assert self.projector is not None
        used = torch.tensor(
            [i for i, flag in enumerate(self.config.features_used) if flag], device=features.device
        )
        chosen = features.float().index_select(-1, used)
        if self.config.standardise:
            if not bool(self.feature_scaling_fitted):
                warnings.warn(
                    "gaze features pass unscaled: call fit_feature_scaling(train_rows) before "
                    "training, or set standardise=False",
                    stacklevel=3,
                )
            present = chosen.abs().sum(dim=-1, keepdim=True) > 0
            scaled = (chosen - self.feature_mean[used]) / self.feature_std[used]
            chosen = torch.where(present, scaled, torch.zeros_like(scaled))
        projected: torch.Tensor = self.projector(chosen)
        return projected

    def _prefix_gaze(
        self, embeddings: torch.Tensor, gaze: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[<eye/>, gaze…, </eye>, text…]`` per row, right-padded, from any padding side."""
        assert self.eye_embeddings is not None
        batch, length, hidden = embeddings.shape
        device = embeddings.device
        # Real tokens first, in order: a stable sort of the padding flags.
        order = torch.sort((mask == 0).to(torch.int8), dim=-1, stable=True).indices
        gather = order.unsqueeze(-1).expand(-1, -1, hidden)
        text = embeddings.gather(1, gather)
        gaze = gaze.gather(1, gather)
        eyes = self.eye_embeddings.to(embeddings.dtype).unsqueeze(0).expand(batch, -1, -1)
        blank = torch.zeros(batch, 1, hidden, dtype=embeddings.dtype, device=device)
        # Source layout: gaze 0..L-1, text L..2L-1, <eye/> 2L, </eye> 2L+1, blank 2L+2.
        source = torch.cat([gaze, text, eyes, blank], dim=1)
        n = mask.sum(dim=-1, keepdim=True)
        j = torch.arange(2 * length + 2, device=device).unsqueeze(0)
        index = torch.full_like(j.expand(batch, -1), 2 * length + 2)
        index = torch.where(j == 0, 2 * length, index)
        index = torch.where((j >= 1) & (j <= n), j - 1, index)
        index = torch.where(j == n + 1, 2 * length + 1, index)
        index = torch.where((j >= n + 2) & (j <= 2 * n + 1), length + j - n - 2, index)
        combined = source.gather(1, index.unsqueeze(-1).expand(-1, -1, hidden))
        new_mask = (j < 2 * n + 2).to(mask.dtype)
        return combined, new_mask

    # ------------------------------------------------------------------ scoring
    def score(
        self,
        prompts: Sequence[Conversation | str],
        responses: Sequence[Conversation | str],
        *,
        batch_size: int = 8,
    ) -> npt.NDArray[np.float32]:
        """One reward per (prompt, response) pair.

        Parameters
        ----------
        prompts:
            Conversations so far, or plain user messages.
        responses:
            Assistant turn(s), or plain assistant messages.
        batch_size:
            Conversations per forward pass (default: 8).
        """
        if len(prompts) != len(responses):
            raise InputError(
                f"{len(prompts)} prompts but {len(responses)} responses", field="responses"
            )
        conversations = [
            as_messages(p, "user") + as_messages(r, "assistant")
            for p, r in zip(prompts, responses, strict=True)
        ]
        turns = [len(as_messages(r, "assistant")) for r in responses]
        return self._score_batches(conversations, turns, batch_size=batch_size)

    def compare(
        self, rows: Sequence[PreferenceRow], *, batch_size: int = 8
    ) -> npt.NDArray[np.float32]:
        """Reward of the chosen side minus reward of the rejected side, per row."""
        checked = [checked_row(row, row_number=i + 1) for i, row in enumerate(rows)]
        chosen = self._score_batches(
            [p + c for p, c, _ in checked], [len(c) for _, c, _ in checked], batch_size=batch_size
        )
        rejected = self._score_batches(
            [p + r for p, _, r in checked], [len(r) for _, _, r in checked], batch_size=batch_size
        )
        return chosen - rejected

    def _score_batches(
        self, conversations: Sequence[Conversation], turns: Sequence[int], *, batch_size: int
    ) -> npt.NDArray[np.float32]:
        if not conversations:
            return np.zeros(0, dtype=np.float32)
        was_training = self.training
        self.eval()
        scores = []
        try:
            with torch.inference_mode():
                for begin in range(0, len(conversations), batch_size):
                    end = begin + batch_size
                    inputs = self.encode(conversations[begin:end], response_turns=turns[begin:end])
                    scores.append(self(**inputs).float().cpu().numpy())
        finally:
            self.train(was_training)
        return np.concatenate(scores).astype(np.float32)

    # ------------------------------------------------------------------ saving
    def _own_state(self) -> dict[str, torch.Tensor]:
        """Trained tensors outside the LoRA adapter, and the scaling buffers."""
        return {
            name: tensor.detach().cpu().contiguous()
            for name, tensor in self.state_dict().items()
            if not name.startswith("backbone.")
        }

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``config.json``, ``model.safetensors`` (projector, eye tokens, head, scaling)
        and the LoRA adapter (``adapter/``) to ``folder``.

        Returns
        -------
        Path
            The folder.
        """
        from safetensors.torch import save_file

        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        content = {"model_type": MODEL_TYPE, "format": _FORMAT, **self.config.to_dict()}
        (target / CONFIG_NAME).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
        save_file(self._own_state(), str(target / WEIGHTS_NAME), metadata={"format": "pt"})
        self.backbone.save_pretrained(str(target / ADAPTER_FOLDER))
        return target

    @classmethod
    def from_pretrained(
        cls,
        folder: str | os.PathLike[str],
        *,
        mode: Mode | None = None,
        predictor: GazePredictor | None = None,
        predictor_cache: str | os.PathLike[str] | None = _DEFAULT_CACHE,
    ) -> GazeRewardModel:
        """Load a model written by :meth:`save_pretrained` (trainable, in eval mode).

        Parameters
        ----------
        folder:
            The saved model.
        mode:
            The mode the caller expects; a checkpoint of another mode is an error
            (default: None, any).
        predictor, predictor_cache:
            As for the constructor.
        """
        source = Path(folder)
        config = _read_config(source)
        if mode is not None and mode != config.mode:
            raise InputError(
                f"the checkpoint is a {config.mode!r} model, not {mode!r}",
                source=source / CONFIG_NAME,
                field="mode",
                expected=f"a {mode!r} checkpoint, or mode={config.mode!r}",
            )
        model = cls(
            config,
            predictor=predictor,
            predictor_cache=predictor_cache,
            _adapter=source / ADAPTER_FOLDER,
        )
        model._load_own_state(source / WEIGHTS_NAME)
        model.eval()
        return model

    def _load_own_state(self, path: Path) -> None:
        from safetensors.torch import load_file

        if not path.is_file():
            raise InputError("the trained weights are missing", source=path)
        saved = load_file(str(path))
        expected = self._own_state()
        missing = sorted(set(expected) - set(saved))
        unexpected = sorted(set(saved) - set(expected))
        if missing or unexpected:
            raise InputError(
                f"the weights do not fit a {self.config.mode!r} model "
                f"(missing {missing}, unexpected {unexpected})",
                source=path,
                expected="the model.safetensors written with this config.json",
            )
        wrong = [k for k in saved if saved[k].shape != expected[k].shape]
        if wrong:
            raise InputError(f"tensors {wrong} have other shapes than the config says", source=path)
        self.load_state_dict(saved, strict=False)


# --------------------------------------------------------------------------------------------
# helpers


def _right_padded(mask: torch.Tensor) -> bool:
    """Whether every row of a 0/1 mask is ones then zeros."""
    return bool((mask.cumprod(dim=-1).sum(dim=-1) == mask.sum(dim=-1)).all())


def _read_config(folder: Path) -> GazeRewardConfig:
    path = folder / CONFIG_NAME
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise InputError("no saved gaze reward model here", source=path) from error
    except ValueError as error:
        raise InputError(f"unreadable config ({error})", source=path) from error
    if not isinstance(content, dict) or content.pop("model_type", None) != MODEL_TYPE:
        raise InputError(
            "not a gaze reward model config", source=path, expected=f"model_type {MODEL_TYPE!r}"
        )
    if content.pop("format", None) != _FORMAT:
        raise InputError("unknown checkpoint format", source=path, field="format")
    return GazeRewardConfig.from_dict(content, source=path)


def _load_base(config: GazeRewardConfig) -> tuple[Any, Any]:
    """The causal LM and its tokenizer; 4-bit NF4 on a GPU when asked or available."""
    if not _wants_4bit(config):
        from tacitly.backbones import load_causal_lm

        return load_causal_lm(config.model_name)
    return _load_base_4bit(config)


def _wants_4bit(config: GazeRewardConfig) -> bool:
    if config.load_in_4bit is False:
        return False
    import importlib.util

    available = torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None
    if config.load_in_4bit and not available:
        raise InputError(
            "4-bit loading needs a CUDA GPU and the bitsandbytes package",
            field="load_in_4bit",
            expected="load_in_4bit=False or None on this machine",
        )
    return available


def _load_base_4bit(config: GazeRewardConfig) -> tuple[Any, Any]:  # pragma: no cover - GPU only
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from tacitly import backbones

    if config.model_name is None or config.model_name == backbones.DEFAULT_LM:
        # The embedded default is converted once to a safetensors folder; quantise from there.
        name = str(backbones.embedded_lm_folder())
    else:
        name = config.model_name
    tokenizer = backbones.load_tokenizer(name)
    quantisation = BitsAndBytesConfig(  # type: ignore[no-untyped-call]
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    model = AutoModelForCausalLM.from_pretrained(
        name, quantization_config=quantisation, device_map={"": torch.cuda.current_device()}
    )
    model = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
        model, use_gradient_checkpointing=False
    )
    return model, tokenizer


def _with_lora(decoder: Any, config: GazeRewardConfig, *, adapter: Path | None) -> Any:
    from peft import LoraConfig, PeftModel, get_peft_model

    if adapter is not None:
        if not (adapter / "adapter_config.json").is_file():
            raise InputError("the LoRA adapter is missing", source=adapter)
        return PeftModel.from_pretrained(decoder, str(adapter), is_trainable=True)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=_lora_targets(decoder, config),
        bias="none",
    )
    return get_peft_model(decoder, lora)


def _lora_targets(decoder: Any, config: GazeRewardConfig) -> list[str] | None:
    """LoRA's target modules: the configured names or peft's default for the architecture;
    with a split decoder, only those in layers >= inject_layer (the frozen lower layers get no
    adapters, since their output is cached)."""
    names = None if config.lora_target_modules is None else list(config.lora_target_modules)
    if config.inject_layer is None:
        return names
    if names is None:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

        model_type = str(decoder.config.model_type)
        default = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type)
        if default is None:
            raise InputError(
                f"peft has no default LoRA targets for {model_type!r}",
                field="lora_target_modules",
                expected="the names of the modules to adapt, e.g. q_proj,v_proj",
            )
        names = list(default)
    wanted = set(names)
    targets = []
    for index, layer in enumerate(decoder_layers(decoder)):
        if index < config.inject_layer:
            continue
        prefix = f"layers.{index}."
        targets += [prefix + n for n, _ in layer.named_modules() if n.split(".")[-1] in wanted]
    return targets


def _feature_matrix(values: Any, n_tokens: int) -> FloatArray:
    """Token values as ``[n_tokens, 5]`` float32; a conversation without values gives zeros."""
    matrix = np.asarray(values, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        return np.zeros((n_tokens, len(WORD_MEASURES)), dtype=np.float32)
    return matrix


def _checked_item(conversation: object, *, row: int, n_response: int | None) -> _Item:
    messages = checked_messages(conversation, row=row, name="messages")
    if n_response is None:
        n_response = 0
        while n_response < len(messages) and messages[-1 - n_response]["role"] == "assistant":
            n_response += 1
    if not 1 <= n_response <= len(messages):
        raise InputError(
            "the conversation does not end with a response",
            row=row,
            field="messages",
            expected="one or more trailing assistant messages",
        )
    for message in messages[len(messages) - n_response :]:
        if not message["content"].strip():
            raise InputError("the response is empty", row=row, field="response")
    return _Item(messages=messages, n_response=n_response, row=row)
