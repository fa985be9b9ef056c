"""Tests of tacitly.signals.behavior.segments: cutting a task's traces at question timestamps."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from tacitly.errors import InputError
from tacitly.signals.behavior.segments import SEGMENT_SCHEMA, segment_task

T0 = dt.datetime(2025, 4, 23, 22, 0, 0, tzinfo=dt.UTC)
EPOCH = int(T0.timestamp() * 1000)


def _questions() -> pl.DataFrame:
    return pl.DataFrame(
        {"query_ID": [11, 12], "query_timestamp": [T0, T0 + dt.timedelta(seconds=10)]}
    )


def _rel(epochs: list[int], chars: list[int | None], valid: list[bool]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "time": [float(e - EPOCH) for e in epochs],
            "x": [1.0] * len(epochs),
            "y": [2.0] * len(epochs),
            "valid": valid,
            "epoch_ms": epochs,
            "char_index": chars,
        }
    )


def test_samples_go_to_the_question_asked_last() -> None:
    trace = _rel(
        [EPOCH - 100, EPOCH, EPOCH + 9_999, EPOCH + 10_000, EPOCH + 12_000],
        [1, 2, 3, 4, 5],
        [True] * 5,
    )
    table = segment_task({"rel_gaze_one": trace}, _questions())
    assert table.select("query_ID", "time", "duration", "char_index").rows() == [
        (11, 0.0, 10_000.0, 2),
        (11, 9_999.0, 10_000.0, 3),
        (12, 0.0, 2_000.0, 4),
        (12, 2_000.0, 2_000.0, 5),
    ]


def test_streams_are_tagged_with_modality_and_response() -> None:
    left = _rel([EPOCH + 5], [1], [True])
    right = _rel([EPOCH + 5], [None], [False])
    page = left.drop("char_index")
    table = segment_task(
        {"rel_gaze_two": right, "rel_mouse_left": left, "abs_mouse": page, "abs_gaze": page},
        _questions(),
    )
    assert table.select("modality", "response", "valid", "char_index").rows() == [
        ("gaze", 2, False, None),
        ("mouse", 0, True, None),
        ("mouse", 1, True, 1),
    ]


@pytest.mark.parametrize(
    "traces",
    [
        pytest.param({}, id="no-traces"),
        pytest.param({"rel_gaze": _rel([EPOCH], [1], [True])}, id="single-kind-only"),
    ],
)
def test_a_task_without_pairwise_traces_gives_an_empty_table(
    traces: dict[str, pl.DataFrame],
) -> None:
    table = segment_task(traces, _questions())
    assert table.is_empty()
    assert table.schema == pl.Schema(SEGMENT_SCHEMA)


def test_a_question_without_a_timestamp_is_named() -> None:
    questions = pl.DataFrame(
        {"query_ID": [1, 2], "query_timestamp": [T0, None]},
        schema={"query_ID": pl.Int64, "query_timestamp": pl.Datetime("ms", "UTC")},
    )
    with pytest.raises(InputError, match="row 2") as error:
        segment_task({"rel_gaze_one": _rel([EPOCH], [1], [True])}, questions, source="w/3")
    assert error.value.source == "w/3"
