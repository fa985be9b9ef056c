"""Export to the IFllm layout and to preference rows, read back by tacitly's own loaders."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tacitly.collect.export import export_ifllm, export_preferences
from tacitly.collect.protocol import Batch, Layout, Rating, Sample
from tacitly.collect.store import Store
from tacitly.errors import InputError
from tacitly.signals.behavior import build_feature_table, load_segments, read_pairwise_questions
from tacitly.signals.gaze.aois import aois_from_table, map_fixations_to_aois

T0 = 1_764_000_000_000  # 2025-11-24 16:00:00 UTC, in ms


def _mouse(t: float, *, response: int = 0, char: int | None = None) -> Sample:
    return Sample(
        kind="mouse",
        t=t,
        epoch_ms=T0 + int(t),
        x=100.0 + t / 10,
        y=50.0,
        response=response,  # type: ignore[arg-type]
        x_rel=None if response == 0 else 5.0,
        y_rel=None if response == 0 else 7.5,
        char_index=char,
        text_window=None if char is None else 'a "b",\nc',
    )


def _gaze(t: float, *, response: int, char: int, valid: bool = True) -> Sample:
    return Sample(
        kind="gaze",
        t=t,
        epoch_ms=T0 + int(t),
        x=300.0,
        y=60.0,
        response=response,  # type: ignore[arg-type]
        x_rel=12.0,
        y_rel=3.0,
        char_index=char,
        text_window="xyz",
        camera_valid=valid,
    )


def _layout(response: int, boxes: list[tuple[int, str, int, float, float, float]]) -> Layout:
    """Boxes as ``(index, text, char_start, left, top, width)``, all 27.2 px high."""
    words = [
        {
            "index": index,
            "text": text,
            "char_start": start,
            "char_end": start + len(text),
            "left": left,
            "top": top,
            "width": width,
            "height": 27.2,
        }
        for index, text, start, left, top, width in boxes
    ]
    shown = {"response": response, "epoch_ms": T0, "width": 560, "height": 288, "words": words}
    return Layout.model_validate(shown)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """One participant, one session, two tasks (the first rated 1, the second unrated); the
    first task's answers have word boxes, the left one in two versions (its last word wraps in
    the second)."""
    store = Store(tmp_path / "study.db")
    session, _, _ = store.create_session(participant="P 01")
    first = store.add_task(session, question="Q1?", responses=("left one", "right one"))
    second = store.add_task(session, question="Q2?", responses=("L2", "R2"))
    store.add_batch(
        session,
        Batch(
            seq=0,
            task_id=first.id,
            samples=[
                _mouse(0.0),
                _mouse(100.0, response=1, char=3),
                _gaze(150.0, response=2, char=4, valid=False),
                Sample(kind="scroll", t=160.0, epoch_ms=T0 + 160, value="120"),
            ],
        ),
    )
    store.add_batch(
        session, Batch(seq=1, task_id=second.id, samples=[_mouse(2_500.0, response=2, char=1)])
    )
    store.rate_task(session, first.id, Rating(likert_1=4, likert_2=2, preference=1))
    store.add_calibration(session, precision=0.5, points=9, threshold=0.7)
    store.add_calibration(session, precision=0.82, points=9, threshold=0.7)
    left = [(0, "left", 0, 16.5, 13.6, 30.25), (1, "one", 5, 50.0, 13.6, 29.0)]
    wrapped = [(0, "left", 0, 16.5, 13.6, 30.25), (1, "on", 5, 50.0, 13.6, 20.0)]
    wrapped.append((1, "e", 7, 16.5, 40.8, 9.125))
    store.add_layout(session, first.id, _layout(1, left))
    store.add_layout(session, first.id, _layout(1, wrapped))
    store.add_layout(session, first.id, _layout(2, [(0, "right", 0, 16.5, 13.6, 40.0)]))
    return store


def test_query_log_and_task_table(store: Store, tmp_path: Path) -> None:
    folder = export_ifllm(store, tmp_path / "export")
    log = pl.read_csv(folder / "query_logs_table.csv")
    assert log["user_id"].to_list() == ["worker_P_01", "worker_P_01"]
    assert log["task_id"].to_list() == [1, 1]  # the session is numbered by its first task
    assert log["query_ID"].to_list() == [1, 2]
    assert log["preference"].to_list() == [1.0, None]
    assert log["likert_1"].to_list() == [4, None]
    # Each task starts at its first recorded sample, on the browser's clock.
    assert log["query_timestamp"].to_list() == [
        "2025-11-24 16:00:00.000",
        "2025-11-24 16:00:02.500",
    ]
    tasks = pl.read_csv(folder / "task_table.csv")
    assert tasks.select("user_id", "task_id").rows() == [("worker_P_01", 1)]
    # The calibration passed at its second try (82%); two questions were asked.
    assert tasks.select("accuracy", "domain").rows() == [(82.0, "2 questions")]


def test_trace_files_by_hand(store: Store, tmp_path: Path) -> None:
    traces = export_ifllm(store, tmp_path / "export") / "user_behavior" / "worker_P_01" / "1"
    assert (traces / "abs_mouse.csv").read_text().splitlines() == [
        f"100,50,0,{T0}",
        f"110,50,100,{T0 + 100}",
        f"350,50,2500,{T0 + 2500}",
    ]
    assert (traces / "rel_mouse_left.csv").read_text().splitlines() == [
        f"-1,-1,,,0,1,{T0}",
        f'5,7.5,"a ""b"", c",3,100,1,{T0 + 100}',
        f"-1,-1,,,2500,1,{T0 + 2500}",
    ]
    assert (traces / "rel_gaze_two.csv").read_text().splitlines() == [
        f'12,3,"xyz",4,150,0,{T0 + 150}'
    ]
    assert (traces / "rel_gaze_one.csv").read_text().splitlines() == [f"-1,-1,,,150,0,{T0 + 150}"]


def test_word_boxes_by_hand(store: Store, tmp_path: Path) -> None:
    traces = export_ifllm(store, tmp_path / "export") / "user_behavior" / "worker_P_01" / "1"
    header = "response,aoi,index,text,char_start,char_end,left,top,width,height"
    # The left answer's latest version; its wrapped word "one" is two boxes of word 1.
    assert (traces / "aois_1.csv").read_text().splitlines() == [
        header,
        "1,0,0,left,0,4,16.5,13.6,30.25,27.2",
        "1,1,1,on,5,7,50,13.6,20,27.2",
        "1,2,1,e,7,8,16.5,40.8,9.125,27.2",
        "2,0,0,right,0,5,16.5,13.6,40,27.2",
    ]
    assert (traces / "aois_2.csv").read_text().splitlines() == [header]
    boxes = pl.read_csv(traces / "aois_1.csv")
    aois = aois_from_table(boxes, by="response")
    assert aois.select("response", "aoi", "text").rows() == [
        (1, 0, "left"),
        (1, 1, "on"),
        (1, 2, "e"),
        (2, 0, "right"),
    ]
    # A relative point on the wrapped word's second line is word 1 of the left answer.
    points = pl.DataFrame({"response": [1, 1, 2], "x": [20.0, 18.0, 20.0], "y": [20.0, 50.0, 9.0]})
    hits = map_fixations_to_aois(points, aois, by="response").join(
        boxes.select("response", "aoi", "index"), on=["response", "aoi"], how="left"
    )
    assert hits.select("aoi", "index", "text").rows() == [(0, 0, "left"), (2, 1, "e"), (None,) * 3]


def test_the_export_reads_back_with_the_behaviour_loaders(store: Store, tmp_path: Path) -> None:
    folder = export_ifllm(store, tmp_path / "export")
    questions = read_pairwise_questions(folder)
    assert questions["label"].to_list() == [1.0, None]
    segments = load_segments(folder)
    mouse_left = segments.filter(
        (pl.col("modality") == "mouse") & (pl.col("response") == 1) & pl.col("x").is_not_null()
    )
    assert mouse_left.select("query_ID", "char_index", "time").rows() == [(1, 3, 100.0)]
    # Samples of the second task are cut into the second question, none leak into the first.
    assert segments.filter(pl.col("query_ID") == 2)["time"].min() == 0.0
    with pytest.warns(UserWarning, match="1 side-by-side question"):
        table = build_feature_table(folder)
    assert table["query_ID"].to_list() == [1, 2]
    assert table["label"].to_list() == [1.0, None]


def test_preference_rows(store: Store, tmp_path: Path) -> None:
    path = export_preferences(store, tmp_path / "prefs.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert row["prompt"] == [{"role": "user", "content": "Q1?"}]
    assert row["chosen"] == [{"role": "assistant", "content": "left one"}]
    assert row["rejected"] == [{"role": "assistant", "content": "right one"}]
    assert (row["meta"]["likert_1"], row["meta"]["likert_2"]) == (4, 2)
    assert row["meta"]["participant"] == "worker_P_01"


def test_an_export_never_overwrites_another(store: Store, tmp_path: Path) -> None:
    export_ifllm(store, tmp_path / "export")
    with pytest.raises(InputError, match="already holds an export"):
        export_ifllm(store, tmp_path / "export")
