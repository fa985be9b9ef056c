"""The critic variant: role swapping, the feedback file, and TRL fine-tuning on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tacitly.errors import InputError
from tacitly.rewards.critic import (
    CRITIC_INSTRUCTION,
    CriticTrainingConfig,
    critic_messages,
    finetune_critic,
    read_feedback_file,
)

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "And 3 + 3?"},
    {"role": "assistant", "content": "7."},
]


def test_roles_are_swapped_after_the_instruction_and_the_system_turn_dropped() -> None:
    messages = critic_messages(CONVERSATION, "That is wrong.")
    assert messages == [
        {"role": "user", "content": CRITIC_INSTRUCTION},
        {"role": "assistant", "content": "What is 2 + 2?"},
        {"role": "user", "content": "4."},
        {"role": "assistant", "content": "And 3 + 3?"},
        {"role": "user", "content": "7."},
        {"role": "assistant", "content": "That is wrong."},
    ]
    assert critic_messages(CONVERSATION)[-1] == {"role": "user", "content": "7."}


@pytest.mark.parametrize(
    "conversation",
    [
        pytest.param([{"role": "user", "content": "Hi"}], id="no-response"),
        pytest.param([{"role": "assistant", "content": "Hi"}], id="no-user"),
        pytest.param(
            [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": " "}], id="empty"
        ),
        pytest.param(
            [
                {"role": "tool", "content": "x"},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Yo"},
            ],
            id="other-role",
        ),
    ],
)
def test_bad_conversations_are_input_errors(conversation: list[dict[str, str]]) -> None:
    with pytest.raises(InputError):
        critic_messages(conversation)


def _write(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def test_feedback_file_becomes_prompt_completion_rows(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "feedback.jsonl",
        [
            {"conversation": CONVERSATION, "feedback": "Wrong, it is 6."},
            {"prompt": "Name a colour.", "response": "Blue.", "feedback": "Thanks!"},
        ],
    )
    rows = read_feedback_file(path)
    assert rows[0]["completion"] == [{"role": "assistant", "content": "Wrong, it is 6."}]
    assert rows[1]["prompt"][1:] == [
        {"role": "assistant", "content": "Name a colour."},
        {"role": "user", "content": "Blue."},
    ]


@pytest.mark.parametrize(
    ("record", "field"),
    [
        pytest.param({"conversation": CONVERSATION}, "feedback", id="no-feedback"),
        pytest.param({"feedback": "ok"}, "conversation", id="no-conversation"),
        pytest.param(
            {"conversation": CONVERSATION[:2], "feedback": "ok"}, "conversation", id="no-answer"
        ),
    ],
)
def test_bad_feedback_lines_name_file_and_line(
    tmp_path: Path, record: dict[str, object], field: str
) -> None:
    path = _write(tmp_path / "f.jsonl", [{"prompt": "a", "response": "b", "feedback": "c"}, record])
    with pytest.raises(InputError) as error:
        read_feedback_file(path)
    assert (error.value.row, error.value.field) == (2, field)
    assert error.value.source == str(path)


def test_not_json_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text("{oops\n", encoding="utf-8")
    with pytest.raises(InputError, match="not JSON"):
        read_feedback_file(path)


def test_finetuning_a_tiny_model_lowers_the_feedback_loss(tiny_lm: Path, tmp_path: Path) -> None:
    pytest.importorskip("trl")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    feedback = "Wrong, it is six."
    path = _write(tmp_path / "f.jsonl", [{"conversation": CONVERSATION, "feedback": feedback}] * 8)

    def feedback_loss(folder: Path) -> float:
        model = AutoModelForCausalLM.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        prompt = tokenizer.apply_chat_template(
            critic_messages(CONVERSATION), tokenize=False, add_generation_prompt=True
        )
        full = tokenizer.apply_chat_template(
            critic_messages(CONVERSATION, feedback), tokenize=False
        )
        n_prompt = len(tokenizer(prompt)["input_ids"])
        ids = torch.tensor([tokenizer(full)["input_ids"]])
        labels = ids.clone()
        labels[0, :n_prompt] = -100
        with torch.no_grad():
            return float(model(input_ids=ids, labels=labels).loss)

    config = CriticTrainingConfig(
        model_name=str(tiny_lm), output_dir=str(tmp_path / "critic"), max_steps=20,
        learning_rate=5e-3, batch_size=4, lora_r=0, max_length=256,
    )  # fmt: skip
    before = feedback_loss(tiny_lm)
    folder = finetune_critic(path, config)
    assert (folder / "critic.json").is_file()
    assert feedback_loss(folder) < before - 0.5
