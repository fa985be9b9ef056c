"""Word features: literal shape/frequency/position values and LM surprisal on a tiny Llama."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
import torch
import wordfreq
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from tacitly.errors import InputError
from tacitly.signals.synthetic.features import (
    CORE_FEATURES,
    SurprisalScorer,
    check_texts,
    feature_columns,
    word_features,
)

SENTENCES = [
    "The cat sat on the mat.",
    "A dog, barking loudly, ran past the old house!",
    "Reading is slower when words are rare or long.",
    "She said: the results were published in 1999.",
]


@pytest.fixture(scope="module")
def tiny_lm() -> tuple[Any, Any]:
    """A random 2-layer Llama and a byte-level BPE tokenizer trained on four sentences."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(SENTENCES, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>")
    config = LlamaConfig(
        vocab_size=core.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    return model, tokenizer


def _naive_word_surprisal(model: Any, tokenizer: Any, words: list[str]) -> np.ndarray:
    """Token -log2 p from one plain forward pass; a word's tokens found by encoding it alone."""
    start = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    pieces = [tokenizer(w if i == 0 else " " + w, add_special_tokens=False)["input_ids"]
              for i, w in enumerate(words)]  # fmt: skip
    ids = [start] + [t for piece in pieces for t in piece]
    with torch.no_grad():
        log_p = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
    token_bits = [-log_p[i, ids[i + 1]].item() / math.log(2) for i in range(len(ids) - 1)]
    bounds = np.cumsum([0] + [len(p) for p in pieces])
    return np.array([sum(token_bits[a:b]) for a, b in itertools.pairwise(bounds)])


# --------------------------------------------------------------------------------------------
# shape, frequency, position


def test_word_shape_features_literal() -> None:
    table = word_features([['"Hello,', "world", "1999.", "xqzvvk!", "—"]], neighbours=0)
    assert table["length"].to_list() == [7, 5, 5, 7, 1]
    assert table["letters"].to_list() == [5, 5, 0, 6, 0]
    assert table["ends_clause"].to_list() == [True, False, False, False, True]
    assert table["ends_sentence"].to_list() == [False, False, True, True, False]
    assert table["capitalised"].to_list() == [True, False, False, False, False]
    assert table["numeric"].to_list() == [False, False, True, False, False]


def test_log_freq_is_wordfreq_zipf_of_stripped_lowercase_word() -> None:
    table = word_features([["The", "(cat's)", "xqzvvk!", "..."]], neighbours=0)
    assert table["log_freq"].to_list() == [
        wordfreq.zipf_frequency("the", "en"),
        wordfreq.zipf_frequency("cat's", "en"),
        0.0,
        0.0,
    ]
    assert table["log_freq"][0] == pytest.approx(7.73)


def test_position_features() -> None:
    table = word_features([["a", "b", "c", "d", "e"], ["Solo."]], text_ids=[7, 3], neighbours=0)
    assert table["text_id"].to_list() == [7] * 5 + [3]
    assert table["word_index"].to_list() == [0, 1, 2, 3, 4, 0]
    assert table["relative_position"].to_list() == [0.0, 0.25, 0.5, 0.75, 1.0, 0.0]
    assert table["is_first"].to_list() == [True, False, False, False, False, True]
    assert table["is_last"].to_list() == [False, False, False, False, True, True]
    assert table["text_length"].to_list() == [5] * 5 + [1]


def test_neighbours_shift_within_text_and_are_null_at_boundaries() -> None:
    # Both texts have the same id: neighbours must still not cross between them.
    table = word_features([["a", "bb", "ccc"], ["dddd", "eeeee"]], text_ids=[1, 1])
    assert table["prev1_length"].to_list() == [None, 1, 2, None, 4]
    assert table["next1_length"].to_list() == [2, 3, None, 5, None]
    assert table["prev2_length"].to_list() == [None, None, 1, None, None]
    assert table["next2_length"].to_list() == [3, None, None, None, None]
    for name in CORE_FEATURES:
        assert f"prev2_{name}" in table.columns and f"next2_{name}" in table.columns
    assert "prev3_length" not in table.columns


def test_feature_columns_leave_out_identifiers() -> None:
    columns = feature_columns(word_features([["Hi", "there."]]))
    assert "text_id" not in columns and "word" not in columns
    assert {"word_index", "length", "log_freq", "next1_log_freq"} <= set(columns)


@pytest.mark.parametrize(
    "texts",
    [
        pytest.param("The cat sat.", id="plain-string"),
        pytest.param(["The cat sat."], id="text-as-string"),
        pytest.param([[]], id="empty-text"),
        pytest.param([["The", 3]], id="non-string-word"),
        pytest.param([["The", ""]], id="empty-word"),
        pytest.param([["The", "  "]], id="whitespace-word"),
    ],
)
def test_bad_texts_raise_input_error(texts: Any) -> None:
    with pytest.raises(InputError):
        word_features(texts)


def test_check_texts_names_the_text_and_word() -> None:
    with pytest.raises(InputError, match=r"row 2, field \"word 1\""):
        check_texts([["ok"], ["fine", None]])  # type: ignore[list-item]


def test_no_texts_give_an_empty_table() -> None:
    assert word_features([]).height == 0


# --------------------------------------------------------------------------------------------
# surprisal


def test_word_surprisal_is_sum_of_token_bits(tiny_lm: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_lm
    words = ["A", "dog,", "barking", "loudly,", "ran", "past", "the", "zebra-house!"]
    result = SurprisalScorer(model, tokenizer).score([words])[0]
    np.testing.assert_allclose(
        result.surprisal, _naive_word_surprisal(model, tokenizer, words), rtol=1e-4
    )
    assert np.all(result.entropy >= 0)
    assert np.all(result.entropy <= math.log2(model.config.vocab_size) + 1e-6)


def test_batching_and_padding_do_not_change_surprisal(tiny_lm: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_lm
    texts = [s.split() for s in SENTENCES]
    together = SurprisalScorer(model, tokenizer, batch_tokens=4096).score(texts)
    alone = [SurprisalScorer(model, tokenizer, batch_tokens=1).score([t])[0] for t in texts]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a.surprisal, b.surprisal, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a.entropy, b.entropy, rtol=1e-4, atol=1e-5)


def test_long_texts_are_scored_in_windows(tiny_lm: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_lm
    words = " ".join(SENTENCES).split()
    whole = SurprisalScorer(model, tokenizer).score([words])[0]
    windowed = SurprisalScorer(model, tokenizer, max_tokens=12, context_tokens=4)
    parts = windowed.score([words])[0]
    assert parts.surprisal.shape == (len(words),) and np.isfinite(parts.surprisal).all()
    # The first window (11 tokens after the start token) sees the same context as the whole.
    np.testing.assert_allclose(parts.surprisal[:3], whole.surprisal[:3], rtol=1e-4)
    assert not np.allclose(parts.surprisal, whole.surprisal)


def test_early_exit_is_first_layers_then_norm_and_head(tiny_lm: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_lm
    words = SENTENCES[0].split()
    result = SurprisalScorer(model, tokenizer, layers=1).score([words])[0]
    ids = [tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    ids += tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        states = model(torch.tensor([ids]), output_hidden_states=True).hidden_states
        log_p = torch.log_softmax(model.lm_head(model.model.norm(states[1]))[0], dim=-1)
    token_bits = [-log_p[i, ids[i + 1]].item() / math.log(2) for i in range(len(ids) - 1)]
    assert result.surprisal.sum() == pytest.approx(sum(token_bits), rel=1e-4)
    assert len(model.model.layers) == 2  # the view left the model alone


def test_surprisal_features_and_neighbours(tiny_lm: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_lm
    scorer = SurprisalScorer(model, tokenizer, cache_size=4)
    texts = [s.split() for s in SENTENCES[:2]]
    table = word_features(texts, surprisal=scorer, neighbours=1)
    expected = np.concatenate([r.surprisal for r in scorer.score(texts)])
    np.testing.assert_allclose(table["surprisal"].to_numpy(), expected)
    assert table["prev1_surprisal"][1] == pytest.approx(expected[0])
    assert table["prev1_surprisal"][0] is None and "entropy" in table.columns


@pytest.mark.parametrize(
    ("options", "field"),
    [
        pytest.param({"layers": 3}, "layers", id="too-many-layers"),
        pytest.param({"layers": 0}, "layers", id="zero-layers"),
        pytest.param({"max_tokens": 4, "context_tokens": 3}, "context_tokens", id="context"),
    ],
)
def test_bad_scorer_options(tiny_lm: tuple[Any, Any], options: dict[str, int], field: str) -> None:
    with pytest.raises(InputError) as caught:
        SurprisalScorer(*tiny_lm, **options)
    assert caught.value.field == field
