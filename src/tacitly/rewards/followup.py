"""Follow-up likelihood reward (FLR): how likely is the user's next turn to be a happy one?

A response is good when a language model, reading the conversation, expects the user to answer
"that's exactly what I needed" rather than "that's not what I asked". No training is needed:
the reward of a response is, per aspect of helpfulness,

``mean over positive follow-ups f of s(f)  -  mean over negative follow-ups f of s(f)``

and the overall reward is the weighted mean of the aspect rewards (equal weights by default,
:meth:`FollowupReward.fit_aspect_weights` to fit them). ``s(f)`` is the log-probability of the
follow-up ``f`` as the next user turn, given everything before it, rendered with the model's
own chat template.

Design decisions
----------------
``s(f)`` is the mean log-probability of ``f``'s content tokens (``reduction="mean"``).
    The mean keeps long and short follow-ups on one scale, so a set is not dominated by its
    longest sentences; ``reduction="sum"`` gives the full sequence log-probability instead.
    The end-of-turn token after ``f`` (``<|im_end|>`` in ChatML) is left out by default
    (``include_end_of_turn=False``): whether the user stops after ``f`` says more about ``f``
    than about the response being judged.
Which tokens are ``f``'s content tokens.
    The whole conversation *including* the follow-up turn is rendered with the chat template
    and tokenized once, as the model would see it; the follow-up's characters are located in
    the rendered text (its last occurrence, since it is the last message) and every token
    whose character span overlaps them is a content token. A token that straddles the markup
    and the text (possible with some tokenizers) therefore counts as content.
The shared context is the common token prefix.
    For one conversation the token sequences of all follow-ups agree up to the follow-up text;
    the shared context is their longest common prefix, cut at the first content token. It is
    run once (decoder only: its last position is the only one projected onto the
    vocabulary, as it predicts each follow-up's first token). The follow-ups' own tokens are
    then packed, up to 256 tokens per row, into rows after their conversation's cached
    context, with a block attention mask so that each follow-up sees the context and its own
    earlier tokens only; only the scored positions are projected onto the vocabulary.
    Because every token sees exactly the tokens it sees in the full rendered sequence, at
    the same positions, the cached scores equal one full forward pass per follow-up
    (:meth:`FollowupReward.naive_followup_logprobs`) up to float rounding (tested to 1e-4).
    The packed pass needs an attention implementation that takes a 4D mask (``sdpa``, the
    default, or ``eager``; not ``flash_attention_2``). Conversations are batched with
    left-padded contexts; each packed pass holds at most ``max_batch_tokens`` cached + new
    tokens, so memory stays bounded for any number of follow-ups.
Calibration (``calibration="pmi"``) is per prompt.
    Each follow-up's log-probability after a neutral reply (``neutral_response``, "OK." by
    default) to the *same* prompt is subtracted: pointwise mutual information between the
    response and the follow-up, so that phrases the model likes after any reply stop
    dominating. A prompt-free baseline would only shift every reward by one constant, so it
    is not offered. Because the aggregation over follow-ups is linear, a per-prompt baseline
    cancels exactly in :meth:`~FollowupReward.compare` (chosen and rejected share the
    prompt): PMI changes scores across prompts (correlation with ratings, model rankings),
    never pairwise accuracy. ``compare`` therefore skips computing it.
Length normalisation is a fitted slope (``length_slope``).
    The overall reward minus ``length_slope * log(1 + response tokens)``. The slope is the
    model's own length bias, fitted by :meth:`FollowupReward.fit_length_slope` without labels:
    the least-squares slope through the origin of the reward difference on the log-length
    difference of pairs of responses to the same prompt.
Long conversations are cut from the left.
    When the longest follow-up sequence exceeds ``max_length`` (or the model's context), the
    earliest messages before the response are dropped whole while more than one remains,
    then tokens are cut from the left of the rendered text, never past the start of the
    response's text. A response plus follow-up that alone do not fit raise
    :class:`~tacitly.errors.InputError`.
Layouts.
    ``layout="user"`` appends the follow-up as a user turn; ``layout="critic"`` presents the
    conversation with roles swapped for a critic model fine-tuned by
    :mod:`tacitly.rewards.critic`, whose own (assistant) turn is the follow-up. Any callable
    ``(conversation, followup) -> messages`` whose last message holds the follow-up works.

Examples
--------
>>> followups = load_followups()
>>> sorted(followups.aspects)[:3], len(followups.texts)
(['correctness', 'engagingness', 'informativeness'], 120)
>>> FollowupRewardConfig(aspects="relevance,correctness").aspects
('relevance', 'correctness')
>>> reward = FollowupReward()  # doctest: +SKIP
>>> reward.score(["How do I boil an egg?"], ["Put it in boiling water for 8 minutes."])
... # doctest: +SKIP
array([0.41])
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast, get_args

import numpy as np
import numpy.typing as npt
import polars as pl
import torch

from tacitly.errors import InputError
from tacitly.rewards.inputs import (
    as_messages,
    check_choice,
    check_known_keys,
    checked_messages,
    checked_row,
    config_dict,
)

if TYPE_CHECKING:
    from tacitly.data.schema import PreferenceRow

__all__ = [
    "AspectFollowups",
    "FollowupReward",
    "FollowupRewardConfig",
    "FollowupSet",
    "Layout",
    "load_followups",
    "user_layout",
]

Reduction: TypeAlias = Literal["mean", "sum"]
Calibration: TypeAlias = Literal["none", "pmi"]
LayoutName: TypeAlias = Literal["user", "critic"]
Message: TypeAlias = Mapping[str, str]
Conversation: TypeAlias = Sequence[Message]
Layout: TypeAlias = Callable[[Sequence[Message], str], list[dict[str, str]]]
FloatMatrix: TypeAlias = npt.NDArray[np.float64]

FOLLOWUPS_FILE = "followups.json"
_FOLLOWUPS_FORMAT = 1
_CONFIG_TYPE = "tacitly-followup-reward"
_SET_KEYS = {"format", "description", "aspects"}
_ASPECT_KEYS = {"description", "positive", "negative"}
# Follow-up tokens packed into one row: longer packs waste attention on masked-out pairs.
_PACK_TOKENS = 256
# Rows projected onto the vocabulary at once (49k floats each for SmolLM2).
_HEAD_ROWS = 1024


# --------------------------------------------------------------------------------------------
# follow-up sets


@dataclass(frozen=True)
class AspectFollowups:
    """The positive and negative follow-ups of one aspect."""

    positive: tuple[str, ...]
    negative: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class FollowupSet:
    """Follow-ups per aspect, in file order.

    Examples
    --------
    >>> s = FollowupSet({"a": AspectFollowups(positive=("Great!",), negative=("Wrong.",))})
    >>> s.texts, s.polarity_of("a")
    (('Great!', 'Wrong.'), ([0], [1]))
    """

    aspects: Mapping[str, AspectFollowups]

    @property
    def texts(self) -> tuple[str, ...]:
        """Every follow-up once, aspect by aspect, positives before negatives."""
        return tuple(text for _, _, text in self.columns)

    @property
    def columns(self) -> list[tuple[str, bool, str]]:
        """``(aspect, is_positive, text)`` for each follow-up, in the order of :attr:`texts`."""
        return [
            (name, positive, text)
            for name, aspect in self.aspects.items()
            for positive, texts in ((True, aspect.positive), (False, aspect.negative))
            for text in texts
        ]

    def polarity_of(self, aspect: str) -> tuple[list[int], list[int]]:
        """Column indices (into :attr:`texts`) of the aspect's positives and negatives."""
        positive = [i for i, (a, p, _) in enumerate(self.columns) if a == aspect and p]
        negative = [i for i, (a, p, _) in enumerate(self.columns) if a == aspect and not p]
        return positive, negative

    def select(self, names: Sequence[str], *, source: str | None = None) -> FollowupSet:
        """Only the named aspects, in the given order."""
        missing = [name for name in names if name not in self.aspects]
        if missing:
            raise InputError(
                f"unknown aspects {missing}",
                source=source,
                field="aspects",
                expected=", ".join(self.aspects),
            )
        return FollowupSet({name: self.aspects[name] for name in names})


