"""Gaze entering at decoder layer k: equal rewards to the unsplit model, caching, training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("peft")

from test_gaze import ROWS

from tacitly.errors import InputError
from tacitly.rewards.gaze import GazeRewardConfig, GazeRewardModel
from tacitly.rewards.layer_cache import LowerLayerCache


def _copy_new_modules(source: GazeRewardModel, target: GazeRewardModel) -> None:
    """Give ``target`` the head, projector and scaling of ``source`` (LoRA starts as a no-op)."""
    own = {k: v for k, v in source.state_dict().items() if not k.startswith("backbone.")}
    target.load_state_dict(own, strict=False)


@pytest.mark.parametrize("mode", [pytest.param(m, id=m) for m in ("baseline", "add")])
def test_split_model_gives_the_rewards_of_the_whole_model(make_model: Any, mode: str) -> None:
    # At initialisation LoRA's B matrices are zero, so both models compute the same function;
    # GazeAdd at layer 1 adds the gaze later, so only baseline can match exactly there.
    whole = make_model(mode).eval()
    split = make_model(mode, inject_layer=1).eval()
    _copy_new_modules(whole, split)
    if mode == "baseline":
        np.testing.assert_allclose(split.compare(ROWS), whole.compare(ROWS), atol=1e-5)
        conversations = [r["prompt"] + r["chosen"] for r in ROWS]
        with torch.no_grad():
            expected = whole(**whole.encode(conversations))
            got = split(**split.encode(conversations))
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    else:
        assert not np.allclose(split.compare(ROWS), whole.compare(ROWS))


def test_lower_layers_run_once_per_conversation(make_model: Any) -> None:
    model = make_model("add", inject_layer=1).eval()
    assert model.lower_cache is not None
    first = model.compare(ROWS)
    assert (model.lower_cache.misses, model.lower_cache.hits) == (4, 0)
    np.testing.assert_array_equal(model.compare(ROWS), first)
    assert (model.lower_cache.misses, model.lower_cache.hits) == (4, 4)
    assert len(model.lower_cache) == 4


def test_left_and_right_padding_share_the_cache(make_model: Any) -> None:
    model = make_model("concat", inject_layer=1).eval()
    short = ROWS[1]["prompt"] + ROWS[1]["chosen"]
    long = ROWS[0]["prompt"] + ROWS[0]["chosen"]
    with torch.no_grad():
        alone = model(**model.encode([short]))[0]
        right = model.encode([short, long])
        shift = int((right["attention_mask"][0] == 0).sum())
        left = {key: value.roll(shift, dims=1) for key, value in right.items()}
        left = {key: torch.cat([left[key][:1], right[key][1:]]) for key in right}
        from_right, from_left = model(**right)[0], model(**left)[0]
    torch.testing.assert_close(from_right, alone, rtol=0, atol=1e-5)
    torch.testing.assert_close(from_left, alone, rtol=0, atol=1e-5)


def test_only_upper_layers_get_adapters_and_train(make_model: Any) -> None:
    model = make_model("concat", inject_layer=1)
    lora = [n for n, _ in model.named_trainable_parameters() if "lora_" in n]
    assert lora and all(".layers.1." in n for n in lora)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimiser = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    batch = model.collate(ROWS)
    loss = -torch.nn.functional.logsigmoid(
        model(**batch["chosen"]) - model(**batch["rejected"])
    ).mean()
    loss.backward()
    optimiser.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert {"head.weight", "eye_embeddings"} <= changed
    assert any("lora_B" in n for n in changed)
    assert not any(".layers.0." in n for n in changed)


def test_split_model_saves_and_loads(
    make_model: Any,
    predictor: Any,
    tmp_path: Path,
) -> None:
    model = make_model("add", inject_layer=1).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(0.05)
    expected = model.compare(ROWS)
    model.save_pretrained(tmp_path)
    loaded = GazeRewardModel.from_pretrained(tmp_path, predictor=predictor)
    assert loaded.config.inject_layer == 1
    np.testing.assert_allclose(loaded.compare(ROWS), expected, atol=1e-6)


@pytest.mark.parametrize("layer", [pytest.param(2, id="past-the-end"), pytest.param(-1, id="neg")])
def test_a_layer_outside_the_decoder_is_an_input_error(make_model: Any, layer: int) -> None:
    with pytest.raises(InputError) as error:
        make_model("add", inject_layer=layer)
    assert error.value.field == "inject_layer"


def test_layer_zero_means_the_embeddings() -> None:
    assert GazeRewardConfig(inject_layer=0).inject_layer is None


def test_cache_evicts_least_recently_used_conversations(make_model: Any) -> None:
    model = make_model("baseline", inject_layer=1).eval()
    inputs = model.encode([r["prompt"] + r["chosen"] for r in ROWS])
    lengths = inputs["attention_mask"].sum(dim=1).tolist()
    cache = LowerLayerCache(k=1, max_tokens=max(lengths))
    first = cache.states(model.backbone, inputs["input_ids"], inputs["attention_mask"])
    assert len(cache) == 1  # both computed, the older one dropped to fit
    again = cache.states(model.backbone, inputs["input_ids"], inputs["attention_mask"])
    torch.testing.assert_close(again, first)
    assert first[inputs["attention_mask"] == 0].abs().sum() == 0
