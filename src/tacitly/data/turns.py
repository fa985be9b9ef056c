"""Turn conversations stored as text into TRL message lists, and split off a shared prompt.

Transcript formats handled here:

- Anthropic HH-RLHF: ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``. Only a marker at the start of
  a paragraph (after a blank line) starts a turn; ``Human:`` inside a turn (models in the
  data sometimes role-play the user) stays text. Consecutive turns of one role are merged,
  joined by a blank line, because chat templates expect alternating roles.
- NVIDIA HelpSteer2 multi-turn prompts: the first user turn, then
  ``"\\n<extra_id_1>Assistant\\n..."`` and ``"\\n<extra_id_1>User\\n..."`` turns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tacitly.data.schema import Message

__all__ = [
    "merge_consecutive",
    "parse_helpsteer_prompt",
    "parse_hh_transcript",
    "split_shared_prefix",
]

_HH_MARKER = re.compile(r"\n\n(Human|Assistant):[ \t]?")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}
_HELPSTEER_MARKER = re.compile(r"\n?<extra_id_1>(User|Assistant)\n")
_HELPSTEER_ROLES = {"User": "user", "Assistant": "assistant"}


def parse_hh_transcript(text: str) -> list[Message] | None:
    """Split an HH-RLHF transcript into turns; None when it does not start with a Human turn.

    Turn texts are stripped of surrounding whitespace (an empty final turn stays, as "").

    Examples
    --------
    >>> parse_hh_transcript("\\n\\nHuman: Hi\\n\\nAssistant: Hello.  Human: ok?")
    [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello.  Human: ok?'}]
    >>> parse_hh_transcript("Hi there") is None
    True
    """
    pieces = _HH_MARKER.split(text)
    if pieces[0].strip() or len(pieces) < 3 or pieces[1] != "Human":
        return None
    turns = [
        Message(role=_HH_ROLES[name], content=body.strip())
        for name, body in zip(pieces[1::2], pieces[2::2], strict=True)
    ]
    return merge_consecutive(turns)


def parse_helpsteer_prompt(text: str) -> list[Message]:
    """Split a HelpSteer2 prompt (possibly multi-turn) into turns, first turn the user's.

    Examples
    --------
    >>> parse_helpsteer_prompt("Hi\\n<extra_id_1>Assistant\\nHello\\n<extra_id_1>User\\nBye?")
    [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello'}, \
{'role': 'user', 'content': 'Bye?'}]
    """
    pieces = _HELPSTEER_MARKER.split(text)
    turns = [Message(role="user", content=pieces[0].strip())]
    turns += [
        Message(role=_HELPSTEER_ROLES[name], content=body.strip())
        for name, body in zip(pieces[1::2], pieces[2::2], strict=True)
    ]
    return merge_consecutive(turns)


def merge_consecutive(turns: Sequence[Message]) -> list[Message]:
    """Join consecutive turns of the same role into one, separated by a blank line.

    Examples
    --------
    >>> merge_consecutive([{"role": "assistant", "content": "A"},
    ...                    {"role": "assistant", "content": "B"}])
    [{'role': 'assistant', 'content': 'A\\n\\nB'}]
    """
    merged: list[Message] = []
    for turn in turns:
        if merged and merged[-1]["role"] == turn["role"]:
            previous = merged[-1]["content"]
            joined = f"{previous}\n\n{turn['content']}" if previous else turn["content"]
            merged[-1] = Message(role=turn["role"], content=joined)
        else:
            merged.append(Message(role=turn["role"], content=turn["content"]))
    return merged


def split_shared_prefix(
    chosen: Sequence[Message], rejected: Sequence[Message]
) -> tuple[list[Message], list[Message], list[Message]]:
    """Split two whole conversations into (shared prompt, chosen tail, rejected tail).

    Examples
    --------
    >>> user = {"role": "user", "content": "Q"}
    >>> prompt, good, bad = split_shared_prefix(
    ...     [user, {"role": "assistant", "content": "A"}],
    ...     [user, {"role": "assistant", "content": "B"}])
    >>> [m["content"] for m in prompt], good[0]["content"], bad[0]["content"]
    (['Q'], 'A', 'B')
    """
    shared = 0
    for first, second in zip(chosen, rejected, strict=False):
        if first != second:
            break
        shared += 1
    return list(chosen[:shared]), list(chosen[shared:]), list(rejected[shared:])
