"""The LightGBM reading-measure model: trains end to end, saves, loads, refuses bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from tacitly.errors import InputError
from tacitly.signals.gaze.alignment import WORD_MEASURES
from tacitly.signals.gaze.readers import cmcl_texts, read_cmcl
from tacitly.signals.synthetic.features import SurprisalScorer
from tacitly.signals.synthetic.metrics import mae_table
from tacitly.signals.synthetic.psycholinguistic import (
    FORMAT,
    PsycholinguisticGazeModel,
    PsycholinguisticOptions,
)

FAST = {"num_boost_round": 40, "early_stopping_rounds": 10, "params": {"min_data_in_leaf": 3}}


def _hand_made_corpus() -> pl.DataFrame:
    """30 words in 5 sentences; measures grow with length and fall with frequency, by hand."""
    sentences = [
        "The old lighthouse keeper slept soundly.",
        "A small boat drifted past the rocks.",
        "Nobody noticed the extraordinary phosphorescence tonight.",
        "Gulls circled above the harbour walls.",
        "It was quiet and the sea calm.",
    ]
    rows = []
    for text_id, sentence in enumerate(sentences):
        for index, word in enumerate(sentence.split()):
            size = len(word)
            rows.append(
                {
                    "text_id": text_id,
                    "word_index": index,
                    "word": word,
                    "nFix": 4.0 + 2.5 * size,
                    "FFD": 2.0 + 0.2 * size,
                    "GPT": 2.0 + 0.8 * size + (3.0 if word.endswith(".") else 0.0),
                    "TRT": 2.0 + 0.7 * size,
                    "fixProp": min(100.0, 30.0 + 7.0 * size),
                }
            )
    return pl.DataFrame(rows)


@pytest.fixture(scope="module")
def corpus() -> pl.DataFrame:
    return _hand_made_corpus()


@pytest.fixture(scope="module")
def tiny_scorer() -> SurprisalScorer:
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=280,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(["the cat sat on the mat", "a boat drifted past"], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>")
    config = LlamaConfig(
        vocab_size=core.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    torch.manual_seed(0)
    return SurprisalScorer(LlamaForCausalLM(config).eval(), tokenizer, name="tiny-llama")


def _texts(table: pl.DataFrame) -> tuple[list[list[str]], list[int]]:
    texts = cmcl_texts(table)
    return [w for _, w in texts], [i for i, _ in texts]


def test_trains_and_predicts_in_range(corpus: pl.DataFrame) -> None:
    model = PsycholinguisticGazeModel(PsycholinguisticOptions(lm=None)).fit(corpus, **FAST)
    words, ids = _texts(corpus)
    pred = model.predict(words, text_ids=ids)
    assert pred.columns == ["text_id", "word_index", "word", *WORD_MEASURES]
    values = pred.select(WORD_MEASURES).to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= 100).all()
    assert pred["word"].to_list() == [w for text in words for w in text]
    # It learned something: better than predicting the mean on its own training words.
    mean = corpus.with_columns(pl.col(m).mean() for m in WORD_MEASURES)
    assert mae_table(pred, corpus)["overall"] < mae_table(mean, corpus)["overall"]


def test_same_seed_same_model(corpus: pl.DataFrame) -> None:
    words, ids = _texts(corpus)
    first = PsycholinguisticGazeModel().fit(corpus, seed=3, **FAST).predict(words, text_ids=ids)
    again = PsycholinguisticGazeModel().fit(corpus, seed=3, **FAST).predict(words, text_ids=ids)
    assert first.equals(again)


def test_early_stopping_on_valid(corpus: pl.DataFrame) -> None:
    model = PsycholinguisticGazeModel().fit(
        corpus.filter(pl.col("text_id") < 4), valid=corpus.filter(pl.col("text_id") == 4), **FAST
    )
    assert model.training["early_stopping"] == "valid"
    assert set(model.training["rounds"]) == set(WORD_MEASURES)


def test_save_load_round_trip_with_surprisal(
    corpus: pl.DataFrame, tiny_scorer: SurprisalScorer, tmp_path: Path
) -> None:
    options = PsycholinguisticOptions(lm="tiny-llama", neighbours=1)
    model = PsycholinguisticGazeModel(options, scorer=tiny_scorer).fit(corpus, **FAST)
    assert "surprisal" in model.features and "next1_surprisal" in model.features
    model.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["format"] == FORMAT and config["version"] == 1
    assert config["lm"]["lm"] == "tiny-llama" and config["options"]["neighbours"] == 1
    assert config["training"]["words"] == corpus.height and config["training"]["seed"] == 42
    loaded = PsycholinguisticGazeModel.load(tmp_path / "model", scorer=tiny_scorer)
    texts = [["A", "new", "sentence,", "never", "seen."], ["Short."]]
    assert loaded.predict(texts).equals(model.predict(texts))


def test_trains_on_cmcl_sentences(shared_data: Path, tmp_path: Path) -> None:
    table = read_cmcl(shared_data / "cmcl2021" / "train.csv")
    first = table.filter(
        pl.col("text_id").is_in(table["text_id"].unique(maintain_order=True)[:40].to_list())
    )
    model = PsycholinguisticGazeModel().fit(first, **FAST)
    words, ids = _texts(first)
    pred = model.predict(words, text_ids=ids)
    assert pred.height == first.height
    loaded = PsycholinguisticGazeModel.load(model.save(tmp_path / "cmcl"))
    assert loaded.predict(words, text_ids=ids).equals(pred)


@pytest.mark.parametrize(
    "texts",
    [
        pytest.param([[]], id="empty-text"),
        pytest.param([["fine", 7]], id="non-string-word"),
        pytest.param(["a whole sentence"], id="string-instead-of-words"),
    ],
)
def test_bad_texts_raise_input_error(corpus: pl.DataFrame, texts: Any) -> None:
    model = PsycholinguisticGazeModel().fit(corpus, **FAST)
    with pytest.raises(InputError):
        model.predict(texts)


def test_bad_training_tables(corpus: pl.DataFrame) -> None:
    with pytest.raises(InputError, match="missing column"):
        PsycholinguisticGazeModel().fit(corpus.drop("GPT"))
    broken = corpus.with_columns(
        pl.when(pl.col("word_index") == 2).then(None).otherwise(pl.col("TRT")).alias("TRT")
    )
    with pytest.raises(InputError) as caught:
        PsycholinguisticGazeModel().fit(broken)
    assert caught.value.field == "TRT" and caught.value.row == 3


def test_unfitted_model_and_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        PsycholinguisticGazeModel().predict([["Hi."]])
    with pytest.raises(InputError, match=r"config\.json is missing"):
        PsycholinguisticGazeModel.load(tmp_path)
    (tmp_path / "config.json").write_text('{"format": "something else"}')
    with pytest.raises(InputError, match="not a saved"):
        PsycholinguisticGazeModel.load(tmp_path)
