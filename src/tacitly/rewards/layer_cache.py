"""Split a decoder at layer k: frozen lower layers computed once, upper layers trained.

On a CPU most of a reward model's training time goes into the forward and backward passes of
every decoder layer. When gaze enters at the input of layer ``k`` instead of the embeddings and
LoRA adapts only layers ``k`` and above, the layers below ``k`` see the same text every epoch
and never change, so their output can be computed once per conversation and reused: each later
step runs ``n_layers - k`` layers forward and backward instead of ``n_layers``.

How the split runs
------------------
The decoder's own ``forward`` does both halves, on a view of its layer list:

* lower: ``layers[:k]`` on the token ids, in evaluation mode and without gradients, the output
  of layer ``k - 1`` taken by a forward hook (the final norm that follows is discarded);
* upper: ``layers[k:]`` on ``inputs_embeds`` = the (gaze-augmented) hidden states.

This reuses the model's masks and rotary embeddings unchanged. It requires a decoder that feeds
``inputs_embeds`` to its first layer as they are: architectures that rescale the embeddings
inside ``forward`` (Gemma) are refused.

Memory: the cache holds ``hidden_size`` float32 values per real token of every conversation
seen, e.g. 2.3 KB a token for SmolLM2-135M (576 dimensions), 1.2 GB for 1,000 pairs of
256-token answers. ``max_tokens`` caps it (least recently used conversations go first).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from tacitly.errors import InputError

__all__ = ["LowerLayerCache", "decoder_layers", "run_upper_layers", "split_layer_count"]

# Architectures whose forward multiplies inputs_embeds by a constant before the first layer.
_RESCALING_ARCHITECTURES = ("gemma",)


def _decoder(backbone: Any) -> Any:
    """The bare decoder (e.g. ``LlamaModel``) under peft's wrappers."""
    getter = getattr(backbone, "get_base_model", None)
    return getter() if callable(getter) else backbone


def decoder_layers(backbone: Any) -> nn.ModuleList:
    """The decoder layers of a (peft-wrapped) transformer, in order."""
    layers = getattr(_decoder(backbone), "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise InputError(
            f"{type(_decoder(backbone)).__name__} has no 'layers' list to split",
            field="inject_layer",
            expected="a Llama-style decoder (model.layers), or inject_layer=None",
        )
    return layers


def split_layer_count(backbone: Any, k: int) -> int:
    """Check that the decoder can be split before layer ``k``; return its number of layers."""
    decoder = _decoder(backbone)
    model_type = str(getattr(decoder.config, "model_type", ""))
    if any(name in model_type for name in _RESCALING_ARCHITECTURES):
        raise InputError(
            f"{model_type} rescales its input embeddings, so it cannot start at a middle layer",
            field="inject_layer",
            expected="None for this architecture",
        )
    n_layers = len(decoder_layers(backbone))
    if not 0 < k < n_layers:
        raise InputError(
            f"layer {k} of a {n_layers}-layer decoder",
            field="inject_layer",
            expected=f"an integer from 1 to {n_layers - 1}, or None for the embeddings",
        )
    return n_layers


@contextlib.contextmanager
def _only_layers(backbone: Any, part: slice) -> Iterator[None]:
    """Let the decoder's forward run ``layers[part]`` only, then restore the full list."""
    decoder = _decoder(backbone)
    full = decoder.layers
    decoder.layers = nn.ModuleList(list(full)[part])
    try:
        yield
    finally:
        decoder.layers = full


def run_upper_layers(
    backbone: Any,
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    *,
    k: int,
) -> torch.Tensor:
    """Layers ``k`` and above (and the final norm) on hidden states ``[B, L, H]``."""
    with _only_layers(backbone, slice(k, None)):
        output = backbone(
            inputs_embeds=hidden,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
        )
    states: torch.Tensor = output.last_hidden_state
    return states


class LowerLayerCache:
    """Outputs of layers ``0 … k-1`` per conversation, computed once and kept in memory.

    Parameters
    ----------
    k:
        The layer whose input is cached (the output of layer ``k - 1``).
    max_tokens:
        Most tokens kept (default: None, no limit); the least recently used conversations are
        dropped first.

    Examples
    --------
    >>> cache = LowerLayerCache(k=2)
    >>> len(cache), cache.hits, cache.misses
    (0, 0, 0)
    """

    def __init__(self, *, k: int, max_tokens: int | None = None) -> None:
        self.k = k
        self.max_tokens = max_tokens
        self._states: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self._tokens = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._states)

    def clear(self) -> None:
        """Forget every cached conversation (after the lower layers changed)."""
        self._states.clear()
        self._tokens = 0

    def states(
        self, backbone: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """The input of layer ``k`` for a batch, ``[B, L, H]`` float32, zeros at padding.

        Padding may be on either side; each row's real tokens (``attention_mask == 1``) are
        looked up by their ids, and the rows not cached yet run through the lower layers in
        one batch.
        """
        keep = attention_mask.bool()
        keys = [
            row[mask].cpu().numpy().tobytes() for row, mask in zip(input_ids, keep, strict=True)
        ]
        first_seen = {key: i for i, key in reversed(list(enumerate(keys)))}
        missing = [i for key, i in first_seen.items() if key not in self._states]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            self._compute(backbone, [input_ids[i][keep[i]] for i in missing], keys, missing)
        rows = [self._states[key] for key in keys]
        for key in keys:
            self._states.move_to_end(key)
        hidden = torch.zeros(
            (*input_ids.shape, rows[0].shape[-1]), dtype=torch.float32, device=input_ids.device
        )
        hidden[keep] = torch.cat(rows).to(input_ids.device)
        self._evict()
        return hidden

    def _compute(
        self, backbone: Any, sequences: list[torch.Tensor], keys: list[bytes], rows: list[int]
    ) -> None:
        length = max(len(s) for s in sequences)
        ids = torch.zeros((len(sequences), length), dtype=torch.long, device=sequences[0].device)
        mask = torch.zeros_like(ids)
        for i, sequence in enumerate(sequences):
            ids[i, : len(sequence)] = sequence
            mask[i, : len(sequence)] = 1
        captured: list[torch.Tensor] = []

        def keep_output(_module: nn.Module, _inputs: Any, output: Any) -> None:
            captured.append(output[0] if isinstance(output, tuple) else output)

        lower = list(decoder_layers(backbone))[: self.k]
        modes = [layer.training for layer in lower]
        hook = lower[-1].register_forward_hook(keep_output)
        try:
            for layer in lower:
                layer.eval()
            with torch.no_grad(), _only_layers(backbone, slice(0, self.k)):
                backbone(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                    use_cache=False,
                )
        finally:
            hook.remove()
            for layer, mode in zip(lower, modes, strict=True):
                layer.train(mode)
        output = captured[-1].float()
        for i, (row, sequence) in enumerate(zip(rows, sequences, strict=True)):
            self._states[keys[row]] = output[i, : len(sequence)].detach().cpu().clone()
            self._tokens += len(sequence)

    def _evict(self) -> None:
        while self.max_tokens is not None and self._tokens > self.max_tokens and self._states:
            _, states = self._states.popitem(last=False)
            self._tokens -= states.shape[0]