def load_followups(
    source: str | os.PathLike[str] | Mapping[str, Any] | None = None,
) -> FollowupSet:
    """Read and check a follow-up file (or an already parsed mapping).

    The schema (JSON)::

        {"format": 1,                       # optional, must be 1
         "description": "...",              # optional
         "aspects": {
           "<aspect>": {"description": "...",          # optional
                        "positive": ["...", ...],      # >= 1 non-empty strings
                        "negative": ["...", ...]}}}    # >= 1 non-empty strings

    Parameters
    ----------
    source:
        A JSON file, a mapping of that shape, or None for the shipped set of six aspects
        (understanding, relevance, correctness, engagingness, informativeness,
        instruction_following; 10 positive and 10 negative follow-ups each) (default: None).

    Raises
    ------
    InputError
        Unknown keys, an aspect without positives or negatives, or empty texts; the message
        names the file and the aspect.

    Examples
    --------
    >>> s = load_followups({"aspects": {"tone": {"positive": ["Nice!"], "negative": ["Rude."]}}})
    >>> s.aspects["tone"].negative
    ('Rude.',)
    >>> load_followups({"aspects": {"tone": {"positive": ["Nice!"], "negative": []}}})
    Traceback (most recent call last):
    ...
    tacitly.errors.InputError: field "aspects.tone.negative": no negative follow-ups \
(expected a non-empty list of strings)
    """
    label: str | None
    if source is None:
        path = resources.files("tacitly.rewards").joinpath(FOLLOWUPS_FILE)
        label, content = FOLLOWUPS_FILE, json.loads(path.read_text(encoding="utf-8"))
    elif isinstance(source, Mapping):
        label, content = None, source
    else:
        label, content = str(source), _read_json(Path(source))
    return _parsed_followups(content, source=label)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise InputError("follow-up file not found", source=path) from error
    except ValueError as error:
        raise InputError(f"not valid JSON ({error})", source=path) from error


def _parsed_followups(content: object, *, source: str | None) -> FollowupSet:
    if not isinstance(content, Mapping):
        raise InputError("a follow-up set must be a JSON object", source=source)
    _no_unknown_keys(content, _SET_KEYS, source=source, where="")
    if content.get("format", _FOLLOWUPS_FORMAT) != _FOLLOWUPS_FORMAT:
        raise InputError("unknown format", source=source, field="format", expected="1")
    aspects = content.get("aspects")
    if not isinstance(aspects, Mapping) or not aspects:
        raise InputError(
            "no aspects", source=source, field="aspects", expected="a non-empty object"
        )
    return FollowupSet(
        {str(name): _parsed_aspect(name, value, source=source) for name, value in aspects.items()}
    )


def _parsed_aspect(name: object, value: object, *, source: str | None) -> AspectFollowups:
    where = f"aspects.{name}"
    if not isinstance(name, str) or not name.strip():
        raise InputError("aspect names must be non-empty", source=source, field="aspects")
    if not isinstance(value, Mapping):
        raise InputError(
            "an aspect must be an object", source=source, field=where, expected="positive/negative"
        )
    _no_unknown_keys(value, _ASPECT_KEYS, source=source, where=where)
    description = value.get("description", "")
    if not isinstance(description, str):
        raise InputError("not a string", source=source, field=f"{where}.description")
    return AspectFollowups(
        positive=_parsed_texts(value.get("positive"), source=source, where=f"{where}.positive"),
        negative=_parsed_texts(value.get("negative"), source=source, where=f"{where}.negative"),
        description=description,
    )


