"""Tiny random Llama models for tests, built locally so that nothing is ever downloaded.

Importable from every test folder because pyproject.toml sets ``pythonpath = ["tests"]``.
transformers and tokenizers are imported inside the functions, so that a test module can still
``pytest.importorskip`` them before this module needs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import LlamaConfig, PreTrainedTokenizerFast

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_llama_config(
    *,
    vocab_size: int,
    pad_token_id: int | None,
    bos_token_id: int | None,
    eos_token_id: int | None,
    max_position_embeddings: int = 512,
) -> LlamaConfig:
    """A 2-layer Llama configuration with hidden size 32 (4 query heads, 2 key/value heads)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
    )


def byte_level_chatml_tokenizer(
    texts: Sequence[str], *, vocab_size: int
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``texts``, with ChatML special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHATML
    return tokenizer


def save_tiny_chat_lm(
    folder: Path, *, texts: Sequence[str], vocab_size: int, seed: int = 0
) -> Path:
    """Save a tiny random Llama and its ChatML BPE tokenizer (trained on ``texts``) to ``folder``.

    Returns ``folder``, ready for ``from_pretrained``.
    """
    from transformers import LlamaForCausalLM

    tokenizer = byte_level_chatml_tokenizer(texts, vocab_size=vocab_size)
    config = tiny_llama_config(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
