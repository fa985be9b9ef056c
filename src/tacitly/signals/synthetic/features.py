"""Word features for predicting reading measures: length, frequency, position, LM surprisal.

One row per word of each text, in the CMCL sense: a text is a list of whitespace-free words
with punctuation attached (``["Hello,", "world!"]``). The features are the classic
psycholinguistic predictors of fixation times, plus the same core features of the neighbouring
words (spill-over and parafoveal preview).

Policies
--------
Frequency
    ``log_freq`` is :func:`wordfreq.zipf_frequency` (log10 of occurrences per billion words + 0)
    of the word lower-cased and stripped of leading and trailing characters that are neither
    letters nor digits; a word wordfreq does not know (or one made only of punctuation) gets 0.
Surprisal
    :class:`SurprisalScorer` gives the surprisal of a word, in bits, as the sum of
    ``-log2 p(token | all previous tokens)`` over the tokens of the word, where the text is
    ``" ".join(words)``. A token belongs to the word in which it *starts*; a token that starts
    in the space before a word (byte-level BPE's ``"Ġword"``, a lone ``"Ġ"``) belongs to the
    word that follows, so the cost of the word boundary is paid by the next word. The first
    token is conditioned on a document-start token: ``<|endoftext|>`` when the vocabulary has
    it (the separator SmolLM2 and GPT-2 saw between pretraining documents), else the BOS token,
    else the EOS token; so the first word also gets a (high) surprisal. ``entropy`` is the
    entropy (bits) of the model's next-token distribution just before the word's first token.
Early exit
    ``SurprisalScorer(..., layers=k)`` runs only the first ``k`` decoder layers, then the
    model's final norm and LM head: a cheaper, weaker language model (a "logit lens" LM). It is
    still a proper probability distribution, so its surprisal is a surprisal, just of a weaker
    model; the feature keeps the name ``surprisal`` and the model description records ``k``.
Boundaries
    Neighbour features (``prev1_length``, ``next2_log_freq``, ...) are null where the
    neighbour would fall outside the text.

Examples
--------
>>> table = word_features([["The", "cat", "sat."]])
>>> table.select("word", "length", "letters", "ends_sentence", "next1_length").rows()
[('The', 3, 3, False, 3), ('cat', 3, 3, False, 4), ('sat.', 4, 3, True, None)]
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import polars as pl
import wordfreq

from tacitly.errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = [
    "CORE_FEATURES",
    "LM_FEATURES",
    "SurprisalScorer",
    "WordSurprisal",
    "check_texts",
    "feature_columns",
    "word_features",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

CORE_FEATURES: tuple[str, ...] = (
    "length",
    "letters",
    "log_freq",
    "ends_sentence",
    "ends_clause",
    "capitalised",
    "numeric",
)
"""Per-word features that are also given for the neighbouring words."""

LM_FEATURES: tuple[str, ...] = ("surprisal", "entropy")
"""Features from the language model; present only when a scorer is given."""

_ID_COLUMNS = ("text_id", "word")
_TEXT = "__text"  # position of the text in the input: text ids need not be unique
_DOCUMENT_START_TOKENS = ("<|endoftext|>",)
_LN2 = float(np.log(2.0))


# --------------------------------------------------------------------------------------------
# Input checks


def check_texts(texts: Sequence[Sequence[str]], *, source: str = "texts") -> list[list[str]]:
    """Validate texts given as lists of words; return them as lists.

    Parameters
    ----------
    texts:
        One sequence of words per text; words are non-empty strings.
    source:
        Name of the input, used in error messages (default: "texts").

    Returns
    -------
    list[list[str]]
        The same words.

    Raises
    ------
    InputError
        When a text is a plain string (pass ``text.split()``), is empty, or a word is not a
        non-empty string without only whitespace; ``row`` is the 1-based text number and
        ``field`` names the word.

    Examples
    --------
    >>> check_texts([("Hi", "there.")])
    [['Hi', 'there.']]
    """
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InputError(
            f"texts must be a sequence of texts, got {type(texts).__name__}",
            source=source,
            expected="a list of texts, each a list of words",
        )
    checked: list[list[str]] = []
    for number, text in enumerate(texts, start=1):
        if isinstance(text, str) or not isinstance(text, Sequence):
            raise InputError(
                f"a text must be a sequence of words, got {type(text).__name__}",
                source=source,
                row=number,
                expected="a list of words, e.g. text.split()",
            )
        if len(text) == 0:
            raise InputError("the text has no words", source=source, row=number)
        for index, word in enumerate(text):
            if not isinstance(word, str) or not word.strip():
                raise InputError(
                    f"word {word!r} is not a non-empty string",
                    source=source,
                    row=number,
                    field=f"word {index}",
                    expected="non-empty strings",
                )
        checked.append(list(text))
    return checked


# --------------------------------------------------------------------------------------------
# Surprisal under a causal language model


@dataclass(frozen=True)
class WordSurprisal:
    """Per-word values from :meth:`SurprisalScorer.score` for one text.

    Attributes
    ----------
    surprisal:
        Sum of ``-log2 p`` over the word's tokens, shape ``[n_words]`` (bits).
    entropy:
        Entropy of the next-token distribution before the word's first token, shape
        ``[n_words]`` (bits).
    """

    surprisal: FloatArray
    entropy: FloatArray


@dataclass(frozen=True)
class _Segment:
    """A window of one text's tokens: the model sees ``ids``; positions from ``first`` on are
    scored (earlier ones are the document-start token and carried-over context)."""

    text: int
    ids: IntArray
    first: int
    token_offset: int


class SurprisalScorer:
    """Word surprisal under a causal language model (batched, CPU-friendly).

    Parameters
    ----------
    model:
        A Hugging Face causal LM whose ``get_decoder()`` has ``layers`` (Llama, Mistral, Qwen,
        SmolLM2, ...) and which has ``lm_head``; it is used as is (eval mode, no gradients).
    tokenizer:
        Its fast tokenizer (character offsets are needed).
    layers:
        Use only the first ``layers`` decoder layers, then the final norm and LM head: a
        cheaper, weaker LM (default: None, all layers).
    batch_tokens:
        Upper bound of padded tokens per forward pass (default: 2048).
    max_tokens:
        Longest window the model sees; longer texts are scored in windows that carry
        ``context_tokens`` tokens of preceding context (default: 1024).
    context_tokens:
        Context carried into each later window (default: 256).
    num_threads:
        torch CPU threads during scoring, restored afterwards (default: None, the CPUs this
        process may use).
    cache_size:
        Texts whose results are kept, keyed by a hash of the words (default: 0, no cache).
    name:
        Description of the LM for saved configs (default: None, the model's ``name_or_path``).

    Examples
    --------
    >>> from tacitly.backbones import load_causal_lm
    >>> scorer = SurprisalScorer(*load_causal_lm())  # doctest: +SKIP
    >>> scorer.score([["The", "cat", "sat."]])[0].surprisal  # doctest: +SKIP
    array([ 9.6...,  12.8...,  8.1...])
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        layers: int | None = None,
        batch_tokens: int = 2048,
        max_tokens: int = 1024,
        context_tokens: int = 256,
        num_threads: int | None = None,
        cache_size: int = 0,
        name: str | None = None,
    ) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise InputError(
                f"{type(tokenizer).__name__} gives no character offsets",
                field="tokenizer",
                expected="a fast tokenizer",
            )
        if not 0 <= context_tokens < max_tokens - 1:
            raise InputError(
                f"context_tokens={context_tokens} with max_tokens={max_tokens}",
                field="context_tokens",
                expected="0 <= context_tokens < max_tokens - 1",
            )
        self.model = model
        self.tokenizer = tokenizer
        self.layers = layers
        self.batch_tokens = batch_tokens
        self.max_tokens = max_tokens
        self.context_tokens = context_tokens
        self.num_threads = num_threads
        self.cache_size = cache_size
        self.name = name or str(getattr(model, "name_or_path", "") or type(model).__name__)
        self.start_token_id = _document_start_id(tokenizer)
        self._decoder = _decoder(model, layers)
        self._cache: OrderedDict[str, WordSurprisal] = OrderedDict()

    @classmethod
    def default(cls, *, layers: int | None = None, **options: Any) -> SurprisalScorer:
        """The scorer of the embedded default LM (SmolLM2-135M-Instruct).

        Parameters
        ----------
        layers:
            As in the constructor (default: None, all layers).
        **options:
            Other constructor options.

        Returns
        -------
        SurprisalScorer
            A scorer named after the default LM.
        """
        from tacitly.backbones import DEFAULT_LM, load_causal_lm

        model, tokenizer = load_causal_lm()
        return cls(model, tokenizer, layers=layers, name=DEFAULT_LM, **options)

    def describe(self) -> dict[str, Any]:
        """What a saved model needs to know to rebuild the same scorer."""
        return {
            "lm": self.name,
            "layers": self.layers,
            "total_layers": len(self.model.get_decoder().layers),
            "start_token_id": self.start_token_id,
            "max_tokens": self.max_tokens,
            "context_tokens": self.context_tokens,
        }

    def score(self, texts: Sequence[Sequence[str]]) -> list[WordSurprisal]:
        """Surprisal and entropy of every word of every text.

        Parameters
        ----------
        texts:
            One list of words per text (punctuation attached).

        Returns
        -------
        list[WordSurprisal]
            One entry per text, in order.
        """
        checked = check_texts(texts)
        keys = [_text_key(words) for words in checked]
        todo = [i for i, key in enumerate(keys) if key not in self._cache]
        fresh = self._score_uncached([checked[i] for i in todo]) if todo else []
        results: dict[int, WordSurprisal] = dict(zip(todo, fresh, strict=True))
        for i, key in enumerate(keys):
            if i in results:
                self._remember(key, results[i])
            else:
                results[i] = self._cache[key]
                self._cache.move_to_end(key)
        return [results[i] for i in range(len(checked))]

    def _remember(self, key: str, value: WordSurprisal) -> None:
        if self.cache_size <= 0:
            return
        self._cache[key] = value
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _score_uncached(self, texts: list[list[str]]) -> list[WordSurprisal]:
        token_words: list[IntArray] = []
        segments: list[_Segment] = []
        for number, words in enumerate(texts):
            ids, owner = self._tokenize(words)
            token_words.append(owner)
            segments.extend(self._segments(number, ids))
        token_surprisal = [np.zeros(len(owner)) for owner in token_words]
        token_entropy = [np.zeros(len(owner)) for owner in token_words]
        with _torch_threads(self.num_threads):
            for batch in self._batches(segments):
                for segment, surprisal, entropy in zip(batch, *self._forward(batch), strict=True):
                    span = slice(segment.token_offset, segment.token_offset + len(surprisal))
                    token_surprisal[segment.text][span] = surprisal
                    token_entropy[segment.text][span] = entropy
        return [
            _gather_words(owner, surprisal, entropy, n_words=len(words))
            for owner, surprisal, entropy, words in zip(
                token_words, token_surprisal, token_entropy, texts, strict=True
            )
        ]

    def _tokenize(self, words: list[str]) -> tuple[IntArray, IntArray]:
        """Token ids of ``" ".join(words)`` and the word each token belongs to."""
        encoding = self.tokenizer(
            " ".join(words), add_special_tokens=False, return_offsets_mapping=True
        )
        ids = np.asarray(encoding["input_ids"], dtype=np.int64)
        starts = np.asarray(encoding["offset_mapping"], dtype=np.int64).reshape(-1, 2)[:, 0]
        word_ends = np.cumsum([len(w) + 1 for w in words]) - 1
        owner = np.searchsorted(word_ends, starts, side="right").astype(np.int64)
        return ids, np.minimum(owner, len(words) - 1)

    def _segments(self, text: int, ids: IntArray) -> Iterator[_Segment]:
        start = np.array([self.start_token_id], dtype=np.int64)
        first_window = self.max_tokens - 1
        yield _Segment(text, np.concatenate([start, ids[:first_window]]), 1, 0)
        step = self.max_tokens - 1 - self.context_tokens
        for begin in range(first_window, len(ids), step):
            context = ids[begin - self.context_tokens : begin]
            window = np.concatenate([start, context, ids[begin : begin + step]])
            yield _Segment(text, window, 1 + len(context), begin)

    def _batches(self, segments: list[_Segment]) -> Iterator[list[_Segment]]:
        """Segments of similar length together, at most ``batch_tokens`` padded tokens each."""
        ordered = sorted(segments, key=lambda s: len(s.ids))
        batch: list[_Segment] = []
        for segment in ordered:
            if batch and len(segment.ids) * (len(batch) + 1) > self.batch_tokens:
                yield batch
                batch = []
            batch.append(segment)
        if batch:
            yield batch

    def _forward(self, batch: list[_Segment]) -> tuple[list[FloatArray], list[FloatArray]]:
        import torch

        width = max(len(s.ids) for s in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, segment in enumerate(batch):
            ids[row, : len(segment.ids)] = torch.from_numpy(segment.ids)
            mask[row, : len(segment.ids)] = 1
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            hidden = self._decoder(
                input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False
            ).last_hidden_state
            # Only predicting positions are sent through the (large) LM head: not padding,
            # not the last token, not carried-over context.
            rows, cols = _predicting_positions(batch)
            logits = self.model.lm_head(hidden[rows, cols]).float()
            log_p = torch.log_softmax(logits, dim=-1)
            targets = ids[rows, cols + 1].to(device)
            surprisal = -log_p.gather(1, targets[:, None])[:, 0] / _LN2
            entropy = -(log_p.exp() * log_p).sum(dim=-1) / _LN2
        surprisal_np = surprisal.double().cpu().numpy()
        entropy_np = entropy.double().cpu().numpy()
        bounds = np.cumsum([0] + [len(s.ids) - s.first for s in batch])
        return (
            [surprisal_np[a:b] for a, b in itertools.pairwise(bounds)],
            [entropy_np[a:b] for a, b in itertools.pairwise(bounds)],
        )


def _predicting_positions(batch: list[_Segment]) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) of each position whose output predicts a scored token, segment by segment."""
    import torch

    rows = np.concatenate(
        [np.full(len(s.ids) - s.first, r, dtype=np.int64) for r, s in enumerate(batch)]
    )
    cols = np.concatenate([np.arange(s.first - 1, len(s.ids) - 1) for s in batch])
    return torch.from_numpy(rows), torch.from_numpy(cols.astype(np.int64))


def _gather_words(
    owner: IntArray, surprisal: FloatArray, entropy: FloatArray, *, n_words: int
) -> WordSurprisal:
    word_surprisal = np.bincount(owner, weights=surprisal, minlength=n_words)
    first_token = np.full(n_words, -1, dtype=np.int64)
    # Reversed assignment leaves each word's first token index.
    first_token[owner[::-1]] = np.arange(len(owner))[::-1]
    word_entropy = np.where(first_token >= 0, entropy[np.maximum(first_token, 0)], np.nan)
    return WordSurprisal(word_surprisal.astype(np.float64), word_entropy.astype(np.float64))


def _document_start_id(tokenizer: Any) -> int:
    vocabulary = tokenizer.get_vocab()
    for token in _DOCUMENT_START_TOKENS:
        if token in vocabulary:
            return int(vocabulary[token])
    for token_id in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    raise InputError(
        "the tokenizer has no <|endoftext|>, BOS or EOS token to start a document with",
        field="tokenizer",
    )


def _decoder(model: Any, layers: int | None) -> Any:
    """The model's decoder stack, or a view of it that runs only the first ``layers`` layers.

    The view shares every parameter with ``model``; nothing of ``model`` is changed.
    """
    import torch

    decoder = model.get_decoder()
    total = len(decoder.layers)
    if layers is None or layers == total:
        return decoder
    if not 1 <= layers <= total:
        raise InputError(
            f"layers={layers} but the model has {total} decoder layers",
            field="layers",
            expected=f"1..{total} or None",
        )
    view = copy.copy(decoder)
    view._modules = dict(decoder._modules)
    view.layers = torch.nn.ModuleList(list(decoder.layers)[:layers])
    view.config = copy.copy(decoder.config)
    view.config.num_hidden_layers = layers
    return view


@contextlib.contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count if count is not None else _available_cpus())
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _text_key(words: list[str]) -> str:
    return hashlib.blake2b("\x1f".join(words).encode("utf-8", "surrogatepass")).hexdigest()


# --------------------------------------------------------------------------------------------
# The feature table


def word_features(
    texts: Sequence[Sequence[str]],
    *,
    surprisal: SurprisalScorer | None = None,
    neighbours: int = 2,
    text_ids: Sequence[int] | None = None,
    lang: str = "en",
) -> pl.DataFrame:
    """One row of predictors per word: shape, frequency, position, surprisal, neighbours.

    Parameters
    ----------
    texts:
        One sequence of words per text (CMCL-style: split at whitespace, punctuation attached).
    surprisal:
        Scorer for ``surprisal`` and ``entropy`` (bits); None leaves them out (default: None).
    neighbours:
        How many words on each side get their :data:`CORE_FEATURES` (and surprisal) repeated
        as ``prev{k}_*`` / ``next{k}_*`` columns, null beyond the text (default: 2).
    text_ids:
        Identifier of each text (default: None, i.e. 0, 1, 2, ...).
    lang:
        wordfreq language code for ``log_freq`` (default: "en").

    Returns
    -------
    pl.DataFrame
        ``text_id``, ``word_index``, ``word``, then the features: ``length`` (characters),
        ``letters`` (letters only), ``log_freq`` (Zipf), ``ends_sentence`` (ends with . ! ?,
        possibly before closing quotes or brackets), ``ends_clause`` (ends with , ; : or a
        dash), ``capitalised`` (first letter upper-case), ``numeric`` (has a digit),
        ``word_index``, ``relative_position`` (0 for the first word, 1 for the last),
        ``is_first``, ``is_last``, ``text_length`` (words), ``surprisal``, ``entropy``
        (with a scorer) and the neighbour columns.

    Raises
    ------
    InputError
        On texts that are not lists of non-empty words, or ``text_ids`` of the wrong length.

    Examples
    --------
    >>> table = word_features([["A", "dog,", "barking."]], neighbours=1)
    >>> table.select("word", "ends_clause", "is_last", "prev1_letters").rows()
    [('A', False, False, None), ('dog,', True, False, 1), ('barking.', False, True, 3)]
    """
    checked = check_texts(texts)
    if neighbours < 0:
        raise InputError(f"neighbours={neighbours}", field="neighbours", expected=">= 0")
    ids = list(range(len(checked))) if text_ids is None else [int(i) for i in text_ids]
    if len(ids) != len(checked):
        raise InputError(
            f"{len(ids)} text_ids for {len(checked)} texts", field="text_ids", expected="one each"
        )
    table = _base_table(checked, ids)
    table = table.with_columns(_shape_features()).with_columns(
        _position_features(),
        log_freq=_zipf(table["word"], lang=lang),
    )
    core = list(CORE_FEATURES)
    if surprisal is not None:
        scored = surprisal.score(checked)
        table = table.with_columns(
            surprisal=pl.Series(np.concatenate([s.surprisal for s in scored])),
            entropy=pl.Series(np.concatenate([s.entropy for s in scored])),
        )
        core.append("surprisal")
    return table.with_columns(_neighbour_features(core, neighbours)).drop(_TEXT)


def feature_columns(table: pl.DataFrame) -> list[str]:
    """The predictor columns of a :func:`word_features` table (all but the identifiers).

    Examples
    --------
    >>> feature_columns(word_features([["Hi."]], neighbours=0))[:3]
    ['word_index', 'text_length', 'length']
    """
    return [name for name in table.columns if name not in _ID_COLUMNS]


def _base_table(texts: list[list[str]], ids: list[int]) -> pl.DataFrame:
    lengths = np.array([len(words) for words in texts], dtype=np.int64)
    return pl.DataFrame(
        {
            "text_id": np.repeat(np.asarray(ids, dtype=np.int64), lengths),
            "word_index": np.concatenate([np.arange(n, dtype=np.int64) for n in lengths])
            if len(lengths)
            else np.zeros(0, dtype=np.int64),
            "word": [word for words in texts for word in words],
            "text_length": np.repeat(lengths, lengths),
            _TEXT: np.repeat(np.arange(len(lengths), dtype=np.int64), lengths),
        },
        schema={
            "text_id": pl.Int64,
            "word_index": pl.Int64,
            "word": pl.String,
            "text_length": pl.Int64,
            _TEXT: pl.Int64,
        },
    )


def _shape_features() -> list[pl.Expr]:
    word = pl.col("word")
    return [
        word.str.len_chars().cast(pl.Int64).alias("length"),
        word.str.count_matches(r"\p{L}").cast(pl.Int64).alias("letters"),
        word.str.contains(r"[.!?][\"'”’)\]]*$").alias("ends_sentence"),
        word.str.contains(r"[,;:–—-][\"'”’)\]]*$").alias("ends_clause"),
        word.str.contains(r"^[^\p{L}]*\p{Lu}").alias("capitalised"),
        word.str.contains(r"\p{N}").alias("numeric"),
    ]


def _position_features() -> list[pl.Expr]:
    index = pl.col("word_index")
    last = pl.col("text_length") - 1
    return [
        pl.when(last > 0).then(index / last).otherwise(0.0).alias("relative_position"),
        (index == 0).alias("is_first"),
        (index == last).alias("is_last"),
    ]


def _zipf(words: pl.Series, *, lang: str) -> pl.Series:
    """Zipf frequency of each word, looked up once per distinct stripped, lower-cased form."""
    stripped = words.str.replace_all(r"^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$", "").str.to_lowercase()
    distinct = stripped.unique().to_list()
    values = [wordfreq.zipf_frequency(w, lang) if w else 0.0 for w in distinct]
    lookup = pl.DataFrame(
        {"key": distinct, "log_freq": values}, schema={"key": pl.String, "log_freq": pl.Float64}
    )
    return (
        pl.DataFrame({"key": stripped})
        .join(lookup, on="key", how="left", maintain_order="left")
        .get_column("log_freq")
    )


def _neighbour_features(core: list[str], neighbours: int) -> list[pl.Expr]:
    shifted = []
    for distance in range(1, neighbours + 1):
        for name in core:
            column = pl.col(name)
            shifted.append(column.shift(distance).over(_TEXT).alias(f"prev{distance}_{name}"))
            shifted.append(column.shift(-distance).over(_TEXT).alias(f"next{distance}_{name}"))
    return shifted