def _parsed_texts(value: object, *, source: str | None, where: str) -> tuple[str, ...]:
    polarity = where.rsplit(".", 1)[-1]
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise InputError(
            f"no {polarity} follow-ups",
            source=source,
            field=where,
            expected="a non-empty list of strings",
        )
    for index, text in enumerate(value):
        if not isinstance(text, str) or not text.strip():
            raise InputError(
                f"follow-up {index + 1} is empty or not a string",
                source=source,
                field=where,
                expected="non-empty text",
            )
    return tuple(text.strip() for text in value)


def _no_unknown_keys(
    content: Mapping[Any, Any], known: set[str], *, source: str | None, where: str
) -> None:
    unknown = sorted(str(key) for key in set(content) - known)
    if unknown:
        raise InputError(
            f"unknown keys {unknown}",
            source=source,
            field=where or None,
            expected=", ".join(sorted(known)),
        )


# --------------------------------------------------------------------------------------------
# configuration


def _help(text: str) -> dict[str, str]:
    return {"help": text}


def _names(value: object) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else cast("Sequence[Any]", value)
    return tuple(str(item).strip() for item in items if str(item).strip())


@dataclass
class FollowupRewardConfig:
    """Everything that defines a follow-up likelihood reward; saved as JSON.

    Examples
    --------
    >>> config = FollowupRewardConfig(weights={"relevance": 2.0}, calibration="pmi")
    >>> FollowupRewardConfig.from_dict(config.to_dict()) == config
    True
    >>> FollowupRewardConfig(reduction="max")
    Traceback (most recent call last):
    ...
    tacitly.errors.InputError: field "reduction": unknown reduction 'max' \
(expected 'mean' or 'sum')
    """

    model_name: str | None = field(
        default=None,
        metadata=_help(
            "Causal LM: None for the embedded SmolLM2-135M-Instruct, a local folder (e.g. a "
            "fine-tuned critic) or a Hugging Face id (default: None)."
        ),
    )
    followups: str | None = field(
        default=None,
        metadata=_help(
            "Follow-up file (JSON, see load_followups), or None for the shipped set "
            "(default: None)."
        ),
    )
    aspects: tuple[str, ...] | None = field(
        default=None,
        metadata=_help("Aspects to use, in order, or None for all in the set (default: None)."),
    )
    weights: dict[str, float] | None = field(
        default=None,
        metadata=_help(
            "Weight of each aspect in the overall reward (a weighted mean); aspects not named "
            "get 0; None: equal weights (default: None)."
        ),
    )
    reduction: Reduction = field(
        default="mean",
        metadata=_help(
            "Score of a follow-up: 'mean' or 'sum' of its tokens' log-probabilities "
            "(default: 'mean')."
        ),
    )
    include_end_of_turn: bool = field(
        default=False,
        metadata=_help(
            "Also score the token that ends the follow-up turn (default: False, content only)."
        ),
    )
    calibration: Calibration = field(
        default="none",
        metadata=_help(
            "'pmi': subtract each follow-up's log-probability after neutral_response to the "
            "same prompt; 'none' (default: 'none'; pairwise comparisons are the same either "
            "way)."
        ),
    )
    neutral_response: str = field(
        default="OK.",
        metadata=_help("The neutral reply of the 'pmi' baseline (default: 'OK.')."),
    )
    length_slope: float | None = field(
        default=None,
        metadata=_help(
            "Subtract length_slope * log(1 + response tokens) from the overall reward; set by "
            "fit_length_slope() (default: None, no length normalisation)."
        ),
    )
    layout: LayoutName = field(
        default="user",
        metadata=_help(
            "'user': the follow-up is the next user turn; 'critic': roles swapped for a critic "
            "fine-tuned with tacitly.rewards.critic (default: 'user')."
        ),
    )
    max_length: int | None = field(
        default=None,
        metadata=_help(
            "Most tokens of a conversation plus follow-up; earlier turns are cut first "
            "(default: None, the model's context length)."
        ),
    )
    batch_size: int = field(
        default=8, metadata=_help("Conversations per context pass (default: 8).")
    )
    max_batch_tokens: int = field(
        default=32768,
        metadata=_help(
            "Most cached + new tokens in one packed follow-up pass, bounding memory "
            "(default: 32768)."
        ),
    )
    device: str | None = field(
        default=None,
        metadata=_help("Where the model runs; None: 'cuda' when available (default: None)."),
    )

    def __post_init__(self) -> None:
        check_choice(self.reduction, get_args(Reduction), "reduction")
        check_choice(self.calibration, get_args(Calibration), "calibration")
        check_choice(self.layout, get_args(LayoutName), "layout")
        if self.aspects is not None:
            self.aspects = _names(self.aspects)
            if not self.aspects:
                raise InputError("no aspects named", field="aspects")
        if self.weights is not None:
            self.weights = self._checked_weights(self.weights)
        for name in ("batch_size", "max_batch_tokens"):
            _check_positive(name, getattr(self, name))
        if self.max_length is not None:
            _check_positive("max_length", self.max_length)
        if self.length_slope is not None:
            self.length_slope = float(self.length_slope)

    @staticmethod
    def _checked_weights(weights: Mapping[str, Any]) -> dict[str, float]:
        try:
            checked = {str(k): float(v) for k, v in weights.items()}
        except (TypeError, ValueError, AttributeError) as error:
            raise InputError(
                f"cannot read weights {weights!r}", field="weights", expected="aspect -> number"
            ) from error
        if any(w < 0 or not math.isfinite(w) for w in checked.values()):
            raise InputError("weights must be finite and >= 0", field="weights")
        if sum(checked.values()) <= 0:
            raise InputError("all weights are 0", field="weights", expected="one weight > 0")
        return checked

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return config_dict(self)

    @classmethod
    def from_dict(
        cls, values: Mapping[str, Any], *, source: str | os.PathLike[str] | None = None
    ) -> FollowupRewardConfig:
        """Build a config from :meth:`to_dict`'s output; unknown keys are an error."""
        check_known_keys(cls, values, source=source)
        return cls(**dict(values))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the config as JSON (with a ``model_type`` marker); returns the path."""
        target = Path(path)
        content = {"model_type": _CONFIG_TYPE, **self.to_dict()}
        target.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FollowupRewardConfig:
        """Read a config written by :meth:`save`."""
        content = _read_json(Path(path))
        if not isinstance(content, dict) or content.pop("model_type", None) != _CONFIG_TYPE:
            raise InputError(
                "not a follow-up reward config",
                source=path,
                expected=f"model_type {_CONFIG_TYPE!r}",
            )
        return cls.from_dict(content, source=path)


def _check_positive(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}", field=name)


# --------------------------------------------------------------------------------------------
# layouts and tokenisation


def user_layout(conversation: Sequence[Message], followup: str) -> list[dict[str, str]]:
    """The conversation followed by the follow-up as the next user turn.

    Examples
    --------
    >>> user_layout([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}],
    ...             "Thanks!")[-1]
    {'role': 'user', 'content': 'Thanks!'}
    """
    return [*(dict(m) for m in conversation), {"role": "user", "content": followup}]


def _critic_layout(conversation: Sequence[Message], followup: str) -> list[dict[str, str]]:
    from tacitly.rewards.critic import critic_messages

    return critic_messages(conversation, followup)


@dataclass(frozen=True)
class _Encoded:
    """One conversation's token sequences, one per follow-up, sharing a context prefix.

    ``rows[k]`` holds the tokens up to and including the last scored token of follow-up ``k``
    (later tokens cannot change its score); ``scored[k]`` is the ``[start, end)`` range of
    the scored tokens; ``shared`` the length of the common context.
    """

    rows: list[list[int]]
    scored: list[tuple[int, int]]
    shared: int


@dataclass(frozen=True)
class _Item:
    messages: list[dict[str, str]]
    n_response: int
    row: int


class _Renderer:
    """Renders conversation + follow-up with the chat template and finds the scored tokens."""

    def __init__(
        self,
        tokenizer: Any,
        *,
        layout: Layout,
        include_end_of_turn: bool,
        limit: int,
    ) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise InputError(
                "the follow-up reward needs a fast tokenizer (character offsets)",
                field="tokenizer",
                expected="a tokenizers-backed tokenizer",
            )
        if getattr(tokenizer, "chat_template", None) is None:
            raise InputError(
                "the model's tokenizer has no chat template",
                field="model_name",
                expected="a chat model",
            )
        self.tokenizer = tokenizer
        self.layout = layout
        self.include_end_of_turn = include_end_of_turn
        self.limit = limit

    def encode(self, item: _Item, followups: Sequence[str]) -> _Encoded:
        """Tokens of every follow-up after the conversation, cut to fit ``limit``."""
        n_prompt = len(item.messages) - item.n_response
        first = 0
        rendered = self._render(item.messages, followups, row=item.row)
        while self._longest(rendered) > self.limit and first < n_prompt - 1:
            first += 1
            rendered = self._render(item.messages[first:], followups, row=item.row)
        response = item.messages[len(item.messages) - item.n_response :]
        cut = self._left_cut(rendered, response, row=item.row)
        return _shared_prefix(
            [(ids[cut:], (start - cut, end - cut)) for ids, (start, end) in rendered[0]]
        )

    @staticmethod
    def _longest(rendered: tuple[list[tuple[list[int], tuple[int, int]]], Any]) -> int:
        # The model reads each row up to its last scored token only.
        return max(end for _, (_, end) in rendered[0])

    def _left_cut(
        self,
        rendered: tuple[list[tuple[list[int], tuple[int, int]]], Any],
        response: Sequence[Message],
        *,
        row: int,
    ) -> int:
        """Tokens to drop from the left so the longest row fits, never into the response."""
        longest = self._longest(rendered)
        if longest <= self.limit:
            return 0
        text, offsets, followup_start = rendered[1]
        start = followup_start
        for message in reversed(response):
            start = text.rfind(message["content"], 0, start)
            if start < 0:
                break
        response_token = (
            int(np.searchsorted(offsets[:, 1], start, side="right")) if start >= 0 else 0
        )
        cut = longest - self.limit
        if cut > response_token:
            raise InputError(
                f"the response and the longest follow-up take {longest - response_token} tokens, "
                f"more than the {self.limit} the model can read",
                row=row,
                field="response",
                expected="a shorter response, or a larger max_length within the model's context",
            )
        return cut

    def _render(
        self, messages: Sequence[Message], followups: Sequence[str], *, row: int
    ) -> tuple[list[tuple[list[int], tuple[int, int]]], tuple[str, Any, int]]:
        texts = [self._template(self.layout(messages, f)) for f in followups]
        starts = [text.rfind(f) for text, f in zip(texts, followups, strict=True)]
        if min(starts) < 0:
            raise InputError(
                "the chat template changes the follow-up text, so its tokens cannot be found",
                row=row,
                field="followups",
                expected="a template that keeps message contents verbatim",
            )
        encoded = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        rows = []
        first_offsets: Any = None
        for k, (f, start) in enumerate(zip(followups, starts, strict=True)):
            ids = list(encoded["input_ids"][k])
            offsets = np.asarray(encoded["offset_mapping"][k], dtype=np.int64).reshape(-1, 2)
            if k == 0:
                first_offsets = offsets
            rows.append((ids, self._scored_range(offsets, start, start + len(f), row=row)))
        return rows, (texts[0], first_offsets, starts[0])

    def _template(self, messages: list[dict[str, str]]) -> str:
        return str(self.tokenizer.apply_chat_template(messages, tokenize=False))

    def _scored_range(
        self, offsets: npt.NDArray[np.int64], start: int, end: int, *, row: int
    ) -> tuple[int, int]:
        overlapping = np.flatnonzero((offsets[:, 0] < end) & (offsets[:, 1] > start))
        if len(overlapping) == 0 or overlapping[0] == 0:
            raise InputError(
                "the follow-up has no tokens after the conversation", row=row, field="followups"
            )
        first, last = int(overlapping[0]), int(overlapping[-1]) + 1
        if self.include_end_of_turn and last < len(offsets):
            last += 1
        return first, last


def _shared_prefix(rows: list[tuple[list[int], tuple[int, int]]]) -> _Encoded:
    """Rows cut after their last scored token; the shared context ends before any scored token."""
    cut_rows = [ids[:end] for ids, (_, end) in rows]
    shared = min(start for _, (start, _) in rows)
    reference = np.asarray(cut_rows[0][:shared])
    for ids in cut_rows[1:]:
        differs = np.flatnonzero(np.asarray(ids[:shared]) != reference[: len(ids[:shared])])
        if len(differs):
            shared = int(differs[0])
            reference = reference[:shared]
    if shared < 1:
        raise InputError("the follow-ups share no context tokens", field="followups")
    return _Encoded(rows=cut_rows, scored=[scored for _, scored in rows], shared=shared)


@dataclass
class _Pack:
    """Follow-up tokens of one conversation, concatenated into one row after its context.

    ``inputs[i]`` predicts ``targets[i]``; ``segments[i]`` is the follow-up (column) it belongs
    to and ``offsets[i]`` its index in that follow-up's tokens after the shared context.
    """

    conversation: int
    inputs: list[int] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    segments: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)

    @property
    def width(self) -> int:
        return len(self.inputs)


def _packs(batch: Sequence[_Encoded], *, budget: int) -> list[_Pack]:
    """Pack each conversation's follow-ups (all tokens but the last) into rows of <= budget.

    A follow-up longer than ``budget`` gets a row of its own; one of a single token needs no
    row (the context pass predicts it).
    """
    packs: list[_Pack] = []
    for b, item in enumerate(batch):
        current = _Pack(conversation=b)
        for k, ids in enumerate(item.rows):
            suffix = ids[item.shared :]
            n = len(suffix) - 1
            if n < 1:
                continue
            if current.width and current.width + n > budget:
                packs.append(current)
                current = _Pack(conversation=b)
            current.inputs += suffix[:-1]
            current.targets += suffix[1:]
            current.segments += [k] * n
            current.offsets += range(n)
        if current.width:
            packs.append(current)
    return packs


def _block_mask(
    context_mask: torch.Tensor, segments: torch.Tensor, *, dtype: torch.dtype
) -> torch.Tensor:
    """Additive ``[rows, 1, new, context + new]`` mask: the context, then causal per segment.

    Padding positions (segment -1) see each other, so no query row is fully masked (which
    would give NaN); their outputs are never read.
    """
    width = segments.shape[1]
    causal = torch.ones((width, width), dtype=torch.bool, device=segments.device).tril()
    own = (segments[:, :, None] == segments[:, None, :]) & causal
    seen = context_mask.bool()[:, None, :].expand(-1, width, -1)
    allowed = torch.cat([seen, own], dim=-1)[:, None]
    blocked = torch.zeros(allowed.shape, dtype=dtype, device=segments.device)
    return blocked.masked_fill(~allowed, torch.finfo(dtype).min)


# --------------------------------------------------------------------------------------------
# the reward


class FollowupReward:
    """Follow-up likelihood reward: positive minus negative follow-up log-probabilities.

    Parameters
    ----------
    config:
        The reward's definition (default: None, i.e. ``FollowupRewardConfig()``: SmolLM2, the
        shipped follow-ups, mean log-probability, no calibration).
    followups:
        A follow-up set, file or mapping that replaces ``config.followups`` (default: None).
    model, tokenizer:
        A loaded causal LM and its tokenizer, instead of loading ``config.model_name``
        (default: None).
    layout:
        A callable ``(conversation, followup) -> messages`` that replaces ``config.layout``
        (default: None).

    Examples
    --------
    >>> reward = FollowupReward(FollowupRewardConfig(aspects=("relevance",)))  # doctest: +SKIP
    >>> reward.score_aspects(["Name a prime."], ["7 is prime."]).columns  # doctest: +SKIP
    ['reward', 'relevance']
    """

    def __init__(
        self,
        config: FollowupRewardConfig | None = None,
        *,
        followups: FollowupSet | str | os.PathLike[str] | Mapping[str, Any] | None = None,
        model: Any = None,
        tokenizer: Any = None,
        layout: Layout | None = None,
    ) -> None:
        self.config = config if config is not None else FollowupRewardConfig()
        self.followups = self._followup_set(followups)
        if (model is None) != (tokenizer is None):
            raise InputError("pass both model and tokenizer, or neither", field="model")
        if model is None:
            from tacitly.backbones import load_causal_lm

            model, tokenizer = load_causal_lm(self.config.model_name)
        device = self.config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model: Any = model.to(device).eval()
        self.tokenizer: Any = tokenizer
        if str(getattr(self.model.config, "_attn_implementation", "")).startswith("flash"):
            raise InputError(
                "the packed follow-up pass needs an attention mask the flash kernels do not take",
                field="model",
                expected="attn_implementation 'sdpa' or 'eager'",
            )
        chosen_layout = layout or (user_layout if self.config.layout == "user" else _critic_layout)
        self._renderer = _Renderer(
            tokenizer,
            layout=chosen_layout,
            include_end_of_turn=self.config.include_end_of_turn,
            limit=self._token_limit(),
        )
        self._check_weights()

    def _followup_set(
        self, followups: FollowupSet | str | os.PathLike[str] | Mapping[str, Any] | None
    ) -> FollowupSet:
        loaded = (
            followups
            if isinstance(followups, FollowupSet)
            else load_followups(followups if followups is not None else self.config.followups)
        )
        if self.config.aspects is None:
            return loaded
        return loaded.select(self.config.aspects, source=self.config.followups)

    def _check_weights(self) -> None:
        weights = self.config.weights
        if weights is None:
            return
        unknown = sorted(set(weights) - set(self.followups.aspects))
        if unknown:
            raise InputError(
                f"weights for unknown aspects {unknown}",
                field="weights",
                expected=", ".join(self.followups.aspects),
            )
        if sum(weights.get(a, 0.0) for a in self.followups.aspects) <= 0:
            raise InputError("every used aspect has weight 0", field="weights")

    def _token_limit(self) -> int:
        context = getattr(self.model.config.get_text_config(), "max_position_embeddings", None)
        limits = [n for n in (self.config.max_length, context) if n is not None]
        return min(limits) if limits else 2**31 - 1

    @property
    def aspects(self) -> list[str]:
        """The aspects, in order."""
        return list(self.followups.aspects)

    @property
    def aspect_weights(self) -> dict[str, float]:
        """Weight of each aspect, normalised to sum to 1."""
        raw = self.config.weights
        values = {a: 1.0 if raw is None else raw.get(a, 0.0) for a in self.aspects}
        total = sum(values.values())
        return {a: w / total for a, w in values.items()}

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return torch.device(self.model.device)

    # ------------------------------------------------------------------ follow-up log-probs
    def followup_logprobs(self, conversations: Sequence[Conversation]) -> FloatMatrix:
        """Score of every follow-up after every conversation, through the shared KV cache.

        Parameters
        ----------
        conversations:
            Conversations in TRL's format, each ending with the assistant response.

        Returns
        -------
        np.ndarray
            ``[n_conversations, n_followups]`` float64, columns in ``followups.texts`` order.
        """
        encoded = self._encode_all(conversations)
        return self._cached_scores(encoded)

    def naive_followup_logprobs(self, conversations: Sequence[Conversation]) -> FloatMatrix:
        """As :meth:`followup_logprobs`, with one full forward pass per follow-up (reference)."""
        encoded = self._encode_all(conversations)
        scores = np.zeros((len(encoded), len(self.followups.texts)))
        with torch.inference_mode():
            for i, item in enumerate(encoded):
                for k, (ids, (start, end)) in enumerate(zip(item.rows, item.scored, strict=True)):
                    inputs = torch.tensor([ids], device=self.device)
                    logits = self.model(input_ids=inputs).logits[0].float()
                    targets = inputs[0, start:end]
                    chosen = logits[start - 1 : end - 1]
                    token_lp = chosen.gather(-1, targets[:, None])[:, 0] - chosen.logsumexp(-1)
                    scores[i, k] = self._reduce(token_lp.double().cpu().numpy())
        return scores

    def _reduce(self, token_logprobs: npt.NDArray[np.float64]) -> float:
        total = float(token_logprobs.sum())
        return total / len(token_logprobs) if self.config.reduction == "mean" else total

    def _encode_all(self, conversations: Sequence[Conversation]) -> list[_Encoded]:
        if isinstance(conversations, str | Mapping):
            raise InputError("expected a list of conversations", field="conversations")
        items = [_checked_item(c, row=i + 1) for i, c in enumerate(conversations)]
        return [self._renderer.encode(item, self.followups.texts) for item in items]

    def _cached_scores(self, encoded: Sequence[_Encoded]) -> FloatMatrix:
        scores = np.zeros((len(encoded), len(self.followups.texts)))
        size = self.config.batch_size
        with torch.inference_mode():
            for begin in range(0, len(encoded), size):
                batch = encoded[begin : begin + size]
                scores[begin : begin + len(batch)] = self._score_batch(batch)
        return scores

    def _score_batch(self, batch: Sequence[_Encoded]) -> FloatMatrix:
        """Run the contexts once (left-padded), then the follow-ups packed against their cache."""
        from transformers import DynamicCache

        contexts = [item.rows[0][: item.shared] for item in batch]
        ids, mask = _left_padded(contexts, pad=self._pad_id(), device=self.device)
        cache = DynamicCache(config=self.model.config)
        hidden = self._hidden_states(ids, mask, (mask.cumsum(-1) - 1).clamp(min=0), cache)
        # Only the last context position predicts a scored token (each follow-up's first).
        first = self._logits(hidden[:, -1]).log_softmax(-1)
        packs = _packs(batch, budget=_PACK_TOKENS)
        width = ids.shape[1] + max((pack.width for pack in packs), default=0)
        per_pass = max(1, self.config.max_batch_tokens // width)
        later = [
            self._score_packs(packs[begin : begin + per_pass], cache, mask)
            for begin in range(0, len(packs), per_pass)
        ]
        return self._reduced_scores(batch, first, torch.cat(later) if later else None, packs)

    def _hidden_states(
        self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any
    ) -> torch.Tensor:
        """The decoder's last hidden states; the vocabulary projection is left to the caller."""
        decoder = self.model.get_decoder()
        out = decoder(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{_cache_argument(decoder): cache},
        )
        hidden: torch.Tensor = out.last_hidden_state
        return hidden

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Output logits (float32) of the given hidden states, as the full model computes them."""
        logits: torch.Tensor = self.model.get_output_embeddings()(hidden).float()
        cap = getattr(self.model.config.get_text_config(), "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def _token_logprobs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Log-probability of each target token; the vocabulary is projected in slices."""
        pieces = []
        for begin in range(0, hidden.shape[0], _HEAD_ROWS):
            logits = self._logits(hidden[begin : begin + _HEAD_ROWS])
            chosen = logits.gather(-1, targets[begin : begin + _HEAD_ROWS, None])[:, 0]
            pieces.append(chosen - logits.logsumexp(-1))
        return torch.cat(pieces) if pieces else hidden.new_zeros(0, dtype=torch.float32)

    def _score_packs(
        self, packs: Sequence[_Pack], cache: Any, context_mask: torch.Tensor
    ) -> torch.Tensor:
        """Log-probabilities of the tokens the packs predict, in pack order (padding dropped).

        Each pack is one row after its conversation's cached context; its follow-ups are
        concatenated, and a block mask lets each follow-up see the context and its own earlier
        tokens only, so every token has exactly the context it has in the full sequence.
        """
        from transformers import DynamicCache

        device = self.device
        rows = torch.tensor([pack.conversation for pack in packs], device=device)
        width = max(pack.width for pack in packs)
        inputs = torch.full((len(packs), width), self._pad_id(), dtype=torch.long, device=device)
        targets = torch.zeros((len(packs), width), dtype=torch.long, device=device)
        segments = torch.full((len(packs), width), -1, dtype=torch.long, device=device)
        offsets = torch.zeros((len(packs), width), dtype=torch.long, device=device)
        for r, pack in enumerate(packs):
            n = len(pack.inputs)
            inputs[r, :n] = torch.tensor(pack.inputs, device=device)
            targets[r, :n] = torch.tensor(pack.targets, device=device)
            segments[r, :n] = torch.tensor(pack.segments, device=device)
            offsets[r, :n] = torch.tensor(pack.offsets, device=device)
        rows_mask = context_mask.index_select(0, rows)
        expanded = DynamicCache(config=self.model.config)
        for index, layer in enumerate(cache.layers):
            expanded.update(
                layer.keys.index_select(0, rows), layer.values.index_select(0, rows), index
            )
        positions = rows_mask.sum(-1, keepdim=True) + offsets
        block = _block_mask(rows_mask, segments, dtype=self.model.dtype)
        hidden = self._hidden_states(inputs, block, positions, expanded)
        real = segments >= 0
        return self._token_logprobs(hidden[real], targets[real])

    def _reduced_scores(
        self,
        batch: Sequence[_Encoded],
        first: torch.Tensor,
        later: torch.Tensor | None,
        packs: Sequence[_Pack],
    ) -> FloatMatrix:
        """Reduce the token log-probabilities to one score per (conversation, follow-up)."""
        n_followups = len(self.followups.texts)
        first_ids = torch.tensor(
            [[item.rows[k][item.shared] for k in range(n_followups)] for item in batch],
            device=first.device,
        )
        first_lp = first.gather(-1, first_ids).double().cpu().numpy().ravel()
        # Token j of follow-up k of conversation b (j = 0 from the context pass).
        pair = [np.arange(len(batch) * n_followups)]
        index = [np.zeros(len(batch) * n_followups, dtype=np.int64)]
        for pack in packs:
            pair.append(pack.conversation * n_followups + np.asarray(pack.segments))
            index.append(np.asarray(pack.offsets) + 1)
        values = [first_lp]
        if later is not None:
            values.append(later.double().cpu().numpy())
        pairs, positions, lp = np.concatenate(pair), np.concatenate(index), np.concatenate(values)
        bounds = np.array(
            [[s - item.shared, e - item.shared] for item in batch for s, e in item.scored]
        )
        scored = (positions >= bounds[pairs, 0]) & (positions < bounds[pairs, 1])
        weights = lp[scored].astype(np.float64)
        total = np.bincount(pairs[scored], weights=weights, minlength=len(bounds)).astype(
            np.float64
        )
        if self.config.reduction == "mean":
            total = total / (bounds[:, 1] - bounds[:, 0]).astype(np.float64)
        return total.reshape(len(batch), n_followups)

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad) if pad is not None else 0

    # ------------------------------------------------------------------ rewards
    def _aspect_matrix(self, logprobs: FloatMatrix) -> FloatMatrix:
        """``[n, n_aspects]``: mean positive minus mean negative follow-up score."""
        columns = []
        for aspect in self.aspects:
            positive, negative = self.followups.polarity_of(aspect)
            columns.append(logprobs[:, positive].mean(1) - logprobs[:, negative].mean(1))
        return np.stack(columns, axis=1)

    def _overall(self, aspects: FloatMatrix) -> FloatMatrix:
        weights = np.array([self.aspect_weights[a] for a in self.aspects])
        overall: FloatMatrix = aspects @ weights
        return overall

    def _length_term(self, conversations: Sequence[list[dict[str, str]]]) -> FloatMatrix:
        if self.config.length_slope is None:
            return np.zeros(len(conversations))
        return self.config.length_slope * self._log_lengths(conversations)

    def _log_lengths(self, conversations: Sequence[list[dict[str, str]]]) -> FloatMatrix:
        texts = [" ".join(m["content"] for m in _response(c)) for c in conversations]
        counts = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        return np.log1p(np.asarray(counts, dtype=np.float64))

    def score_aspects(
        self, prompts: Sequence[Conversation | str], responses: Sequence[Conversation | str]
    ) -> pl.DataFrame:
        """Overall and per-aspect reward of each response.

        Parameters
        ----------
        prompts:
            Conversations so far, or plain user messages.
        responses:
            Assistant turn(s), or plain assistant messages.

        Returns
        -------
        pl.DataFrame
            Column ``reward`` (the overall reward, as :meth:`score`) and one Float64 column
            per aspect (positive minus negative, PMI-calibrated when configured; the length
            term applies to ``reward`` only).
        """
        conversations = _joined(prompts, responses)
        logprobs = self.followup_logprobs(conversations)
        if self.config.calibration == "pmi":
            logprobs = logprobs - self._baseline(prompts)
        aspects = self._aspect_matrix(logprobs)
        overall = self._overall(aspects) - self._length_term(conversations)
        return pl.DataFrame(
            {"reward": overall, **{a: aspects[:, j] for j, a in enumerate(self.aspects)}}
        )

    def score(
        self, prompts: Sequence[Conversation | str], responses: Sequence[Conversation | str]
    ) -> FloatMatrix:
        """One reward per (prompt, response) pair (float64).

        Examples
        --------
        >>> reward.score(["Hi"], ["Hello! How can I help?"])  # doctest: +SKIP
        array([0.12])
        """
        return self.score_aspects(prompts, responses)["reward"].to_numpy()

    def _baseline(self, prompts: Sequence[Conversation | str]) -> FloatMatrix:
        """Follow-up scores after the neutral reply to each prompt, each prompt computed once."""
        keys = [json.dumps(as_messages(p, "user"), sort_keys=True) for p in prompts]
        unique = list(dict.fromkeys(keys))
        neutral = {"role": "assistant", "content": self.config.neutral_response}
        conversations = [[*json.loads(key), neutral] for key in unique]
        items = [_Item(messages=c, n_response=1, row=i + 1) for i, c in enumerate(conversations)]
        encoded = [self._renderer.encode(item, self.followups.texts) for item in items]
        scores = self._cached_scores(encoded)
        index = {key: i for i, key in enumerate(unique)}
        return scores[[index[key] for key in keys]]

    def compare_aspects(self, rows: Sequence[PreferenceRow]) -> pl.DataFrame:
        """Chosen minus rejected, overall (``reward``) and per aspect, one row per pair.

        The PMI baseline is the same for both sides and cancels exactly, so it is not run.
        """
        checked = [
            checked_row(row, row_number=i + 1, assistant_only=True) for i, row in enumerate(rows)
        ]
        chosen = [p + c for p, c, _ in checked]
        rejected = [p + r for p, _, r in checked]
        logprobs = self.followup_logprobs(chosen + rejected)
        aspects = self._aspect_matrix(logprobs)
        n = len(checked)
        overall = self._overall(aspects) - self._length_term(chosen + rejected)
        differences = aspects[:n] - aspects[n:]
        return pl.DataFrame(
            {
                "reward": overall[:n] - overall[n:],
                **{a: differences[:, j] for j, a in enumerate(self.aspects)},
            }
        )

    def compare(self, rows: Sequence[PreferenceRow]) -> FloatMatrix:
        """Reward of the chosen side minus reward of the rejected side, per row."""
        return self.compare_aspects(rows)["reward"].to_numpy()

    # ------------------------------------------------------------------ fitting
    def fit_aspect_weights(self, rows: Sequence[PreferenceRow]) -> dict[str, float]:
        """Weight each aspect by how far its pairwise accuracy on ``rows`` exceeds chance.

        The rule: ``w_a = max(0, accuracy_a - 0.5)``, normalised to sum to 1, where
        ``accuracy_a`` is the share of pairs whose chosen side gets the higher aspect reward
        (ties count as wrong, as in RewardBench). When no aspect beats chance the weights stay
        equal (with a warning). The weights are stored in ``config.weights``.

        Returns
        -------
        dict[str, float]
            The new weights.
        """
        differences = self.compare_aspects(rows)
        accuracy = {a: float((differences[a].to_numpy() > 0).mean()) for a in self.aspects}
        above = {a: max(0.0, acc - 0.5) for a, acc in accuracy.items()}
        total = sum(above.values())
        if total <= 0:
            warnings.warn(
                f"no aspect separates the pairs better than chance ({accuracy}); "
                "keeping equal weights",
                stacklevel=2,
            )
            weights = {a: 1.0 / len(self.aspects) for a in self.aspects}
        else:
            weights = {a: value / total for a, value in above.items()}
        self.config.weights = weights
        return weights

    def fit_length_slope(self, rows: Sequence[PreferenceRow]) -> float:
        """Fit ``config.length_slope``: the reward's dependence on log response length.

        Labels are not used: the slope is ``sum(dr * dl) / sum(dl ** 2)`` over the pairs, where
        ``dr`` is the difference of the two responses' rewards (before length normalisation)
        and ``dl`` the difference of ``log(1 + response tokens)``; swapping the sides of a
        pair changes neither. The slope is stored in ``config.length_slope``.
        """
        previous = self.config.length_slope
        self.config.length_slope = None
        try:
            reward = self.compare(rows)
        finally:
            self.config.length_slope = previous
        checked = [
            checked_row(row, row_number=i + 1, assistant_only=True) for i, row in enumerate(rows)
        ]
        lengths = self._log_lengths([p + c for p, c, _ in checked]) - self._log_lengths(
            [p + r for p, _, r in checked]
        )
        denominator = float((lengths**2).sum())
        if denominator == 0:
            raise InputError("all pairs have equally long responses", field="rows")
        slope = float((reward * lengths).sum() / denominator)
        self.config.length_slope = slope
        return slope


