"""Gaze reward models on a tiny random Llama: shapes, layouts, training, saving, padding, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tacitly.errors import InputError
from tacitly.rewards.gaze import (
    ADAPTER_FOLDER,
    CONFIG_NAME,
    WEIGHTS_NAME,
    GazeRewardConfig,
    GazeRewardModel,
    mode_from_flags,
)
from tacitly.signals.synthetic.predictor import GazePredictor

MODES = ("baseline", "concat", "add")


def _row(prompt: str, chosen: str, rejected: str, margin: float | None = None) -> dict[str, Any]:
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "margin": margin,
        "weight": None,
        "meta": {"source": "test", "id": prompt, "group": prompt},
    }


ROWS = [
    _row("How do I bake bread?", "Mix flour, water, salt and yeast, then bake it.", "No idea."),
    _row("Say hi.", "Hi!", "Reading is a fascinating activity for people who like words."),
]


def _captured_backbone_inputs(model: GazeRewardModel) -> dict[str, torch.Tensor]:
    """Record what the transformer receives on the next forward pass."""
    seen: dict[str, torch.Tensor] = {}

    def hook(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        seen.update({k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)})

    model.backbone.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


def _bt_loss(model: GazeRewardModel, batch: dict[str, Any]) -> torch.Tensor:
    chosen, rejected = model(**batch["chosen"]), model(**batch["rejected"])
    return -torch.nn.functional.logsigmoid(chosen - rejected).mean()


# ------------------------------------------------------------------ shapes and layouts


@pytest.mark.parametrize("mode", [pytest.param(m, id=m) for m in MODES])
def test_one_reward_per_sequence(make_model: Any, mode: str) -> None:
    model = make_model(mode).eval()
    batch = model.collate(ROWS)
    assert set(batch) == {"chosen", "rejected", "margin"}
    assert batch["margin"] is None
    assert ("gaze_features" in batch["chosen"]) == (mode != "baseline")
    rewards = model(**batch["chosen"])
    assert rewards.shape == (2,)
    assert rewards.dtype == torch.float32
    assert model.score(["How do I bake bread?"], ["Bake it."]).shape == (1,)
    assert model.compare(ROWS).shape == (2,)


def test_concat_prefixes_eye_tokens_and_gaze(make_model: Any) -> None:
    model = make_model("concat").eval()
    inputs = model.encode(
        [ROWS[0]["prompt"] + ROWS[0]["chosen"], ROWS[1]["prompt"] + ROWS[1]["chosen"]]
    )
    lengths = inputs["attention_mask"].sum(dim=1)
    seen = _captured_backbone_inputs(model)
    with torch.no_grad():
        model(**inputs)
        text = model.backbone.get_input_embeddings()(inputs["input_ids"])
        gaze = model._project(inputs["gaze_features"])
    padded = inputs["input_ids"].shape[1]
    assert seen["inputs_embeds"].shape[1] == 2 * padded + 2
    assert seen["attention_mask"].sum(dim=1).tolist() == (2 * lengths + 2).tolist()
    assert seen["position_ids"][0, : 2 * int(lengths[0]) + 2].tolist() == list(
        range(2 * int(lengths[0]) + 2)
    )
    eye_open, eye_close = model.eye_embeddings.detach()  # type: ignore[union-attr]
    for row, n in enumerate(lengths.tolist()):
        embeds = seen["inputs_embeds"][row]
        torch.testing.assert_close(embeds[0], eye_open)
        torch.testing.assert_close(embeds[1 : n + 1], gaze[row, :n])
        torch.testing.assert_close(embeds[n + 1], eye_close)
        torch.testing.assert_close(embeds[n + 2 : 2 * n + 2], text[row, :n])


def test_add_keeps_length_and_adds_projected_gaze(make_model: Any) -> None:
    model = make_model("add").eval()
    inputs = model.encode([ROWS[0]["prompt"] + ROWS[0]["chosen"]])
    seen = _captured_backbone_inputs(model)
    with torch.no_grad():
        model(**inputs)
        text = model.backbone.get_input_embeddings()(inputs["input_ids"])
        gaze = model._project(inputs["gaze_features"])
    assert seen["inputs_embeds"].shape == (*inputs["input_ids"].shape, 32)
    torch.testing.assert_close(seen["attention_mask"], inputs["attention_mask"])
    torch.testing.assert_close(seen["inputs_embeds"], text + gaze)


def test_template_tokens_have_no_gaze_and_response_scope_limits_features(make_model: Any) -> None:
    conversation = ROWS[0]["prompt"] + ROWS[0]["chosen"]
    whole = make_model("add").encode([conversation])
    response_only = make_model("add", features_scope="response").encode([conversation])
    has_whole = whole["gaze_features"][0].abs().sum(dim=-1) > 0
    has_response = response_only["gaze_features"][0].abs().sum(dim=-1) > 0
    assert has_response.sum() < has_whole.sum()
    assert not (has_response & ~has_whole).any()
    # The response's tokens are the last content tokens: everything with features comes after
    # the last token that only the whole-conversation encoding gives features.
    assert has_response.nonzero().min() > (has_whole & ~has_response).nonzero().max()
    # Template markup (first token <|im_start|>) carries no reading measures.
    assert not has_whole[0]


@pytest.mark.parametrize(
    "mode", [pytest.param("concat", id="concat"), pytest.param("add", id="add")]
)
def test_masked_features_do_not_change_the_reward(make_model: Any, mode: str) -> None:
    model = make_model(mode, features_used=(1, 0, 1, 0, 1)).eval()
    inputs = model.encode([ROWS[0]["prompt"] + ROWS[0]["chosen"]])
    with torch.no_grad():
        reward = model(**inputs)
        changed = dict(inputs, gaze_features=inputs["gaze_features"].clone())
        changed["gaze_features"][..., [1, 3]] = torch.rand_like(
            changed["gaze_features"][..., [1, 3]]
        )
        torch.testing.assert_close(model(**changed), reward, rtol=0, atol=0)
        used = dict(inputs, gaze_features=inputs["gaze_features"].clone())
        used["gaze_features"][..., 0] *= 3.0
        assert not torch.equal(model(**used), reward)
    assert model.projector[0].in_features == 3  # type: ignore[index]


# ------------------------------------------------------------------ training and saving


def _trained_one_step(model: GazeRewardModel) -> GazeRewardModel:
    model.train()
    optimiser = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    _bt_loss(model, model.collate(ROWS)).backward()
    optimiser.step()
    return model.eval()


@pytest.mark.parametrize("mode", [pytest.param(m, id=m) for m in MODES])
def test_one_step_trains_projector_eyes_head_and_lora_only(make_model: Any, mode: str) -> None:
    model = make_model(mode)
    names = {name for name, _ in model.named_trainable_parameters()}
    expected_new = {"head.weight", "head.bias"}
    if mode != "baseline":
        expected_new |= {n for n in names if n.startswith("projector.")}
        assert len([n for n in names if n.startswith("projector.")]) == 8
    if mode == "concat":
        expected_new.add("eye_embeddings")
    assert {n for n in names if not n.startswith("backbone.")} == expected_new
    assert all("lora_" in n for n in names if n.startswith("backbone."))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    _trained_one_step(model)
    after = dict(model.named_parameters())
    for name in expected_new | {n for n in names if "lora_B" in n}:
        assert not torch.equal(before[name], after[name]), f"{name} did not train"
    frozen = [n for n in before if n not in names]
    assert frozen and all(torch.equal(before[n], after[n]) for n in frozen)


@pytest.mark.parametrize("mode", [pytest.param(m, id=m) for m in MODES])
def test_save_load_round_trip_gives_identical_rewards(
    make_model: Any, predictor: GazePredictor, tmp_path: Path, mode: str
) -> None:
    model = _trained_one_step(make_model(mode))
    expected = model.compare(ROWS)
    model.save_pretrained(tmp_path)
    assert (tmp_path / CONFIG_NAME).is_file() and (tmp_path / ADAPTER_FOLDER).is_dir()
    from safetensors.torch import load_file

    stored = set(load_file(str(tmp_path / WEIGHTS_NAME)))
    assert not any(key.startswith("backbone.") for key in stored)
    assert "head.weight" in stored and ("eye_embeddings" in stored) == (mode == "concat")
    loaded = GazeRewardModel.from_pretrained(tmp_path, mode=mode, predictor=predictor)
    np.testing.assert_array_equal(loaded.compare(ROWS), expected)
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    for name, tensor in loaded.named_parameters():
        if name in trained:
            assert tensor.requires_grad and torch.equal(tensor, trained[name]), name


def test_feature_scaling_is_fitted_on_present_tokens_and_saved(
    make_model: Any, predictor: GazePredictor, tmp_path: Path
) -> None:
    model = make_model("add", standardise=True).eval()
    with pytest.warns(UserWarning, match="fit_feature_scaling"):
        model.score(["Say hi."], ["Hi!"])
    mean, std = model.fit_feature_scaling(ROWS)
    batch = model.collate(ROWS)
    values = torch.cat(
        [batch[side]["gaze_features"].reshape(-1, 5) for side in ("chosen", "rejected")]
    )
    values = values[values.abs().sum(dim=1) > 0].double().numpy()
    np.testing.assert_allclose(mean, values.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(std, values.std(axis=0), rtol=1e-4)
    model.save_pretrained(tmp_path)
    loaded = GazeRewardModel.from_pretrained(tmp_path, predictor=predictor)
    np.testing.assert_array_equal(loaded.feature_mean.numpy(), mean)
    assert bool(loaded.feature_scaling_fitted)


def test_repeated_conversations_are_predicted_once(
    tiny_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = GazeRewardConfig(model_name=str(tiny_lm), mode="add", load_in_4bit=False)
    model = GazeRewardModel(config, predictor_cache=tmp_path / "cache.sqlite")
    calls: list[int] = []
    original = model.predictor.model.predict
    monkeypatch.setattr(
        model.predictor.model, "predict", lambda texts: calls.append(len(texts)) or original(texts)
    )
    model.collate(ROWS)
    model.collate(ROWS)
    # Chosen side: 2 prompts + 2 answers; rejected side: only its 2 answers are new; then none.
    assert calls == [4, 2]
    assert (tmp_path / "cache.sqlite").is_file()


# ------------------------------------------------------------------ padding and truncation


@pytest.mark.parametrize("mode", [pytest.param(m, id=m) for m in MODES])
def test_left_and_right_padding_give_the_unpadded_reward(make_model: Any, mode: str) -> None:
    model = make_model(mode).eval()
    short = ROWS[1]["prompt"] + ROWS[1]["chosen"]
    long = ROWS[0]["prompt"] + ROWS[0]["chosen"]
    with torch.no_grad():
        alone = model(**model.encode([short]))
        right = model.encode([short, long])
        assert right["attention_mask"][0, -1] == 0  # the short one is padded
        from_right = model(**right)[0]
        shift = int((right["attention_mask"][0] == 0).sum())
        left = {key: value.roll(shift, dims=1) for key, value in right.items()}
        left = {key: torch.cat([left[key][:1], right[key][1:]]) for key in right}
        assert left["attention_mask"][0, 0] == 0
        from_left = model(**left)[0]
    torch.testing.assert_close(from_right, alone[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(from_left, alone[0], rtol=0, atol=1e-5)


def _decoded(model: GazeRewardModel, inputs: dict[str, torch.Tensor]) -> str:
    ids = inputs["input_ids"][0][inputs["attention_mask"][0].bool()]
    return str(model.tokenizer.decode(ids))


def _length(model: GazeRewardModel, conversation: list[dict[str, str]]) -> int:
    return int(model.encode([conversation])["attention_mask"].sum())


def test_truncation_drops_earliest_turns_then_prompt_tokens_never_the_response(
    make_model: Any,
) -> None:
    response = {"role": "assistant", "content": "Mix flour, water, salt and yeast."}
    conversation = [
        {"role": "system", "content": "Reading is a fascinating activity."},
        {"role": "user", "content": "Say hi."},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "How do I bake bread at home?"},
        response,
    ]
    full = _length(make_model("add"), conversation)
    last_three = _length(make_model("add"), conversation[2:])
    last_two = _length(make_model("add"), conversation[3:])
    # Room for the last three turns and a token: the two earliest turns go whole.
    model = make_model("add", max_length=last_three + 1)
    inputs = model.encode([conversation])
    assert int(inputs["attention_mask"].sum()) == last_three < full
    text = _decoded(model, inputs)
    assert "Reading" not in text and "Say hi." not in text
    assert text == (
        "<|im_start|>assistant\nHi!<|im_end|>\n<|im_start|>user\nHow do I bake bread at home?"
        "<|im_end|>\n<|im_start|>assistant\nMix flour, water, salt and yeast.<|im_end|>\n"
    )
    # Less room than the last prompt turn needs: its first tokens are cut, the response is kept.
    tight = make_model("add", max_length=last_two - 4)
    inputs = tight.encode([conversation])
    assert int(inputs["attention_mask"].sum()) == last_two - 4
    assert inputs["gaze_features"].shape[1] == last_two - 4
    text = _decoded(tight, inputs)
    assert not text.startswith("<|im_start|>user")
    assert text.endswith("<|im_start|>assistant\nMix flour, water, salt and yeast.<|im_end|>\n")


def test_a_response_longer_than_max_length_is_an_error_or_cut_at_its_end(make_model: Any) -> None:
    conversation = ROWS[0]["prompt"] + ROWS[0]["chosen"]
    with pytest.raises(InputError, match="max_length=12 on its own") as caught:
        make_model("add", max_length=12).encode([conversation])
    assert (caught.value.row, caught.value.field) == (1, "response")
    model = make_model("add", max_length=20, long_responses="cut_end")
    long_prompt = [
        {
            "role": "user",
            "content": (
                "The quick brown fox jumps over the lazy dog near the river. "
                "How do I bake bread at home? Mix flour, water, salt and yeast."
            ),
        }
    ]
    inputs = model.encode([long_prompt + ROWS[0]["chosen"]])
    assert int(inputs["attention_mask"].sum()) == 20
    # 10 prompt tokens (max_length // 2), then the response from its start, cut at its end.
    ids = inputs["input_ids"][0]
    assert str(model.tokenizer.decode(ids[:10])).endswith("salt and yeast.")
    response_part = str(model.tokenizer.decode(ids[10:]))
    assert response_part.startswith("<|im_end|>\n<|im_start|>assistant\nMix")
    assert not response_part.endswith("bake it.<|im_end|>\n")


# ------------------------------------------------------------------ configuration and errors


@pytest.mark.parametrize(
    ("concat", "softprompt", "mode"),
    [
        pytest.param(True, True, "concat", id="concat"),
        pytest.param(False, True, "add", id="add"),
        pytest.param(True, False, "baseline", id="baseline"),
        pytest.param(False, False, "baseline", id="baseline-no-concat"),
    ],
)
def test_mode_from_reference_flags(concat: bool, softprompt: bool, mode: str) -> None:
    assert mode_from_flags(concat=concat, use_softprompt=softprompt) == mode


def test_config_reads_cli_strings_and_round_trips() -> None:
    config = GazeRewardConfig(features_used="0,1,0,1,0", fp_dropout="0.2,0.4", mode="add")  # type: ignore[arg-type]
    assert config.features_used == (0, 1, 0, 1, 0) and config.fp_dropout == (0.2, 0.4)
    assert GazeRewardConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    ("options", "field"),
    [
        pytest.param({"features_used": (1, 0, 1)}, "features_used", id="features-used-length"),
        pytest.param({"features_used": "1,0,2,0,1"}, "features_used", id="features-used-value"),
        pytest.param({"features_used": (0,) * 5, "mode": "add"}, "features_used", id="no-feature"),
        pytest.param({"mode": "prefix"}, "mode", id="unknown-mode"),
        pytest.param({"fp_dropout": (0.1,)}, "fp_dropout", id="fp-dropout"),
        pytest.param({"predictor_version": 3}, "predictor_version", id="predictor-version"),
    ],
)
def test_bad_config_is_an_input_error(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as caught:
        GazeRewardConfig(**options)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("row", "field"),
    [
        pytest.param(
            {k: v for k, v in ROWS[0].items() if k != "rejected"}, "rejected", id="no-side"
        ),
        pytest.param(dict(ROWS[0], chosen=[]), "chosen", id="empty-side"),
        pytest.param(
            dict(ROWS[0], chosen=[{"role": "assistant", "content": "  "}]), "chosen", id="blank"
        ),
        pytest.param(dict(ROWS[0], prompt="How?"), "prompt", id="prompt-not-messages"),
    ],
)
def test_bad_rows_are_input_errors(make_model: Any, row: dict[str, Any], field: str) -> None:
    model = make_model("baseline")
    with pytest.raises(InputError) as caught:
        model.collate([ROWS[1], row])
    assert (caught.value.row, caught.value.field) == (2, field)


def test_a_conversation_without_a_response_is_an_input_error(make_model: Any) -> None:
    with pytest.raises(InputError, match="does not end with a response"):
        make_model("baseline").encode([[{"role": "user", "content": "Hello?"}]])


def test_loading_a_checkpoint_of_another_mode_is_an_input_error(
    make_model: Any, predictor: GazePredictor, tmp_path: Path
) -> None:
    make_model("add").save_pretrained(tmp_path)
    with pytest.raises(InputError, match="is a 'add' model, not 'concat'"):
        GazeRewardModel.from_pretrained(tmp_path, mode="concat", predictor=predictor)
    # A config edited to another mode no longer matches the stored tensors.
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    (tmp_path / CONFIG_NAME).write_text(json.dumps(dict(config, mode="concat")))
    with pytest.raises(InputError, match="do not fit a 'concat' model"):
        GazeRewardModel.from_pretrained(tmp_path, predictor=predictor)
    with pytest.raises(InputError, match="no saved gaze reward model"):
        GazeRewardModel.from_pretrained(tmp_path / "missing", predictor=predictor)


@pytest.mark.slow
def test_embedded_smollm2_scores_with_gaze_concat(predictor: GazePredictor) -> None:
    from tacitly.errors import ModelUnavailableError

    try:
        model = GazeRewardModel(
            GazeRewardConfig(mode="concat", standardise=False, load_in_4bit=False),
            predictor=predictor,
        )
    except ModelUnavailableError as error:
        pytest.skip(str(error))
    differences = model.compare(ROWS)
    assert differences.shape == (2,) and np.isfinite(differences).all()
    inputs = model.encode([ROWS[0]["prompt"] + ROWS[0]["chosen"]])
    # SmolLM2's template adds a default system prompt: markup, so it carries no gaze.
    assert str(model.tokenizer.decode(inputs["input_ids"][0])).startswith("<|im_start|>system")
    assert inputs["gaze_features"][0, :10].abs().sum() == 0
