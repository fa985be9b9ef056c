"""Tests of the neural gaze predictor on a tiny random BERT and a hand-made WordPiece vocab."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from tacitly.errors import InputError
from tacitly.signals.synthetic import neural
from tacitly.signals.synthetic.neural import (
    MEASURES,
    NeuralGazeConfig,
    NeuralGazeModel,
)

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "the", "a", "cat", "dog", "sat", "on", "mat", "run", "##ning", "quick", "##ly",
    "read", "##s", "book", "is", "fun", ".", ",", "!", "very", "long", "text",
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer BERT (hidden 32) with a WordPiece tokenizer over ``VOCAB``, saved to a folder."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = {token: index for index, token in enumerate(VOCAB)}
    core = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    return str(folder)


def _config(encoder: str, **changes: object) -> NeuralGazeConfig:
    settings: dict[str, object] = {
        "encoder": encoder,
        "lora_r": 4,
        "lora_alpha": 8,
        "lora_target_modules": ("query", "value"),
        "head_hidden": 16,
        "epochs": 3,
        "batch_size": 4,
        "lr": 1e-2,
        "max_length": 32,
        "context_tokens": 8,
    }
    settings.update(changes)
    return NeuralGazeConfig(**settings)  # type: ignore[arg-type]


SENTENCES = [
    "the cat sat on the mat.",
    "a dog is running quickly!",
    "the dog reads a book.",
    "reading is very fun, the cat sat.",
    "a long text is fun.",
    "the quick cat reads.",
]


def _corpus() -> pl.DataFrame:
    rows = []
    for text_id, sentence in enumerate(SENTENCES):
        for index, word in enumerate(sentence.split()):
            length = len(word)
            rows.append(
                {
                    "text_id": text_id,
                    "word_index": index,
                    "word": word,
                    "nFix": 5.0 * length,
                    "FFD": 1.0 + 0.2 * length,
                    "GPT": 2.0 + index,
                    "TRT": 1.5 * length,
                    "fixProp": min(100.0, 20.0 + 10.0 * length),
                }
            )
    return pl.DataFrame(rows)


@pytest.fixture(scope="module")
def trained(tiny_encoder: str, tmp_path_factory: pytest.TempPathFactory) -> NeuralGazeModel:
    corpus = _corpus()
    return NeuralGazeModel.fit(
        corpus,
        corpus,
        config=_config(tiny_encoder, epochs=4),
        output_dir=tmp_path_factory.mktemp("run"),
        progress=False,
    )


# -------------------------------------------------------------------------------- sub-tokens


@pytest.mark.parametrize(
    ("words", "firsts"),
    [
        pytest.param(["the", "cat"], [1, 2], id="one-piece-words"),
        # [CLS] the run ##ning cat . [SEP]: "cat." splits into "cat" and "." at the punctuation
        pytest.param(["the", "running", "cat."], [1, 2, 4], id="split-words"),
        # "quickly" -> quick ##ly; "xyz" is out of vocabulary -> one [UNK]
        pytest.param(["quickly", "xyz", "reads!"], [1, 3, 4], id="unknown-word"),
        # a zero-width space vanishes in WordPiece; the word gets [UNK] so it still has a token
        pytest.param(["a", "\u200b", "dog"], [1, 2, 3], id="word-without-tokens"),
    ],
)
def test_first_sub_token_positions(tiny_encoder: str, words: list[str], firsts: list[int]) -> None:
    model = NeuralGazeModel(_config(tiny_encoder))
    (window,) = model.windower.windows([words])
    assert window.first_positions == firsts
    assert window.words == list(range(len(words)))
    assert window.input_ids[0] == VOCAB.index("[CLS]")
    assert window.input_ids[-1] == VOCAB.index("[SEP]")


def test_zero_width_word_gets_unknown_token(tiny_encoder: str) -> None:
    model = NeuralGazeModel(_config(tiny_encoder))
    (window,) = model.windower.windows([["a", "\u200b", "dog"]])
    assert [VOCAB[i] for i in window.input_ids] == ["[CLS]", "a", "[UNK]", "dog", "[SEP]"]


def test_long_text_windows_keep_every_word_once(tiny_encoder: str) -> None:
    # "running" is 2 sub-tokens, so 30 words are 40 sub-tokens: 5+ windows of at most 8
    words = ("the running cat sat on a mat " * 5).split()[:30]
    model = NeuralGazeModel(_config(tiny_encoder, max_length=8, context_tokens=2))
    windows = model.windower.windows([words])
    assert len(windows) > 1
    assert all(len(window.input_ids) <= 8 for window in windows)
    predicted = [word for window in windows for word in window.words]
    assert predicted == list(range(30))
    # windows after the first carry left context: their first predicted word is not at 1
    assert any(window.first_positions[0] > 1 for window in windows[1:])
    table = model.predict([words, ["the", "cat"]], precision="float32")
    assert table.height == 32
    assert table["word"].to_list() == [*words, "the", "cat"]
    assert table["word_index"].to_list() == [*range(30), 0, 1]


def test_a_word_longer_than_a_window_is_cut_not_dropped(tiny_encoder: str) -> None:
    model = NeuralGazeModel(_config(tiny_encoder, max_length=5, context_tokens=1))
    words = ["the", "quickly" * 4, "cat"]  # 8 sub-tokens, windows hold 3
    windows = model.windower.windows([words])
    assert [word for window in windows for word in window.words] == [0, 1, 2]
    assert all(len(window.input_ids) <= 5 for window in windows)


# -------------------------------------------------------------------------------- training


def test_training_reduces_the_training_loss(trained: NeuralGazeModel) -> None:
    losses = [record["train_loss"] for record in trained.history]
    assert len(losses) == 4
    assert losses[-1] < losses[0]


def test_training_is_deterministic_and_resumes(
    tiny_encoder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = _corpus()
    config = _config(tiny_encoder, epochs=3)
    whole = NeuralGazeModel.fit(corpus, corpus, config=config, progress=False)
    calls = {"n": 0}
    original = neural._Trainer._train_epoch

    def interrupted(self: neural._Trainer, bar: object) -> float:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, bar)

    monkeypatch.setattr(neural._Trainer, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        NeuralGazeModel.fit(corpus, corpus, config=config, output_dir=tmp_path, progress=False)
    monkeypatch.setattr(neural._Trainer, "_train_epoch", original)
    resumed = NeuralGazeModel.fit(
        corpus, corpus, config=config, output_dir=tmp_path, progress=False
    )
    assert [h["train_loss"] for h in resumed.history] == pytest.approx(
        [h["train_loss"] for h in whole.history], rel=1e-5
    )
    texts = [sentence.split() for sentence in SENTENCES]
    left = whole.predict(texts, precision="float32").select(MEASURES).to_numpy()
    right = resumed.predict(texts, precision="float32").select(MEASURES).to_numpy()
    np.testing.assert_allclose(left, right, rtol=1e-5, atol=1e-5)


def test_resume_with_another_config_is_refused(tiny_encoder: str, tmp_path: Path) -> None:
    corpus = _corpus()
    NeuralGazeModel.fit(
        corpus,
        corpus,
        config=_config(tiny_encoder, epochs=1),
        output_dir=tmp_path,
        progress=False,
    )
    with pytest.raises(InputError, match="another config"):
        NeuralGazeModel.fit(
            corpus,
            corpus,
            config=_config(tiny_encoder, epochs=2),
            output_dir=tmp_path,
            progress=False,
        )


def test_top_layers_trains_only_those_layers_and_the_head(tiny_encoder: str) -> None:
    model = NeuralGazeModel(_config(tiny_encoder, adaptation="top_layers", top_layers=1))
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trained
    assert all(name.startswith(("head.", "encoder.encoder.layer.1.")) for name in trained)


# -------------------------------------------------------------------------------- predictions


def test_predictions_are_finite_and_on_the_cmcl_scale(trained: NeuralGazeModel) -> None:
    table = trained.predict([s.split() for s in SENTENCES] + [["xyz", "!!"]], batch_size=3)
    assert table.columns == ["text_id", "word_index", "word", *MEASURES]
    values = table.select(MEASURES).to_numpy()
    assert np.isfinite(values).all()
    assert values.min() >= 0.0
    assert values.max() <= 100.0


def test_evaluate_gives_the_cmcl_metric(trained: NeuralGazeModel) -> None:
    corpus = _corpus()
    scores = trained.evaluate(corpus)
    assert set(scores) == {*MEASURES, "overall"}
    assert scores["overall"] == pytest.approx(np.mean([scores[m] for m in MEASURES]))


@pytest.mark.parametrize(
    "dtype", [pytest.param("float32", id="f32"), pytest.param("float16", id="f16")]
)
def test_save_load_round_trip(trained: NeuralGazeModel, tmp_path: Path, dtype: str) -> None:
    folder = trained.save(tmp_path / "model", dtype=dtype)  # type: ignore[arg-type]
    assert sorted(path.name for path in folder.iterdir()) == ["config.json", "model.safetensors"]
    size = (folder / "model.safetensors").stat().st_size
    assert size < 50_000  # only LoRA + head of the tiny model, not the encoder
    loaded = NeuralGazeModel.load(folder)
    texts = [s.split() for s in SENTENCES]
    before = trained.predict(texts, precision="float32").select(MEASURES).to_numpy()
    after = loaded.predict(texts, precision="float32").select(MEASURES).to_numpy()
    if dtype == "float32":
        np.testing.assert_array_equal(before, after)
    else:
        np.testing.assert_allclose(before, after, atol=0.05 * max(1.0, np.abs(before).max()))
    assert loaded.history == trained.history


def test_load_refuses_a_foreign_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing file"):
        NeuralGazeModel.load(tmp_path)
    (tmp_path / "config.json").write_text('{"kind": "other"}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(InputError, match="not a neural gaze model"):
        NeuralGazeModel.load(tmp_path)


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        pytest.param([[]], "no words", id="empty-text"),
        pytest.param("the cat sat", "sequence of texts", id="string-not-texts"),
        pytest.param(["the cat sat"], "sequence of words", id="string-row"),
        pytest.param([["the", 3]], "not a non-empty string", id="non-string-word"),
        pytest.param([["the", ""]], "empty", id="empty-word"),
        pytest.param([["the", None]], "not a non-empty string", id="none-word"),
    ],
)
def test_bad_input_raises_input_error(
    trained: NeuralGazeModel, texts: object, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        trained.predict(texts)  # type: ignore[arg-type]


def test_no_texts_give_an_empty_table(trained: NeuralGazeModel) -> None:
    table = trained.predict([])
    assert table.height == 0
    assert table.columns == ["text_id", "word_index", "word", *MEASURES]


def test_config_round_trip_and_checks() -> None:
    config = NeuralGazeConfig(word_features=("length",), loss="huber")
    assert NeuralGazeConfig.from_dict(config.to_dict()) == config
    with pytest.raises(InputError, match="unknown word feature"):
        NeuralGazeConfig(word_features=("colour",))
    with pytest.raises(InputError, match="context_tokens"):
        NeuralGazeConfig(max_length=16, context_tokens=14)
    assert all("help" in item.metadata for item in neural.dataclasses.fields(NeuralGazeConfig))
    assert not math.isnan(NeuralGazeConfig().lr)


def test_word_features_literal() -> None:
    features = neural._word_features(["The", "cat.", "(sat)"], ("length", "position", "neighbours"))
    # length without surrounding punctuation; position 0..1; then previous/next length
    # (0 past the ends) and previous/next frequency (checked for the ends only)
    np.testing.assert_allclose(features[:, :4], [[3, 0, 0, 3], [3, 0.5, 3, 3], [3, 1, 3, 0]])
    assert features[0, 5] > 0 and features[0, 4] == 0.0
    assert features[2, 5] == 0.0
    assert features.shape == (3, 6)
