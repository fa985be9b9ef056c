"""Input checks shared by every reward: conversations and preference rows in TRL's format."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from tacitly.errors import InputError

__all__ = [
    "as_messages",
    "check_choice",
    "check_known_keys",
    "checked_messages",
    "checked_row",
    "config_dict",
]

Messages = list[dict[str, str]]


def checked_messages(messages: object, *, row: int, name: str) -> Messages:
    """``messages`` as plain ``{"role", "content"}`` dicts, or an InputError naming row and
    field.

    Examples
    --------
    >>> checked_messages([{"role": "user", "content": "Hi"}], row=1, name="prompt")
    [{'role': 'user', 'content': 'Hi'}]
    """
    if isinstance(messages, str | Mapping) or not isinstance(messages, Sequence):
        raise InputError(
            "expected a list of messages", row=row, field=name, expected="[{role, content}]"
        )
    checked = []
    for index, message in enumerate(messages):
        if (
            not isinstance(message, Mapping)
            or not isinstance(message.get("role"), str)
            or not isinstance(message.get("content"), str)
        ):
            raise InputError(
                "each message needs a string role and content",
                row=row,
                field=f"{name}[{index}]",
                expected='{"role": str, "content": str}',
            )
        checked.append({"role": message["role"], "content": message["content"]})
    return checked


def checked_row(
    row: object, *, row_number: int, assistant_only: bool = False
) -> tuple[Messages, Messages, Messages]:
    """A preference row's prompt, chosen and rejected messages, checked.

    Each side must be present and non-empty and each response's text non-blank; with
    ``assistant_only`` the responses may hold assistant messages only.
    """
    if not isinstance(row, Mapping):
        raise InputError(
            "a row must be a mapping", row=row_number, expected="prompt/chosen/rejected"
        )
    sides = []
    for side in ("prompt", "chosen", "rejected"):
        value = row.get(side)
        if value is None or (isinstance(value, Sequence) and len(value) == 0):
            raise InputError(f"the row has no {side}", row=row_number, field=side)
        messages = checked_messages(value, row=row_number, name=side)
        if side != "prompt":
            _check_response(messages, side=side, row=row_number, assistant_only=assistant_only)
        sides.append(messages)
    return sides[0], sides[1], sides[2]


def _check_response(messages: Messages, *, side: str, row: int, assistant_only: bool) -> None:
    if assistant_only and any(m["role"] != "assistant" for m in messages):
        raise InputError(
            f"the {side} side is not an assistant response",
            row=row,
            field=side,
            expected="assistant messages only",
        )
    if any(not m["content"].strip() for m in messages):
        raise InputError(f"the {side} response is empty", row=row, field=side)


def as_messages(value: Sequence[Mapping[str, str]] | str, role: str) -> Messages:
    """A plain string as one message of ``role``; messages copied as they are."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return [dict(message) for message in value]


def check_choice(value: object, allowed: tuple[str, ...], name: str) -> None:
    """An InputError naming ``name`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise InputError(
            f"unknown {name} {value!r}",
            field=name,
            expected=" or ".join(repr(a) for a in allowed),
        )


def config_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as a JSON-ready dict (tuples become lists)."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in dataclasses.asdict(config).items()
    }


def check_known_keys(
    cls: type, values: Mapping[str, Any], *, source: str | os.PathLike[str] | None
) -> None:
    """An InputError for keys of ``values`` that are not fields of the dataclass ``cls``."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(
            f"unknown config keys {unknown}", source=source, expected=", ".join(sorted(known))
        )