# --------------------------------------------------------------------------------------------
# input checks and small helpers


def _left_padded(
    sequences: Sequence[Sequence[int]], *, pad: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad, dtype=torch.long, device=device)
    mask = torch.zeros((len(sequences), width), dtype=torch.long, device=device)
    for r, sequence in enumerate(sequences):
        ids[r, width - len(sequence) :] = torch.tensor(sequence, device=device)
        mask[r, width - len(sequence) :] = 1
    return ids, mask


def _cache_argument(model: Any) -> str:
    """``cache`` in transformers >= 5.24 (``past_key_values`` is deprecated there), else the old
    name."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _response(messages: Sequence[Message]) -> list[Message]:
    n = 0
    while n < len(messages) and messages[-1 - n].get("role") == "assistant":
        n += 1
    return list(messages[len(messages) - n :])


def _checked_item(conversation: object, *, row: int) -> _Item:
    messages = checked_messages(conversation, row=row, name="conversation")
    response = _response(messages)
    if not response:
        raise InputError(
            "the conversation does not end with an assistant turn",
            row=row,
            field="conversation",
            expected="one or more trailing assistant messages (the response to score)",
        )
    if any(not m["content"].strip() for m in response):
        raise InputError("the response is empty", row=row, field="response")
    return _Item(messages=messages, n_response=len(response), row=row)


def _joined(
    prompts: Sequence[Conversation | str], responses: Sequence[Conversation | str]
) -> list[list[dict[str, str]]]:
    if len(prompts) != len(responses):
        raise InputError(
            f"{len(prompts)} prompts but {len(responses)} responses", field="responses"
        )
    return [
        as_messages(p, "user") + as_messages(r, "assistant")
        for p, r in zip(prompts, responses, strict=True)
    ]
