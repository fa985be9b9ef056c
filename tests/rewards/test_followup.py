"""Tests of the follow-up likelihood reward (tacitly.rewards.followup)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

pytest.importorskip("transformers")

from tacitly.errors import InputError
from tacitly.rewards.followup import (
    FollowupReward,
    FollowupRewardConfig,
    load_followups,
    user_layout,
)

SMALL_SET = {
    "aspects": {
        "relevance": {
            "positive": ["That answers my question.", "Great, thanks!"],
            "negative": ["That is off topic.", "No, that's wrong."],
        },
        "tone": {"positive": ["I love it!"], "negative": ["How rude."]},
    }
}

BREAD = [
    {"role": "user", "content": "How do I bake bread at home?"},
    {"role": "assistant", "content": "Mix flour, water, salt and yeast, then bake it."},
]
LONG_CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello! Reading is fun."},
    {"role": "user", "content": "Tell me about the quick brown fox."},
    {"role": "assistant", "content": "It jumps over the lazy dog near the river."},
]
SHORT = [
    {"role": "user", "content": "Thanks?"},
    {"role": "assistant", "content": "Yes."},
]
ROWS: list[dict[str, Any]] = [
    {
        "prompt": [{"role": "user", "content": "How do I bake bread?"}],
        "chosen": [{"role": "assistant", "content": "Mix flour, water, salt and yeast."}],
        "rejected": [{"role": "assistant", "content": "The fox."}],
    },
    {
        "prompt": [{"role": "user", "content": "Is reading fun?"}],
        "chosen": [{"role": "assistant", "content": "Yes."}],
        "rejected": [{"role": "assistant", "content": "Reading is a fascinating activity."}],
    },
]


@pytest.fixture(scope="module")
def lm(tiny_lm: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_lm), AutoTokenizer.from_pretrained(tiny_lm)


@pytest.fixture
def make_reward(lm: tuple[Any, Any]) -> Any:
    def make(followups: Any = SMALL_SET, **options: Any) -> FollowupReward:
        config = FollowupRewardConfig(device="cpu", **options)
        return FollowupReward(config, followups=followups, model=lm[0], tokenizer=lm[1])

    return make


# ---------------------------------------------------------------------------- follow-up sets


def test_shipped_followups_cover_six_aspects_with_ten_each() -> None:
    followups = load_followups()
    assert list(followups.aspects) == [
        "understanding",
        "relevance",
        "correctness",
        "engagingness",
        "informativeness",
        "instruction_following",
    ]
    for aspect in followups.aspects.values():
        assert len(aspect.positive) >= 10 and len(aspect.negative) >= 10
    assert len(set(followups.texts)) == len(followups.texts) == 120


def test_followup_set_columns_and_polarity() -> None:
    followups = load_followups(SMALL_SET)
    assert followups.texts[:2] == ("That answers my question.", "Great, thanks!")
    assert followups.polarity_of("relevance") == ([0, 1], [2, 3])
    assert followups.polarity_of("tone") == ([4], [5])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            {"aspects": {"tone": {"positive": ["Nice."], "negative": []}}},
            'field "aspects.tone.negative": no negative follow-ups',
            id="no-negatives",
        ),
        pytest.param(
            {"aspects": {"tone": {"negative": ["Bad."]}}},
            'field "aspects.tone.positive": no positive follow-ups',
            id="no-positives",
        ),
        pytest.param(
            {"aspects": {"tone": {"positive": ["Nice.", "  "], "negative": ["Bad."]}}},
            "follow-up 2 is empty",
            id="empty-text",
        ),
        pytest.param(
            {"aspects": {"tone": {"positive": ["a"], "negative": ["b"], "neutral": ["c"]}}},
            "field \"aspects.tone\": unknown keys ['neutral']",
            id="unknown-aspect-key",
        ),
        pytest.param({"aspect": {}}, "unknown keys ['aspect']", id="unknown-top-key"),
        pytest.param({"aspects": {}}, "no aspects", id="no-aspects"),
    ],
)
def test_bad_followup_files_name_file_and_aspect(
    tmp_path: Path, content: dict[str, Any], message: str
) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(content))
    with pytest.raises(InputError, match=r"mine\.json") as caught:
        load_followups(path)
    assert message in str(caught.value)


def test_missing_and_broken_followup_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="follow-up file not found"):
        load_followups(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        load_followups(tmp_path / "bad.json")


# ---------------------------------------------------------------------------- config


def test_config_round_trips_through_json(tmp_path: Path) -> None:
    config = FollowupRewardConfig(
        aspects="relevance, tone",
        weights={"relevance": 2, "tone": 1},
        reduction="sum",
        calibration="pmi",
        length_slope=0.5,
        max_length=128,
    )
    assert config.aspects == ("relevance", "tone")
    loaded = FollowupRewardConfig.load(config.save(tmp_path / "flr.json"))
    assert loaded == config


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"reduction": "max"}, "unknown reduction", id="reduction"),
        pytest.param({"calibration": "z"}, "unknown calibration", id="calibration"),
        pytest.param({"layout": "bot"}, "unknown layout", id="layout"),
        pytest.param({"weights": {"a": -1}}, "finite and >= 0", id="negative-weight"),
        pytest.param({"weights": {"a": 0}}, "all weights are 0", id="zero-weights"),
        pytest.param({"batch_size": 0}, "positive integer", id="batch-size"),
    ],
)
def test_bad_config_values(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        FollowupRewardConfig(**options)


def test_unknown_config_keys_and_aspects(tmp_path: Path, make_reward: Any) -> None:
    with pytest.raises(InputError, match=r"unknown config keys \['colour'\]"):
        FollowupRewardConfig.from_dict({"colour": "red"})
    with pytest.raises(InputError, match="weights for unknown aspects"):
        make_reward(weights={"humour": 1.0})
    with pytest.raises(InputError, match="unknown aspects"):
        make_reward(aspects=("humour",))


# ---------------------------------------------------------------------------- the cache


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="mean"),
        pytest.param({"reduction": "sum", "include_end_of_turn": True}, id="sum-with-eot"),
        pytest.param({"batch_size": 2, "max_batch_tokens": 64}, id="small-batches"),
        pytest.param({"layout": "critic"}, id="critic-layout"),
    ],
)
def test_cached_scores_equal_one_pass_per_followup(make_reward: Any, options: Any) -> None:
    reward = make_reward(**options)
    conversations = [BREAD, LONG_CHAT, SHORT]
    cached = reward.followup_logprobs(conversations)
    naive = reward.naive_followup_logprobs(conversations)
    assert cached.shape == (3, 6)
    assert np.isfinite(cached).all()
    np.testing.assert_allclose(cached, naive, atol=1e-4, rtol=0)


def test_packing_edge_cases_equal_one_pass_per_followup(
    make_reward: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Packs of at most 3 tokens: longer follow-ups get rows of their own; "!" is one token,
    # scored from the context pass alone.
    monkeypatch.setattr("tacitly.rewards.followup._PACK_TOKENS", 3)
    followups = {"aspects": {"a": {"positive": ["!", "Great, thanks!"], "negative": ["No."]}}}
    reward = make_reward(followups=followups, batch_size=2, max_batch_tokens=40)
    assert len(reward.tokenizer("!", add_special_tokens=False)["input_ids"]) == 1
    conversations = [BREAD, LONG_CHAT, SHORT]
    np.testing.assert_allclose(
        reward.followup_logprobs(conversations),
        reward.naive_followup_logprobs(conversations),
        atol=1e-4,
        rtol=0,
    )


def test_eager_attention_takes_the_same_block_mask(tiny_lm: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_lm, attn_implementation="eager")
    reward = FollowupReward(
        FollowupRewardConfig(device="cpu"),
        followups=SMALL_SET,
        model=model,
        tokenizer=AutoTokenizer.from_pretrained(tiny_lm),
    )
    conversations = [BREAD, LONG_CHAT]
    np.testing.assert_allclose(
        reward.followup_logprobs(conversations),
        reward.naive_followup_logprobs(conversations),
        atol=1e-4,
        rtol=0,
    )


def test_all_shipped_followups_in_one_batch(make_reward: Any) -> None:
    reward = make_reward(followups=None, aspects=("correctness", "engagingness"))
    cached = reward.followup_logprobs([BREAD, SHORT])
    naive = reward.naive_followup_logprobs([BREAD, SHORT])
    assert cached.shape == (2, 40)
    np.testing.assert_allclose(cached, naive, atol=1e-4, rtol=0)


def test_scored_tokens_are_the_followup_text(make_reward: Any) -> None:
    reward = make_reward(include_end_of_turn=True)
    encoded = reward._renderer.encode(_item(BREAD), reward.followups.texts)
    for ids, (start, end), text in zip(
        encoded.rows, encoded.scored, reward.followups.texts, strict=True
    ):
        assert reward.tokenizer.decode(ids[start : end - 1]) == text
        assert reward.tokenizer.decode(ids[end - 1 : end]) == "<|im_end|>"
        assert reward.tokenizer.decode(ids[: encoded.shared]).endswith("<|im_start|>user\n")


def _item(conversation: list[dict[str, str]]) -> Any:
    from tacitly.rewards.followup import _checked_item

    return _checked_item(conversation, row=1)


# ---------------------------------------------------------------------------- rewards


def test_aspect_rewards_are_positive_minus_negative_means(make_reward: Any) -> None:
    reward = make_reward(weights={"relevance": 3.0, "tone": 1.0})
    logprobs = reward.followup_logprobs([BREAD])[0]
    table = reward.score_aspects(["How do I bake bread at home?"], [BREAD[1]["content"]])
    assert table.columns == ["reward", "relevance", "tone"]
    relevance = logprobs[:2].mean() - logprobs[2:4].mean()
    tone = logprobs[4] - logprobs[5]
    assert table["relevance"][0] == pytest.approx(relevance, abs=1e-6)
    assert table["tone"][0] == pytest.approx(tone, abs=1e-6)
    assert table["reward"][0] == pytest.approx(0.75 * relevance + 0.25 * tone, abs=1e-6)


def test_compare_is_chosen_minus_rejected(make_reward: Any) -> None:
    reward = make_reward(length_slope=0.3)
    differences = reward.compare(ROWS)
    chosen = reward.score([r["prompt"] for r in ROWS], [r["chosen"] for r in ROWS])
    rejected = reward.score([r["prompt"] for r in ROWS], [r["rejected"] for r in ROWS])
    np.testing.assert_allclose(differences, chosen - rejected, atol=1e-6)


def test_pmi_subtracts_the_neutral_reply_and_cancels_in_pairs(make_reward: Any) -> None:
    plain, pmi = make_reward(), make_reward(calibration="pmi", neutral_response="OK.")
    prompt = [BREAD[0]]
    scores = pmi.score_aspects([prompt], [BREAD[1]["content"]])
    after = plain.followup_logprobs([BREAD])[0]
    neutral = plain.followup_logprobs([[*prompt, {"role": "assistant", "content": "OK."}]])[0]
    calibrated = after - neutral
    expected = calibrated[:2].mean() - calibrated[2:4].mean()
    assert scores["relevance"][0] == pytest.approx(expected, abs=1e-6)
    np.testing.assert_allclose(pmi.compare(ROWS), plain.compare(ROWS), atol=1e-9)
    # Scored directly, the two sides of a pair differ by the same amount as without PMI.
    sides = [
        pmi.score([r["prompt"]] * 1, [r[s]])[0] for r in ROWS[:1] for s in ("chosen", "rejected")
    ]
    assert sides[0] - sides[1] == pytest.approx(plain.compare(ROWS[:1])[0], abs=1e-6)


def test_fitted_length_slope_leaves_no_length_trend(make_reward: Any) -> None:
    reward = make_reward()
    rows = [*ROWS, {**ROWS[0], "rejected": [{"role": "assistant", "content": "Yes, bake it."}]}]
    slope = reward.fit_length_slope(rows)
    assert reward.config.length_slope == slope
    lengths = np.array(
        [
            np.log1p(len(reward.tokenizer(r["chosen"][0]["content"])["input_ids"]))
            - np.log1p(len(reward.tokenizer(r["rejected"][0]["content"])["input_ids"]))
            for r in rows
        ]
    )
    assert float((reward.compare(rows) * lengths).sum()) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize(
    ("differences", "expected"),
    [
        pytest.param(
            {"relevance": [1.0, 1.0, 1.0, -1.0], "tone": [1.0, -1.0, 0.0, 0.0]},
            {"relevance": 1.0, "tone": 0.0},
            id="only-relevance-beats-chance",
        ),
        pytest.param(
            {"relevance": [1.0, 1.0, 1.0, 1.0], "tone": [1.0, 1.0, 1.0, -1.0]},
            {"relevance": 2 / 3, "tone": 1 / 3},
            id="accuracy-above-one-half",
        ),
    ],
)
def test_aspect_weights_follow_accuracy_above_chance(
    make_reward: Any,
    monkeypatch: pytest.MonkeyPatch,
    differences: dict[str, list[float]],
    expected: dict[str, float],
) -> None:
    reward = make_reward()
    monkeypatch.setattr(reward, "compare_aspects", lambda rows: pl.DataFrame(differences))
    weights = reward.fit_aspect_weights(ROWS)
    assert weights == pytest.approx(expected)
    assert reward.aspect_weights == pytest.approx(expected)


def test_aspect_weights_stay_equal_when_nothing_beats_chance(
    make_reward: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    reward = make_reward()
    table = pl.DataFrame({"relevance": [0.0, -1.0], "tone": [1.0, -1.0]})
    monkeypatch.setattr(reward, "compare_aspects", lambda rows: table)
    with pytest.warns(UserWarning, match="better than chance"):
        assert reward.fit_aspect_weights(ROWS) == {"relevance": 0.5, "tone": 0.5}


# ---------------------------------------------------------------------------- long inputs


def test_long_conversations_lose_earlier_turns_not_the_response(make_reward: Any) -> None:
    full = make_reward()._renderer.encode(_item(LONG_CHAT), load_followups(SMALL_SET).texts)
    longest = max(len(ids) for ids in full.rows)
    reward = make_reward(max_length=longest - 5)
    encoded = reward._renderer.encode(_item(LONG_CHAT), reward.followups.texts)
    assert max(len(ids) for ids in encoded.rows) <= longest - 5
    text = reward.tokenizer.decode(encoded.rows[0])
    assert "Be brief." not in text and LONG_CHAT[-1]["content"] in text
    np.testing.assert_allclose(
        reward.followup_logprobs([LONG_CHAT]),
        reward.naive_followup_logprobs([LONG_CHAT]),
        atol=1e-4,
    )


def test_cut_inside_the_prompt_keeps_the_response(make_reward: Any) -> None:
    long_prompt = [{"role": "user", "content": "Reading is fun. " * 20}, SHORT[1]]
    full = make_reward()._renderer.encode(_item(long_prompt), load_followups(SMALL_SET).texts)
    limit = max(len(ids) for ids in full.rows) - 10
    reward = make_reward(max_length=limit)
    encoded = reward._renderer.encode(_item(long_prompt), reward.followups.texts)
    assert max(len(ids) for ids in encoded.rows) == limit
    assert "Yes." in reward.tokenizer.decode(encoded.rows[0])


def test_response_and_followup_longer_than_the_context_is_an_error(make_reward: Any) -> None:
    reward = make_reward(max_length=12)
    with pytest.raises(InputError, match="more than the 12 the model can read"):
        reward.followup_logprobs([BREAD])
    # The model's own context (512 positions for the tiny model) is the limit without max_length.
    long_answer = [BREAD[0], {"role": "assistant", "content": "Bread " * 600}]
    with pytest.raises(InputError, match="more than the 512"):
        make_reward().followup_logprobs([long_answer])


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("conversation", "message"),
    [
        pytest.param([BREAD[0], {"role": "assistant", "content": "  "}], "empty", id="empty"),
        pytest.param([BREAD[0]], "does not end with an assistant turn", id="ends-with-user"),
        pytest.param([{"role": "user"}], "string role and content", id="no-content"),
    ],
)
def test_bad_conversations(make_reward: Any, conversation: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        make_reward().followup_logprobs([BREAD, conversation])


def test_bad_rows_and_pairs(make_reward: Any) -> None:
    reward = make_reward()
    empty = {**ROWS[0], "rejected": [{"role": "assistant", "content": ""}]}
    with pytest.raises(InputError, match='row 2, field "rejected": the rejected response is empty'):
        reward.compare([ROWS[0], empty])
    user_side = {**ROWS[0], "chosen": [{"role": "user", "content": "hm"}]}
    with pytest.raises(InputError, match="not an assistant response"):
        reward.compare([user_side])
    with pytest.raises(InputError, match="2 prompts but 1 responses"):
        reward.score(["a", "b"], ["c"])
    with pytest.raises(InputError, match="the response is empty"):
        reward.score(["a"], [""])


def test_user_layout_appends_a_user_turn() -> None:
    assert user_layout(SHORT, "Great!") == [*SHORT, {"role": "user", "content": "Great!"}]


# ---------------------------------------------------------------------------- SmolLM2


@pytest.mark.slow
def test_smollm2_cached_scores_equal_naive() -> None:
    from tacitly.errors import ModelUnavailableError

    followups = {
        "aspects": {
            "relevance": {
                "positive": ["That answers my question.", "Great, thanks!"],
                "negative": ["That is off topic.", "No, that's wrong."],
            }
        }
    }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reward = FollowupReward(FollowupRewardConfig(device="cpu"), followups=followups)
    except ModelUnavailableError as error:
        pytest.skip(str(error))
    cached = reward.followup_logprobs([BREAD, LONG_CHAT])
    naive = reward.naive_followup_logprobs([BREAD, LONG_CHAT])
    assert cached.shape == (2, 4)
    np.testing.assert_allclose(cached, naive, atol=1e-4, rtol=0)
    # SmolLM2's template adds its default system prompt before the conversation.
    encoded = reward._renderer.encode(_item(BREAD), reward.followups.texts)
    assert str(reward.tokenizer.decode(encoded.rows[0])).startswith("<|im_start|>system")
