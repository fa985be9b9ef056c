"""Packing a pair into one sequence: hand-built masks, and equality with two separate passes."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tacitly.rewards.shared_prefix import pack_pairs, shared_prefix_lengths

PAD = 0


def _batch(*sequences: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), PAD)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask


def test_one_pair_is_packed_by_hand() -> None:
    chosen = _batch([5, 6, 7, 8])
    rejected = _batch([5, 6, 9])
    packed = pack_pairs(*chosen, *rejected, pad_id=PAD)
    assert packed.input_ids.tolist() == [[5, 6, 7, 8, 9]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 3, 2]]
    assert packed.chosen_last.tolist() == [3]
    assert packed.rejected_last.tolist() == [4]
    assert (packed.prefix_tokens, packed.separate_tokens) == (2, 7)
    # Rows are queries: the rejected token 9 sees the prefix 5, 6 and itself, not 7 or 8.
    expected = [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0],
        [1, 1, 0, 0, 1],
    ]
    assert packed.attention_mask[0, 0].to(torch.int).tolist() == expected


def test_padding_attends_only_to_itself_and_rows_differ_in_length() -> None:
    chosen = _batch([1, 2, 3], [1, 4])
    rejected = _batch([1, 2, 5], [1, 6, 7])
    packed = pack_pairs(*chosen, *rejected, pad_id=PAD)
    assert packed.input_ids.tolist() == [[1, 2, 3, 5], [1, 4, 6, 7]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 2], [0, 1, 1, 2]]
    assert packed.rejected_last.tolist() == [3, 3]
    short = pack_pairs(*_batch([1, 2, 3], [1, 2]), *_batch([1, 2, 4], [1, 3]), pad_id=PAD)
    assert short.input_ids.tolist() == [[1, 2, 3, 4], [1, 2, 3, PAD]]
    assert short.attention_mask[1, 0, 3].to(torch.int).tolist() == [0, 0, 0, 1]
    assert short.position_ids[1].tolist() == [0, 1, 1, 0]


def test_identical_sides_keep_their_last_token() -> None:
    same = _batch([3, 4, 5])
    assert shared_prefix_lengths(*same, *same).tolist() == [2]
    packed = pack_pairs(*same, *same, pad_id=PAD)
    assert packed.input_ids.tolist() == [[3, 4, 5, 5]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 2]]


def test_a_side_that_extends_the_other_is_split_before_its_last_token() -> None:
    # [7, 8] is a prefix of [7, 8, 9]: at most one token less than the shorter side is shared.
    assert shared_prefix_lengths(*_batch([7, 8, 9]), *_batch([7, 8])).tolist() == [1]


ROWS = [
    {
        "prompt": [{"role": "user", "content": "How do I bake bread at home?"}],
        "chosen": [{"role": "assistant", "content": "Mix flour, water, salt and yeast."}],
        "rejected": [{"role": "assistant", "content": "The quick brown fox."}],
    },
    {
        "prompt": [
            {"role": "user", "content": "Reading is a fascinating activity."},
            {"role": "assistant", "content": "It is."},
            {"role": "user", "content": "Why do people like words?"},
        ],
        "chosen": [{"role": "assistant", "content": "Thank you, that answer was exactly it."}],
        "rejected": [{"role": "assistant", "content": "Words."}],
    },
]


def test_packed_rewards_equal_separate_forwards(make_model: Any) -> None:
    model = make_model("baseline", lora_dropout=0.0).eval()
    batch = model.collate(ROWS)
    assert model._packed(batch["chosen"], batch["rejected"]) is not None
    with torch.no_grad():
        chosen, rejected = model.pair_rewards(batch["chosen"], batch["rejected"])
        assert torch.allclose(chosen, model(**batch["chosen"]), atol=1e-5)
        assert torch.allclose(rejected, model(**batch["rejected"]), atol=1e-5)


def _gradients(model: Any, rewards: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    model.zero_grad()
    (rewards[0] - 2 * rewards[1]).sum().backward()
    return {n: p.grad.clone() for n, p in model.named_trainable_parameters() if p.grad is not None}


def test_packed_gradients_equal_separate_forwards(make_model: Any) -> None:
    model = make_model("baseline", lora_dropout=0.0)
    with torch.no_grad():  # LoRA starts at B = 0; move it so every adapter has a gradient
        for name, parameter in model.named_trainable_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.1)
    batch = model.collate(ROWS)
    packed = _gradients(model, model.pair_rewards(batch["chosen"], batch["rejected"]))
    separate = _gradients(model, (model(**batch["chosen"]), model(**batch["rejected"])))
    assert packed.keys() == separate.keys() and len(packed) > 2
    for name, gradient in packed.items():
        assert torch.allclose(gradient, separate[name], atol=1e-5), name


@pytest.mark.parametrize(
    ("mode", "options"),
    [("concat", {}), ("baseline", {"share_prompt": False}), ("baseline", {"inject_layer": 1})],
)
def test_gaze_modes_and_opt_out_run_each_side_alone(
    make_model: Any, mode: str, options: dict[str, Any]
) -> None:
    model = make_model(mode, **options).eval()
    batch = model.collate(ROWS)
    assert model._packed(batch["chosen"], batch["rejected"]) is None
    with torch.no_grad():
        chosen, _ = model.pair_rewards(batch["chosen"], batch["rejected"])
        assert torch.allclose(chosen, model(**batch["chosen"]), atol=1e-6)


def test_left_padded_inputs_are_not_packed(make_model: Any) -> None:
    model = make_model("baseline").eval()
    batch = model.collate(ROWS)
    flipped = {
        side: {key: value.flip(-1) for key, value in batch[side].items()}
        for side in ("chosen", "rejected")
    }
    assert model._packed(flipped["chosen"], flipped["rejected"]) is None
