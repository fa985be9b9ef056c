"""Tests of tacitly.signals.behavior.features on small hand-made traces, hand-computed values."""

from __future__ import annotations

import math

import polars as pl
import pytest

from tacitly.errors import InputError
from tacitly.signals.behavior.features import (
    fixation_features,
    mirror_features,
    question_features,
    reading_end,
    stream_features,
    text_features,
)
from tacitly.signals.behavior.segments import SEGMENT_SCHEMA

TEXTS = pl.DataFrame(
    {
        "query_ID": [1],
        "user_id": ["w"],
        "task_id": [5],
        "user_query": ["Why is the sky blue?"],
        "llm_response_1": ["x" * 100],
        "llm_response_2": ["y" * 50],
    }
)


def _stream(
    modality: str,
    response: int,
    times: list[float],
    chars: list[int | None],
    *,
    valid: bool | None = True,
    duration: float = 10_000.0,
) -> pl.DataFrame:
    n = len(times)
    return pl.DataFrame(
        {
            "query_ID": [1] * n,
            "modality": [modality] * n,
            "response": [response] * n,
            "time": times,
            "duration": [duration] * n,
            "x": [10.0] * n,
            "y": [10.0] * n,
            "valid": [valid] * n,
            "char_index": chars,
        },
        schema=SEGMENT_SCHEMA,
    )


# Left gaze: a 3000 ms gap (capped at 1000), a jump back from 80 to 20 (a regression), a sample
# off the text, and the last sample lasting to the segment's end (capped at 1000).
LEFT_GAZE = _stream(
    "gaze", 1, [0.0, 500.0, 3500.0, 4000.0, 4500.0, 5000.0], [0, 40, 80, 20, None, 90]
)


def _row(frame: pl.DataFrame) -> dict[str, object]:
    return frame.row(0, named=True)


def test_engaged_time_caps_long_gaps() -> None:
    # On-text steps: 500 + min(3000, 1000) + 500 + 500 + min(10000 - 5000, 1000) = 3500 ms.
    row = _row(stream_features(LEFT_GAZE, TEXTS))
    assert row["engaged"] == pytest.approx(3.5)
    assert row["n_samples"] == 6.0


def test_a_larger_cap_counts_the_whole_gap() -> None:
    row = _row(stream_features(LEFT_GAZE, TEXTS, gap_cap=5000.0))
    # 500 + 3000 + 500 + 500 + 5000 (last sample to the end of the segment)
    assert row["engaged"] == pytest.approx(9.5)


def test_coverage_position_and_visits() -> None:
    row = _row(stream_features(LEFT_GAZE, TEXTS))
    assert row["coverage"] == pytest.approx(0.9)  # furthest char 90 of 100
    assert row["pos_mean"] == pytest.approx((0 + 0.4 + 0.8 + 0.2 + 0.9) / 5)
    assert row["visits"] == 2.0  # on, on, on, on, off, on
    assert row["first_look"] == 0.0
    assert row["last_look"] == 1.0  # the last look is the reading end


def test_one_backward_jump_is_one_regression() -> None:
    row = _row(stream_features(LEFT_GAZE, TEXTS))
    assert row["regressions"] == 1  # 0 → 40 → 80 → 20 (−60) → 90
    assert row["regression_rate"] == pytest.approx(1 / 4)
    assert row["reread"] == pytest.approx(1 / 5)  # char 20 is 60 behind the furthest (80)


def test_short_backward_steps_are_not_regressions() -> None:
    trace = _stream("gaze", 1, [0.0, 100.0, 200.0], [50, 30, 60])
    assert _row(stream_features(trace, TEXTS))["regressions"] == 0


def test_final_phase_ends_at_the_reading_end() -> None:
    row = _row(stream_features(LEFT_GAZE, TEXTS, final_window=1000.0))
    # Samples at 4000 (500 ms) and 5000 (1000 ms) lie in [5000 - 1000, 5000].
    assert row["engaged_final"] == pytest.approx(1.5)


