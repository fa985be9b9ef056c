"""Tests for transcript parsing and shared-prompt splitting (tacitly.data.turns)."""

from __future__ import annotations

import pytest

from tacitly.data import Message
from tacitly.data.turns import (
    merge_consecutive,
    parse_helpsteer_prompt,
    parse_hh_transcript,
    split_shared_prefix,
)


def _m(role: str, content: str) -> Message:
    return Message(role=role, content=content)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "\n\nHuman: Hi\n\nAssistant: Hello",
            [_m("user", "Hi"), _m("assistant", "Hello")],
            id="one-exchange",
        ),
        pytest.param(
            "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d",
            [_m("user", "a"), _m("assistant", "b"), _m("user", "c"), _m("assistant", "d")],
            id="two-exchanges",
        ),
        pytest.param(
            "\n\nHuman: a\n\nAssistant: b.  Human: c?\n\nAssistant: d",
            [_m("user", "a"), _m("assistant", "b.  Human: c?\n\nd")],
            id="inline-marker-stays-text-and-same-roles-merge",
        ),
        pytest.param(
            "\n\nHuman: a\n\nAssistant: ",
            [_m("user", "a"), _m("assistant", "")],
            id="empty-final-turn",
        ),
        pytest.param(
            "\n\nHuman: two\n\nparagraphs\n\nAssistant: ok",
            [_m("user", "two\n\nparagraphs"), _m("assistant", "ok")],
            id="paragraphs-inside-a-turn",
        ),
    ],
)
def test_parse_hh_transcript(text: str, expected: list[Message]) -> None:
    assert parse_hh_transcript(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Hi", id="no-marker"),
        pytest.param("intro\n\nHuman: Hi\n\nAssistant: x", id="leading-text"),
        pytest.param("\n\nAssistant: x\n\nHuman: y", id="starts-with-assistant"),
    ],
)
def test_parse_hh_transcript_rejects(text: str) -> None:
    assert parse_hh_transcript(text) is None


def test_parse_helpsteer_prompt_single_and_multi_turn() -> None:
    assert parse_helpsteer_prompt("What is 2+2?") == [_m("user", "What is 2+2?")]
    text = "Hi\n<extra_id_1>Assistant\nHello!\n<extra_id_1>User\nTell me a joke"
    assert parse_helpsteer_prompt(text) == [
        _m("user", "Hi"),
        _m("assistant", "Hello!"),
        _m("user", "Tell me a joke"),
    ]


def test_merge_consecutive_leaves_alternating_turns() -> None:
    turns = [_m("user", "a"), _m("assistant", "b")]
    assert merge_consecutive(turns) == turns


def test_split_shared_prefix() -> None:
    user, a, b = _m("user", "q"), _m("assistant", "a"), _m("assistant", "b")
    assert split_shared_prefix([user, a], [user, b]) == ([user], [a], [b])
    assert split_shared_prefix([user, a], [user, a]) == ([user, a], [], [])
