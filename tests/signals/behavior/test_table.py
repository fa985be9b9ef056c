"""Tests of tacitly.signals.behavior.table on small IFllm-layout folders written here."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from tacitly.errors import InputError
from tacitly.signals.behavior.table import (
    build_feature_table,
    feature_columns,
    read_pairwise_questions,
)

T0 = dt.datetime(2025, 4, 23, 22, 0, 0, tzinfo=dt.UTC)
HEADER = [
    "query_ID",
    "user_id",
    "task_id",
    "user_query",
    "llm_response_1",
    "llm_response_2",
    "llm_name_1",
    "llm_name_2",
    "likert_1",
    "likert_2",
    "preference",
    "adjustment",
    "query_timestamp",
]


def write_folder(root: Path, questions: list[dict[str, object]], traced_tasks: set[str]) -> Path:
    """Query log + extracted traces; each question gets 20 s of 5 Hz samples, gaze on the left."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "query_logs_table.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER)
        writer.writeheader()
        for q in questions:
            writer.writerow({name: q.get(name, "") for name in HEADER})
    for key in traced_tasks:
        worker, task = key.split("/")
        folder = root / "user_behavior" / worker / task
        folder.mkdir(parents=True)
        starts = sorted(
            int(
                dt.datetime.strptime(str(q["query_timestamp"]), "%Y-%m-%d %H:%M:%S")
                .replace(tzinfo=dt.UTC)
                .timestamp()
                * 1000
            )
            for q in questions
            if q["user_id"] == worker and str(q["task_id"]) == task
        )
        lines: dict[str, list[str]] = {k: [] for k in ("one", "two", "left", "right", "abs")}
        for start in starts:
            for i in range(100):
                epoch = start + 200 * i
                left = i % 4 != 0
                lines["one"].append(
                    f"10,10,abc,{i % 20},{epoch - starts[0]},1,{epoch}"
                    if left
                    else f"-1,-1,,,{epoch - starts[0]},1,{epoch}"
                )
                lines["two"].append(
                    f"-1,-1,,,{epoch - starts[0]},1,{epoch}"
                    if left
                    else f"10,10,abc,{i % 9},{epoch - starts[0]},1,{epoch}"
                )
                lines["left"].append(f"-1,-1,,,{epoch - starts[0]},1,{epoch}")
                lines["right"].append(f"-1,-1,,,{epoch - starts[0]},1,{epoch}")
                lines["abs"].append(f"500,300,{epoch - starts[0]},{epoch}")
        names = {
            "one": "rel_gaze_one",
            "two": "rel_gaze_two",
            "left": "rel_mouse_left",
            "right": "rel_mouse_right",
            "abs": "abs_mouse",
        }
        for short, name in names.items():
            (folder / f"{name}.csv").write_text("\n".join(lines[short]) + "\n")
    return root


def _question(qid: int, worker: str, task: int, k: int, preference: str) -> dict[str, object]:
    stamp = (T0 + dt.timedelta(seconds=20 * k)).strftime("%Y-%m-%d %H:%M:%S")
    return {
        "query_ID": qid,
        "user_id": worker,
        "task_id": task,
        "user_query": f"Question {qid}?",
        "llm_response_1": "Left answer, " * 2,
        "llm_response_2": "Right answer.",
        "likert_1": "4",
        "likert_2": "2",
        "preference": preference,
        "adjustment": "0",
        "query_timestamp": stamp,
    }


QUESTIONS = [
    _question(1, "worker_a", 7, 0, "1.0"),
    _question(2, "worker_a", 7, 1, "2.0"),
    _question(3, "worker_a", 7, 2, ""),  # no preference
    _question(4, "worker_b", 9, 0, "1.0"),  # its task has no traces
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "ifllm", QUESTIONS, {"worker_a/7"})