def test_a_gaze_stream_without_valid_camera_frames_gives_null_measures() -> None:
    blind = _stream("gaze", 2, [0.0, 100.0], [3, 4], valid=False)
    row = _row(stream_features(blind, TEXTS))
    assert row["n_samples"] == 2.0
    assert row["usable_share"] == 0.0
    assert row["engaged"] is None and row["coverage"] is None


def test_mouse_ignores_the_camera_flag() -> None:
    mouse = _stream("mouse", 2, [0.0, 100.0], [3, 4], valid=False)
    # 100 ms, then the last sample to the segment end capped at 1000 ms.
    assert _row(stream_features(mouse, TEXTS))["engaged"] == pytest.approx(1.1)


def test_reading_end_is_the_last_on_text_sample_of_any_stream() -> None:
    segments = pl.concat([LEFT_GAZE, _stream("mouse", 2, [6000.0, 7000.0], [1, None])])
    assert reading_end(segments).rows() == [(1, 6000.0)]


def test_question_features_balance_sides_and_modalities() -> None:
    right_gaze = _stream("gaze", 2, [6000.0, 6500.0], [10, 20])
    left_mouse = _stream("mouse", 1, [0.0, 500.0], [5, 6])
    right_mouse = _stream("mouse", 2, [0.0, 500.0], [None, None])
    table = question_features(pl.concat([LEFT_GAZE, right_gaze, left_mouse, right_mouse]), TEXTS)
    row = _row(table)
    # Gaze: 3.5 s left; right: 500 + last sample min(10000 − 6500, 1000) = 1.5 s.
    assert row["gaze_engaged_2"] == pytest.approx(1.5)
    assert row["gaze_share_diff"] == pytest.approx((3.5 - 1.5) / 5.0)
    assert row["gaze_excess_share_diff"] == pytest.approx(0.4 - (100 - 50) / 150)
    assert row["gaze_switches"] == 1.0  # left … left, then right
    assert row["gaze_last_side_diff"] == -1.0  # last looked at the right answer
    assert row["mouse_share_diff"] == 1.0
    # Second 0: gaze left, mouse left → agree (the only bin with both).
    assert row["agreement"] == 1.0
    assert row["text_chars_1"] == 100.0
    assert row["prev_gaze_share_diff"] is None  # first question of its task


def test_a_question_without_samples_keeps_its_row_with_null_behaviour() -> None:
    table = question_features(pl.DataFrame(schema=SEGMENT_SCHEMA), TEXTS)
    row = _row(table)
    assert row["query_ID"] == 1
    assert row["gaze_engaged_1"] is None and row["mouse_share_diff"] is None
    assert row["text_chars_2"] == 50.0


def test_fixations_on_a_steady_stream() -> None:
    steady = _stream("gaze", 1, [float(t) for t in range(0, 800, 100)], [3] * 8)
    row = _row(fixation_features(steady))
    assert row["fix_count_1"] == 1.0
    assert row["fix_time_1"] == pytest.approx(0.7, abs=1e-6)
    assert row["fix_count_2"] is None


def test_text_features_count_characters_words_and_lines() -> None:
    texts = pl.DataFrame(
        {
            "query_ID": [1],
            "user_query": ["Hi"],
            "llm_response_1": ["a b\nc"],
            "llm_response_2": ["d"],
        }
    )
    row = _row(text_features(texts))
    assert (row["text_chars_1"], row["text_words_1"], row["text_lines_1"]) == (5.0, 3.0, 2.0)
    assert row["text_words_diff"] == pytest.approx(math.log(4) - math.log(2))


def test_mirror_swaps_sides_and_negates_differences() -> None:
    table = pl.DataFrame({"g_1": [1.0], "g_2": [3.0], "g_diff": [0.5], "agreement": [0.7]})
    assert mirror_features(table).rows() == [(3.0, 1.0, -0.5, 0.7)]


@pytest.mark.parametrize(
    ("option", "value"),
    [pytest.param("gap_cap", 0.0, id="gap-cap"), pytest.param("final_window", -1.0, id="window")],
)
def test_bad_settings_are_named(option: str, value: float) -> None:
    with pytest.raises(InputError, match=option):
        stream_features(LEFT_GAZE, TEXTS, **{option: value})  # type: ignore[arg-type]
