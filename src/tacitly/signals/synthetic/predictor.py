"""The eye-tracking predictor: reading measures for any text, words or tokens, with a cache.

:class:`GazePredictor` wraps the two shipped models behind one interface:

* ``version=1``: gradient boosting on psycholinguistic word features (fast, CPU);
* ``version=2``: all-MiniLM-L6-v2 with LoRA adapters and a regression head.

Words are split as in the CMCL data (at whitespace, punctuation attached). Every predicted text
is stored in a :class:`~tacitly.signals.synthetic.cache.PredictionCache` keyed by the model's
weights and the text, so that reward-model training never predicts the same text twice.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import polars as pl

from tacitly.errors import InputError
from tacitly.signals.gaze.alignment import (
    WORD_MEASURES,
    AlignedConversation,
    FastTokenizer,
    TokenValues,
    align_conversation,
    words_to_tokens,
)
from tacitly.signals.synthetic.cache import FloatMatrix, PredictionCache, text_hash

__all__ = ["SHIPPED_WEIGHTS", "GazePredictor", "shipped_weights"]

Version = Literal[1, 2]
Conversation = Sequence[Mapping[str, str]]
SHIPPED_WEIGHTS = Path(__file__).parent / "weights"
_DEFAULT_CACHE = object()


class _WordModel(Protocol):
    def predict(self, texts: Sequence[Sequence[str]]) -> pl.DataFrame: ...


def shipped_weights(version: Version) -> Path:
    """The folder of the weights shipped with tacitly for ``version``."""
    if version not in (1, 2):
        raise InputError(f"unknown version {version!r}", field="version", expected="1 or 2")
    return SHIPPED_WEIGHTS / f"v{version}"


def _load_model(version: Version, folder: Path) -> _WordModel:
    if not (folder / "config.json").is_file():
        raise InputError(
            "no predictor weights here",
            source=folder,
            expected=f"a folder written by `tacitly gaze train --version {version}`",
        )
    if version == 1:
        from tacitly.signals.synthetic.psycholinguistic import PsycholinguisticGazeModel

        return PsycholinguisticGazeModel.load(folder)
    from tacitly.signals.synthetic.neural import NeuralGazeEnsemble, NeuralGazeModel

    if NeuralGazeEnsemble.is_ensemble(folder):
        return NeuralGazeEnsemble.load(folder)
    return NeuralGazeModel.load(folder)


def _weights_key(version: Version, folder: Path) -> str:
    """A key that changes whenever any weight file changes."""
    digest = hashlib.sha256(f"tacitly-gaze-v{version}".encode())
    for path in sorted(folder.rglob("*")):
        if "checkpoints" in path.relative_to(folder).parts or path.name == "metrics.json":
            continue
        if path.is_file() and path.suffix in {".json", ".txt", ".safetensors"}:
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(path.read_bytes())
    return f"v{version}:{digest.hexdigest()[:16]}"


def _default_cache_path() -> Path:
    from tacitly.backbones import cache_root

    return cache_root() / "synthetic-gaze" / "predictions.sqlite"


def _split_text(text: object, *, row: int) -> list[str]:
    if not isinstance(text, str):
        raise InputError(f"expected a string, got {type(text).__name__}", row=row, field="text")
    words = text.split()
    if not words:
        raise InputError("the text is empty", row=row, field="text", expected="some words")
    return words


class GazePredictor:
    """Predict human reading measures (nFix, FFD, GPT, TRT, fixProp) for any text.

    Parameters
    ----------
    version:
        1 (gradient boosting, fastest) or 2 (MiniLM with LoRA) (default: 1).
    weights:
        A folder written by ``tacitly gaze train`` (default: None, i.e. the weights shipped
        with tacitly).
    cache:
        Path of the SQLite result cache, or None to disable it (default: the tacitly cache
        folder, ``$TACITLY_CACHE/synthetic-gaze/predictions.sqlite``).

    Examples
    --------
    >>> predictor = GazePredictor(version=1, cache=None)
    >>> table = predictor.predict(["Reading is a fascinating activity."])
    >>> table.columns
    ['text_id', 'word_index', 'word', 'nFix', 'FFD', 'GPT', 'TRT', 'fixProp']
    >>> table.height
    5
    """

    def __init__(
        self,
        version: Version = 1,
        *,
        weights: str | os.PathLike[str] | None = None,
        cache: str | os.PathLike[str] | object | None = _DEFAULT_CACHE,
    ) -> None:
        if version not in (1, 2):
            raise InputError(f"unknown version {version!r}", field="version", expected="1 or 2")
        self.version: Version = version
        self.weights = Path(weights) if weights is not None else shipped_weights(version)
        self.model = _load_model(version, self.weights)
        self.key = _weights_key(version, self.weights)
        if cache is _DEFAULT_CACHE:
            cache = _default_cache_path()
        self.cache = None if cache is None else PredictionCache(Path(str(cache)))
        self.measures: tuple[str, ...] = WORD_MEASURES

    # ------------------------------------------------------------------ words
    def predict_words(self, texts: Sequence[Sequence[str]]) -> list[FloatMatrix]:
        """Predicted measures ``[n_words, 5]`` for texts given as their words, cache first."""
        hashes = [text_hash(words) for words in texts]
        found = self.cache.get_many(self.key, hashes) if self.cache is not None else {}
        missing = [i for i, key in enumerate(hashes) if key not in found]
        unique_missing = list({hashes[i]: i for i in missing}.values())
        if unique_missing:
            predicted = self.model.predict([list(texts[i]) for i in unique_missing])
            fresh = self._split_by_text(predicted, [len(texts[i]) for i in unique_missing])
            new = {hashes[i]: values for i, values in zip(unique_missing, fresh, strict=True)}
            if self.cache is not None:
                self.cache.put_many(self.key, new)
            found.update(new)
        return [found[key] for key in hashes]

    def _split_by_text(self, table: pl.DataFrame, lengths: list[int]) -> list[FloatMatrix]:
        values = table.sort("text_id", "word_index").select(self.measures).to_numpy()
        values = values.astype(np.float32)
        bounds = np.cumsum([0, *lengths])
        return [values[bounds[i] : bounds[i + 1]] for i in range(len(lengths))]

    def predict(self, texts: str | Sequence[str]) -> pl.DataFrame:
        """One row per word of each text: ``text_id, word_index, word`` and the 5 measures.

        Parameters
        ----------
        texts:
            A text or a sequence of texts; words are split at whitespace.

        Returns
        -------
        pl.DataFrame
            ``text_id`` is the position of the text in ``texts``.
        """
        items = [texts] if isinstance(texts, str) else list(texts)
        if not items:
            raise InputError("no texts given", field="texts", expected="at least one text")
        words = [_split_text(text, row=i + 1) for i, text in enumerate(items)]
        values = self.predict_words(words)
        frames = [
            pl.DataFrame(
                {
                    "text_id": np.full(len(text), i, dtype=np.int64),
                    "word_index": np.arange(len(text), dtype=np.int64),
                    "word": text,
                }
            ).with_columns(
                pl.DataFrame(
                    matrix.astype(np.float64), schema=list(self.measures), orient="row"
                ).get_columns()
            )
            for i, (text, matrix) in enumerate(zip(words, values, strict=True))
        ]
        return pl.concat(frames)

    # ------------------------------------------------------------------ tokens
    def predict_tokens(
        self,
        items: Sequence[str | Conversation],
        tokenizer: FastTokenizer,
        *,
        mode: Literal["split", "first", "max"] = "split",
        roles: Sequence[str] | None = None,
        add_generation_prompt: bool = False,
        max_length: int | None = None,
    ) -> list[TokenValues | AlignedConversation]:
        """Per-token features for texts or whole chat-templated conversations.

        Parameters
        ----------
        items:
            Plain texts (tokenized as they are) or conversations in TRL's format
            (``[{"role": ..., "content": ...}]``, rendered with the tokenizer's chat template).
        tokenizer:
            Any Hugging Face fast tokenizer.
        mode:
            How a word's values go onto its tokens: "split" (divided equally, sums kept),
            "first" (first sub-token) or "max" (every sub-token) (default: "split").
        roles:
            Only messages with these roles get features; others get 0 (default: None, i.e.
            the whole conversation).
        add_generation_prompt:
            Passed to the chat template (default: False).
        max_length:
            Keep only the first tokens (default: None).

        Returns
        -------
        list
            For a text, :class:`~tacitly.signals.gaze.alignment.TokenValues`; for a
            conversation, :class:`~tacitly.signals.gaze.alignment.AlignedConversation`; values
            are ``[n_tokens, 5]`` in the order nFix, FFD, GPT, TRT, fixProp, template and
            special tokens 0.
        """
        results: list[TokenValues | AlignedConversation] = []
        for row, item in enumerate(items, start=1):
            if isinstance(item, str):
                words = _split_text(item, row=row)
                (values,) = self.predict_words([words])
                results.append(
                    words_to_tokens(item, values.astype(np.float64), tokenizer, mode=mode)
                )
            else:
                results.append(
                    self._conversation_tokens(
                        item, tokenizer, mode, roles, add_generation_prompt, max_length, row
                    )
                )
        return results

    def _conversation_tokens(
        self,
        conversation: Conversation,
        tokenizer: FastTokenizer,
        mode: Literal["split", "first", "max"],
        roles: Sequence[str] | None,
        add_generation_prompt: bool,
        max_length: int | None,
        row: int,
    ) -> AlignedConversation:
        if not isinstance(conversation, Sequence) or not conversation:
            raise InputError(
                "a conversation must be a non-empty list of messages", row=row, field="messages"
            )
        chosen: dict[int, list[str]] = {}
        for index, message in enumerate(conversation):
            if not isinstance(message, Mapping) or "content" not in message:
                raise InputError(
                    "each message needs a role and a content",
                    row=row,
                    field=f"messages[{index}]",
                )
            if roles is not None and message.get("role") not in roles:
                continue
            content = message["content"]
            if isinstance(content, str) and content.split():
                chosen[index] = content.split()
        predicted = self.predict_words(list(chosen.values()))
        values: dict[int, Any] = {
            index: matrix.astype(np.float64)
            for index, matrix in zip(chosen, predicted, strict=True)
        }
        return align_conversation(
            [dict(message) for message in conversation],
            values or None,
            tokenizer,
            mode=mode,
            add_generation_prompt=add_generation_prompt,
            max_length=max_length,
        )
