"""The critic variant of the follow-up reward: a model fine-tuned to play the user.

A plain chat model is trained to *answer*, so the likelihood it gives a user's next turn is
a side effect. A critic is fine-tuned on the opposite job: the conversation is shown with the
roles swapped (the user's turns become the model's own, the assistant's turns arrive as the
other party's messages), after a leading turn that asks it to pose a question and then react
to the answers. What it learns to write next is the user's reaction to the last answer, which
is exactly what :class:`~tacitly.rewards.followup.FollowupReward` scores.

Training data (``FEEDBACK.jsonl``)
----------------------------------
One JSON object per line::

    {"conversation": [{"role": "user", "content": "..."},
                      {"role": "assistant", "content": "..."}, ...],
     "feedback": "the user's next message, e.g. 'That's not what I asked.'"}

``conversation`` holds at least one user turn and ends with an assistant turn; a leading
``system`` message is dropped (it speaks to the assistant, not to the critic); ``feedback``
is non-empty text. The same conversation with ``"prompt"`` and ``"response"`` keys (the reply
as a string or as assistant messages) is also read.

Fine-tuning runs TRL's ``SFTTrainer`` on prompt/completion pairs (the loss covers only the
feedback, not the swapped conversation), with LoRA when ``lora_r > 0``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tacitly.errors import InputError

__all__ = [
    "CRITIC_INSTRUCTION",
    "CriticTrainingConfig",
    "critic_messages",
    "finetune_critic",
    "read_feedback_file",
]

#: The leading turn of every critic conversation: what the critic is asked to do.
CRITIC_INSTRUCTION = (
    "You are the user in this conversation. Ask me your question, read my answers and tell me "
    "honestly what you think of each one before you go on."
)

_SWAP = {"user": "assistant", "assistant": "user"}


def critic_messages(
    conversation: Sequence[Mapping[str, str]], feedback: str | None = None
) -> list[dict[str, str]]:
    """A conversation as the critic sees it: the instruction, then the roles swapped.

    Parameters
    ----------
    conversation:
        Messages in TRL's format ending with the assistant response to be judged; a leading
        system message is dropped.
    feedback:
        The user's next message, appended as the critic's own (assistant) turn (default: None,
        the conversation ends with the swapped response, ready for the critic to reply).

    Examples
    --------
    >>> critic_messages(
    ...     [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}],
    ...     "Thanks!",
    ... )[1:]
    [{'role': 'assistant', 'content': 'Hi?'}, {'role': 'user', 'content': 'Hello.'}, \
{'role': 'assistant', 'content': 'Thanks!'}]
    """
    messages = [dict(m) for m in conversation]
    if messages and messages[0].get("role") == "system":
        messages = messages[1:]
    _check_conversation(messages)
    swapped = [{"role": _SWAP[m["role"]], "content": m["content"]} for m in messages]
    result = [{"role": "user", "content": CRITIC_INSTRUCTION}, *swapped]
    if feedback is not None:
        result.append({"role": "assistant", "content": feedback})
    return result


def _check_conversation(messages: Sequence[Mapping[str, Any]], *, row: int | None = None) -> None:
    roles = [m.get("role") for m in messages]
    if not messages or roles[-1] != "assistant" or "user" not in roles:
        raise InputError(
            f"conversation with roles {roles}",
            row=row,
            field="conversation",
            expected="user and assistant turns ending with an assistant turn",
        )
    for index, message in enumerate(messages, start=1):
        if message.get("role") not in _SWAP:
            raise InputError(
                f"message {index} has role {message.get('role')!r}",
                row=row,
                field="conversation",
                expected="'user' or 'assistant' (a system message only first)",
            )
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise InputError(
                f"message {index} has no text", row=row, field="content", expected="text"
            )


def read_feedback_file(path: str | Path) -> list[dict[str, Any]]:
    """Read ``FEEDBACK.jsonl`` into prompt/completion rows for TRL (see the module docstring).

    Raises
    ------
    InputError
        Naming the file and line of a malformed record.
    """
    source = Path(path)
    if not source.is_file():
        raise InputError("no such file", source=source, expected="a FEEDBACK.jsonl file")
    rows = []
    with source.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                raise InputError(f"not JSON ({error})", source=source, row=number) from None
            rows.append(_feedback_row(record, source=source, row=number))
    if not rows:
        raise InputError("no records", source=source, expected="one JSON object per line")
    return rows


def _feedback_row(record: Any, *, source: Path, row: int) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise InputError("not a JSON object", source=source, row=row)
    conversation = record.get("conversation")
    if conversation is None and "prompt" in record and "response" in record:
        conversation = _as_turns(record["prompt"], "user") + _as_turns(
            record["response"], "assistant"
        )
    feedback = record.get("feedback")
    if not isinstance(conversation, list) or not all(isinstance(m, dict) for m in conversation):
        raise InputError(
            "no conversation",
            source=source,
            row=row,
            field="conversation",
            expected="a list of {role, content} messages (or prompt + response)",
        )
    if not isinstance(feedback, str) or not feedback.strip():
        raise InputError(
            "no feedback text", source=source, row=row, field="feedback", expected="text"
        )
    try:
        messages = critic_messages(conversation)
    except InputError as error:
        raise InputError(
            error.message, source=source, row=row, field=error.field, expected=error.expected
        ) from None
    return {"prompt": messages, "completion": [{"role": "assistant", "content": feedback}]}


def _as_turns(value: Any, role: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return list(value) if isinstance(value, list) else []


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class CriticTrainingConfig:
    """Settings of :func:`finetune_critic`."""

    model_name: str | None = field(
        default=None,
        metadata=_help("Base model: None for the embedded SmolLM2-135M-Instruct, or a folder/id."),
    )
    output_dir: str = field(default="runs/critic", metadata=_help("Where the critic is saved."))
    epochs: float = field(default=1.0, metadata=_help("Passes over the feedback rows."))
    learning_rate: float = field(default=2e-4, metadata=_help("Peak learning rate."))
    batch_size: int = field(default=8, metadata=_help("Rows per device per step."))
    max_length: int = field(default=1024, metadata=_help("Most tokens per row (TRL truncates)."))
    lora_r: int = field(default=16, metadata=_help("LoRA rank; 0 fine-tunes every weight instead."))
    lora_alpha: int = field(default=32, metadata=_help("LoRA alpha."))
    seed: int = field(default=42, metadata=_help("Seed of TRL's trainer."))
    max_steps: int = field(default=-1, metadata=_help("Total steps; > 0 overrides epochs."))

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise InputError(f"is {getattr(self, name)}", field=name, expected=">= 1")
        if self.lora_r < 0:
            raise InputError(f"is {self.lora_r}", field="lora_r", expected=">= 0")
        if self.learning_rate <= 0 or self.epochs <= 0:
            raise InputError("learning_rate and epochs must be positive", field="learning_rate")


def finetune_critic(data: str | Path, config: CriticTrainingConfig | None = None) -> Path:
    """Fine-tune a critic on ``FEEDBACK.jsonl`` with TRL and save it (merged) to a folder.

    The saved folder is a plain causal LM with its tokenizer (LoRA merged into the weights), so
    ``FollowupReward`` loads it like any model.

    Returns
    -------
    Path
        ``config.output_dir``.
    """
    settings = config or CriticTrainingConfig()
    rows = read_feedback_file(data)
    from datasets import Dataset
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    from tacitly.backbones import load_causal_lm

    model, tokenizer = load_causal_lm(settings.model_name)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    output = Path(settings.output_dir)
    arguments = SFTConfig(
        output_dir=str(output / "trainer"),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        max_length=settings.max_length,
        completion_only_loss=True,
        gradient_checkpointing=False,
        save_strategy="no",
        report_to="none",
        logging_steps=10,
        seed=settings.seed,
        use_cpu=not _cuda(),
    )
    trainer = SFTTrainer(
        model=model,
        args=arguments,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=_lora(settings),
    )
    try:
        trainer.train()
    finally:
        # TRL's trainer fixes accelerate's process-wide state (CPU, precision); release it so
        # that later training in the same process can choose its own.
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=True)
    trained: Any = trainer.model
    if hasattr(trained, "merge_and_unload"):
        trained = trained.merge_and_unload()
    trained.save_pretrained(str(output))
    tokenizer.save_pretrained(str(output))
    (output / "critic.json").write_text(
        json.dumps({"instruction": CRITIC_INSTRUCTION, "training": asdict(settings)}, indent=2)
        + "\n",
        encoding="utf-8",
    )
    return output


def _lora(settings: CriticTrainingConfig) -> Any:
    if settings.lora_r == 0:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=0.05, task_type="CAUSAL_LM"
    )


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())
