"""Export a study's database: the IFllm layout (for ``tacitly behavior``) or preference rows.

IFllm layout, as in the public dataset (so that everything that reads one reads the other):

- ``query_logs_table.csv``: one row per task shown. ``query_ID`` is the task's id; ``task_id``
  numbers the *session* (IFllm's "task" is one sitting with several questions) by its first
  task's id; ``user_id`` is the participant's outside id when given, else tacitly's id, made
  safe as a folder name; ``query_timestamp`` is the first sample the browser recorded for the
  task (its own clock, the clock of the traces, with milliseconds), or when the server showed
  it if nothing was recorded, so that cutting the traces at the timestamps gives back exactly
  the samples of each task.
- ``task_table.csv``: one row per session, ``accuracy`` the last calibration precision in %.
- ``user_behavior/<user_id>/<task_id>/``: headerless CSVs. ``abs_mouse``/``abs_gaze``: page
  ``x, y, page_timer_ms, epoch_ms``. ``rel_mouse_left``/``rel_mouse_right`` and
  ``rel_gaze_one``/``rel_gaze_two``: ``x_rel, y_rel, text_window, char_index, page_timer_ms,
  camera_valid, epoch_ms``, one row per sample of that modality, ``-1,-1`` with an empty window
  and index when the point is not over that response. ``camera_valid`` is the webcam's flag for
  gaze and 1 for the mouse (its position does not depend on the camera). Line breaks inside a
  text window become spaces (the files are read line by line).
- ``user_behavior/<user_id>/<task_id>/aois_<query_ID>.csv``: one file per task of the sitting,
  *with* a header (``response, aoi, index, text, char_start, char_end, left, top, width,
  height``): the word boxes of both answers as the browser measured them with
  ``Range.getClientRects()``, in px relative to the origin of ``x_rel``/``y_rel`` (each answer
  box's top-left corner with its text scrolled to the top), so ``rel_gaze_*`` points fall into
  them directly. ``aoi`` numbers the boxes of an answer from 0 (unique, as tacitly's AOI tables
  require: ``aois_from_table(table, by="response")``); ``index`` is the word (a word wrapped
  over two lines has two boxes, each with the part of the word on its line); ``char_start``,
  ``char_end`` are code-point offsets into the answer, as ``char_index`` counts. When a resize
  moved the words, the database keeps every layout version; the export writes each answer's
  latest (the layout the participant rated on). A task with no layout has only the header. The
  behaviour loaders read trace files by name and skip these.

Preference rows (JSONL): one per rated task, in TRL's conversational format, ``meta`` with the
participant, session, task, both Likert ratings and the answers' sources.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tacitly.collect.store import (
    Participant,
    Store,
    StoredSample,
    StudySession,
    Task,
    WordBox,
    word_box_rows,
)
from tacitly.errors import InputError

__all__ = ["export_ifllm", "export_preferences", "worker_name"]

QUERY_LOG_COLUMNS = (
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
)
TASK_TABLE_COLUMNS = (
    "user_id",
    "task_id",
    "copy_sentence",
    "summary",
    "feedback",
    "understand_before",
    "understand_after",
    "query_copy",
    "llm_response_copy",
    "accuracy",
    "finished",
    "domain",
)
AOI_COLUMNS = (
    "response",
    "aoi",
    "index",
    "text",
    "char_start",
    "char_end",
    "left",
    "top",
    "width",
    "height",
)
#: Trace file → (sample kind, response side or None for page coordinates).
TRACE_FILES: dict[str, tuple[str, int | None]] = {
    "abs_mouse": ("mouse", None),
    "abs_gaze": ("gaze", None),
    "rel_mouse_left": ("mouse", 1),
    "rel_mouse_right": ("mouse", 2),
    "rel_gaze_one": ("gaze", 1),
    "rel_gaze_two": ("gaze", 2),
}


def worker_name(participant: Participant) -> str:
    """The folder-safe ``user_id`` of a participant: ``worker_`` + outside id or tacitly id."""
    raw = participant.external_id or participant.id
    return "worker_" + re.sub(r"[^A-Za-z0-9_-]", "_", raw)


def export_ifllm(store: Store, folder: str | Path) -> Path:
    """Write the whole database in the IFllm layout under ``folder`` (created if needed).

    Parameters
    ----------
    store:
        The study database.
    folder:
        Output folder; an existing ``query_logs_table.csv`` there is an error, so that an
        export never mixes with older data.

    Returns
    -------
    Path
        ``folder``.
    """
    out = Path(folder)
    if (out / "query_logs_table.csv").exists():
        raise InputError(
            "the folder already holds an export",
            source=str(out),
            expected="a new or empty folder",
        )
    out.mkdir(parents=True, exist_ok=True)
    queries: list[dict[str, Any]] = []
    sittings: list[dict[str, Any]] = []
    with Session(store.engine) as db:
        for session, participant in _sessions(db):
            tasks = list(
                db.scalars(select(Task).where(Task.session_id == session.id).order_by(Task.id))
            )
            if not tasks:
                continue
            user, sitting = worker_name(participant), tasks[0].id
            samples = _session_samples(db, session.id)
            starts = _task_starts(tasks, samples)
            queries += [_query_row(task, user, sitting, starts[task.id]) for task in tasks]
            sittings.append(_sitting_row(session, user, sitting, len(tasks)))
            folder = out / "user_behavior" / user / str(sitting)
            _write_traces(folder, samples)
            _write_word_boxes(folder, tasks, word_box_rows(db, [t.id for t in tasks], latest=True))
    _write_csv(out / "query_logs_table.csv", QUERY_LOG_COLUMNS, queries)
    _write_csv(out / "task_table.csv", TASK_TABLE_COLUMNS, sittings)
    return out


def export_preferences(store: Store, path: str | Path) -> Path:
    """Write one preference row per rated task to a JSONL file.

    Returns
    -------
    Path
        ``path``.
    """
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    with Session(store.engine) as db, file.open("w", encoding="utf-8") as handle:
        for session, participant in _sessions(db):
            rated = db.scalars(
                select(Task)
                .where(Task.session_id == session.id, Task.preference.is_not(None))
                .order_by(Task.id)
            )
            for task in rated:
                handle.write(json.dumps(_preference_row(task, participant), ensure_ascii=False))
                handle.write("\n")
    return file


def _sessions(db: Session) -> Iterable[tuple[StudySession, Participant]]:
    query = (
        select(StudySession, Participant)
        .join(Participant, StudySession.participant_id == Participant.id)
        .order_by(StudySession.created_ms, StudySession.id)
    )
    for row in db.execute(query):
        yield row[0], row[1]


def _session_samples(db: Session, session_id: str) -> list[StoredSample]:
    query = (
        select(StoredSample)
        .where(StoredSample.session_id == session_id)
        .order_by(StoredSample.seq, StoredSample.idx)
    )
    return list(db.scalars(query))


def _task_starts(tasks: Sequence[Task], samples: Sequence[StoredSample]) -> dict[int, int]:
    first: dict[int, int] = {}
    for sample in samples:
        if sample.task_id is not None:
            first[sample.task_id] = min(first.get(sample.task_id, sample.epoch_ms), sample.epoch_ms)
    return {task.id: first.get(task.id, task.shown_ms) for task in tasks}


def _timestamp(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{epoch_ms % 1000:03d}"


def _query_row(task: Task, user: str, sitting: int, start_ms: int) -> dict[str, Any]:
    return {
        "query_ID": task.id,
        "user_id": user,
        "task_id": sitting,
        "user_query": task.question,
        "llm_response_1": task.response_1,
        "llm_response_2": task.response_2,
        "llm_name_1": task.source_1,
        "llm_name_2": task.source_2,
        "likert_1": task.likert_1,
        "likert_2": task.likert_2,
        "preference": None if task.preference is None else float(task.preference),
        "adjustment": 0,
        "query_timestamp": _timestamp(start_ms),
    }


def _sitting_row(session: StudySession, user: str, sitting: int, asked: int) -> dict[str, Any]:
    precision = session.calibration_precision  # the latest calibration's, stored with it
    return {
        "user_id": user,
        "task_id": sitting,
        "accuracy": None if precision is None else round(100 * precision, 1),
        "finished": None if session.finished_ms is None else _timestamp(session.finished_ms)[:19],
        "domain": f"{asked} questions",
    }


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({name: "" if row.get(name) is None else row[name] for name in columns})


def _write_traces(folder: Path, samples: Sequence[StoredSample]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (kind, side) in TRACE_FILES.items():
        lines = [
            _absolute_line(sample) if side is None else _relative_line(sample, side)
            for sample in samples
            if sample.kind == kind
        ]
        (folder / f"{name}.csv").write_text("".join(lines), encoding="utf-8")


def _write_word_boxes(folder: Path, tasks: Sequence[Task], boxes: Sequence[WordBox]) -> None:
    by_task: dict[int, list[dict[str, Any]]] = {task.id: [] for task in tasks}
    for box in boxes:
        row = {name: getattr(box, name) for name in AOI_COLUMNS if name != "aoi"}
        by_task[box.task_id].append({**row, "aoi": box.box, **_pixels(box)})
    for task_id, rows in by_task.items():
        _write_csv(folder / f"aois_{task_id}.csv", AOI_COLUMNS, rows)


def _pixels(box: WordBox) -> dict[str, str]:
    return {edge: _number(getattr(box, edge)) for edge in ("left", "top", "width", "height")}


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else repr(round(float(value), 3))


def _absolute_line(sample: StoredSample) -> str:
    return f"{_number(sample.x)},{_number(sample.y)},{_number(sample.t)},{sample.epoch_ms}\n"


def _relative_line(sample: StoredSample, side: int) -> str:
    valid = 1 if sample.kind == "mouse" or sample.camera_valid else 0
    tail = f"{_number(sample.t)},{valid},{sample.epoch_ms}\n"
    if sample.response != side:
        return f"-1,-1,,,{tail}"
    window = _quoted((sample.text_window or "").replace("\r", " ").replace("\n", " "))
    index = "" if sample.char_index is None else str(sample.char_index)
    return f"{_number(sample.x_rel)},{_number(sample.y_rel)},{window},{index},{tail}"


def _quoted(text: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="").writerow([text])
    return buffer.getvalue()


def _preference_row(task: Task, participant: Participant) -> dict[str, Any]:
    left = [{"role": "assistant", "content": task.response_1}]
    right = [{"role": "assistant", "content": task.response_2}]
    chosen, rejected = (left, right) if task.preference == 1 else (right, left)
    return {
        "prompt": [{"role": "user", "content": task.question}],
        "chosen": chosen,
        "rejected": rejected,
        "meta": {
            "source": "tacitly collect",
            "participant": worker_name(participant),
            "session_id": task.session_id,
            "task_id": task.id,
            "chosen_position": task.preference,
            "likert_1": task.likert_1,
            "likert_2": task.likert_2,
            "source_1": task.source_1,
            "source_2": task.source_2,
        },
    }