def test_one_row_per_pairwise_question_with_label_and_trace_flag(folder: Path) -> None:
    with pytest.warns(UserWarning) as caught:
        table = build_feature_table(folder)
    assert table.select("query_ID", "label", "has_traces").rows() == [
        (1, 1.0, True),
        (2, 0.0, True),
        (3, None, True),
        (4, 1.0, False),
    ]
    messages = " ".join(str(w.message) for w in caught)
    assert "1 side-by-side question(s) have no preference" in messages
    assert "1 question(s) have no traces (query_ID 4)" in messages


def test_gaze_on_the_left_three_quarters_of_the_time(folder: Path) -> None:
    with pytest.warns(UserWarning):
        table = build_feature_table(folder)
    first = table.row(0, named=True)
    # 75 of 100 samples of 200 ms on the left, 25 on the right.
    assert first["gaze_engaged_1"] == pytest.approx(15.0)
    assert first["gaze_engaged_2"] == pytest.approx(5.0)
    assert first["gaze_share_diff"] == pytest.approx(0.5)
    assert table.row(3, named=True)["gaze_engaged_1"] is None


def test_no_feature_comes_from_the_ratings(folder: Path) -> None:
    with pytest.warns(UserWarning):
        table = build_feature_table(folder)
    names = feature_columns(table)
    assert names and not [n for n in names if "pref" in n or "likert" in n or "adjust" in n]
    assert "label" not in names and "user_id" not in names


def test_a_malformed_line_names_the_file_and_line(folder: Path) -> None:
    trace = folder / "user_behavior" / "worker_a" / "7" / "abs_mouse.csv"
    lines = trace.read_text().splitlines()
    lines[4] = "500,300,123"  # three fields instead of four
    trace.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="row 5") as error:
        build_feature_table(folder)
    assert error.value.source is not None and error.value.source.endswith("abs_mouse.csv")


def test_a_folder_without_query_log_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no query log"):
        build_feature_table(tmp_path)


def test_labels_come_only_from_pairwise_preferences(folder: Path) -> None:
    log = read_pairwise_questions(folder)
    assert log["label"].to_list() == [1.0, 0.0, None, 1.0]
    assert not [c for c in log.columns if c.startswith(("likert", "pref", "adjust"))]


def test_feature_groups_select_by_prefix() -> None:
    table = pl.DataFrame(
        {
            "query_ID": [1],
            "gaze_a_1": [1.0],
            "prev_gaze_x_diff": [1.0],
            "mouse_b": [2.0],
            "text_c": [3.0],
        }
    )
    assert feature_columns(table, ("gaze",)) == ["gaze_a_1"]
    assert feature_columns(table, ("prev_gaze", "mouse")) == ["prev_gaze_x_diff", "mouse_b"]


def test_the_shared_subset_builds_whole(shared_data: Path) -> None:
    folder = shared_data / "ifllm"
    queries = pl.read_csv(folder / "query_logs_table.csv", infer_schema_length=10_000)
    pairwise = queries.filter(
        pl.col("llm_response_2").is_not_null() & (pl.col("llm_response_2") != "")
    )
    with pytest.warns(UserWarning):
        table = build_feature_table(folder)
    # One row per side-by-side question of the query log, labels only where a preference was
    # given (1 = left, 2 = right), and every trace column within its physical range.
    assert table.height == pairwise.height == 568
    expected = pairwise.select(
        "query_ID", pl.col("preference").replace_strict({1.0: 1.0, 2.0: 0.0}, default=None)
    ).sort("query_ID")
    got = table.select("query_ID", "label").sort("query_ID")
    assert got["label"].to_list() == expected["preference"].to_list()
    assert table["label"].is_not_null().sum() == 544
    engaged = [c for c in table.columns if "_engaged" in c and not c.endswith("_diff")]
    for name in [*engaged, "gaze_coverage_1", "mouse_coverage_2"]:
        values = table[name].drop_nulls()
        assert values.min() >= 0.0, name
    for name in ("gaze_coverage_1", "gaze_coverage_2", "mouse_share_diff"):
        values = table[name].drop_nulls()
        assert values.max() <= 1.0 and values.min() >= -1.0, name
