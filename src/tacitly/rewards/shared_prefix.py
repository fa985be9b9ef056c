"""One sequence per preference pair: the shared prompt once, then both responses.

The chosen and the rejected conversation of a pair start with the same tokens (the chat
template and the whole prompt), often most of their length. Running them as two sequences
computes that prefix twice. Here each pair becomes one row ``[prefix, chosen rest, rejected
rest]`` whose attention mask keeps the two rests apart: the rejected rest sees the prefix and
itself, never the chosen rest, and its positions restart where the prefix ends. Every token
therefore sees exactly what it would see in its own sequence, so the rewards equal those of two
separate forwards (up to floating-point summation order) while the prefix runs once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: Segment ids in a packed row.
PREFIX, CHOSEN, REJECTED, PADDING = 0, 1, 2, 3


@dataclass(frozen=True)
class PackedPairs:
    """Packed pairs ready for a decoder: one row per pair.

    ``attention_mask`` is 4-D boolean ``[pairs, 1, length, length]`` (True: may attend), which
    Hugging Face decoders take as it is; ``chosen_last`` and ``rejected_last`` index the token
    whose hidden state gives each side's reward.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    chosen_last: torch.Tensor
    rejected_last: torch.Tensor
    prefix_tokens: int
    separate_tokens: int


def shared_prefix_lengths(
    chosen_ids: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_ids: torch.Tensor,
    rejected_mask: torch.Tensor,
) -> torch.Tensor:
    """Tokens each pair's two right-padded sequences share at the start, ``[pairs]``.

    At most one less than the shorter side, so both sides keep at least their last token (the
    one the reward is read at).
    """
    chosen_n = chosen_mask.sum(dim=-1)
    rejected_n = rejected_mask.sum(dim=-1)
    width = min(chosen_ids.shape[1], rejected_ids.shape[1])
    same = chosen_ids[:, :width] == rejected_ids[:, :width]
    common = same.to(torch.long).cumprod(dim=-1).sum(dim=-1)
    return torch.minimum(common, torch.minimum(chosen_n, rejected_n) - 1).clamp(min=0)


def pack_pairs(
    chosen_ids: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_ids: torch.Tensor,
    rejected_mask: torch.Tensor,
    *,
    pad_id: int,
) -> PackedPairs:
    """Pack right-padded chosen and rejected token batches into one row per pair.

    Parameters
    ----------
    chosen_ids, chosen_mask, rejected_ids, rejected_mask:
        ``[pairs, length]`` token ids and 0/1 masks, right-padded (each side its own length).
    pad_id:
        Token id written into the padding.

    Returns
    -------
    PackedPairs
        Rows ``[prefix, chosen rest, rejected rest, padding]``. Padding tokens attend only to
        themselves, so no attention row is empty.
    """
    prefix = shared_prefix_lengths(chosen_ids, chosen_mask, rejected_ids, rejected_mask)
    chosen_n = chosen_mask.sum(dim=-1)
    rejected_n = rejected_mask.sum(dim=-1)
    packed_n = chosen_n + rejected_n - prefix
    pairs, length = chosen_ids.shape[0], int(packed_n.max())
    j = torch.arange(length).unsqueeze(0)
    p, c, n = prefix.unsqueeze(1), chosen_n.unsqueeze(1), packed_n.unsqueeze(1)
    segment = torch.full((pairs, length), PADDING, dtype=torch.long)
    segment = torch.where(j < n, REJECTED, segment)
    segment = torch.where(j < c, CHOSEN, segment)
    segment = torch.where(j < p, PREFIX, segment)
    # Rejected-rest token j sits at position j - (chosen_n - prefix) of its own sequence.
    rejected_source = (j - (c - p)).clamp(0, rejected_ids.shape[1] - 1)
    chosen_source = j.clamp(max=chosen_ids.shape[1] - 1).expand(pairs, -1)
    input_ids = torch.where(
        segment == REJECTED,
        rejected_ids.gather(1, rejected_source),
        chosen_ids.gather(1, chosen_source),
    )
    input_ids = torch.where(segment == PADDING, torch.full_like(input_ids, pad_id), input_ids)
    positions = torch.where(segment == REJECTED, j - (c - p), j)
    positions = torch.where(segment == PADDING, torch.zeros_like(positions), positions)
    query, key = segment.unsqueeze(2), segment.unsqueeze(1)
    causal = torch.ones(length, length, dtype=torch.bool).tril().unsqueeze(0)
    visible = (key == PREFIX) | (key == query)
    mask = causal & visible & (query != PADDING)
    mask = mask | torch.eye(length, dtype=torch.bool).unsqueeze(0)
    return PackedPairs(
        input_ids=input_ids,
        attention_mask=mask.unsqueeze(1),
        position_ids=positions,
        chosen_last=chosen_n - 1,
        rejected_last=packed_n - 1,
        prefix_tokens=int(prefix.sum()),
        separate_tokens=int((chosen_n + rejected_n).sum()),
    )
