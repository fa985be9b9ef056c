"""Split an IFllm task's mouse and webcam-gaze traces into one segment per question.

A task page shows one question at a time: the worker types a question, two answers appear side
by side, the worker reads them and gives a preference, then asks the next question. The query
log's ``query_timestamp`` (whole seconds, UTC) marks when each question was sent, and the
traces' ``epoch_ms`` is the same clock, so question *k* owns the samples from its own timestamp
up to the next question's timestamp; the last question owns everything up to the task's last
sample. (Checked on the shared subset: the largest ``char_index`` seen on each side inside a
segment never exceeds the length of that question's answer.)

Policies
--------
Before the first question
    Samples earlier than the task's first question belong to the page's introduction (its
    placeholder text) and are dropped.
Camera validity
    ``valid`` is kept as the reader gives it: for the relative traces it is the webcam's
    ``camera_valid`` flag (null in older files that lack it); for ``abs_mouse`` it says whether
    both coordinates are numbers.
Streams
    Each row belongs to a stream ``(query_ID, modality, response)``: modality ``"gaze"`` or
    ``"mouse"``; response 1 (left) or 2 (right) for the traces relative to one answer, 0 for
    the page coordinates of ``abs_mouse``. ``time`` is ms since the question's timestamp, from
    ``epoch_ms`` (``page_timer_ms`` restarts on reload), and ``duration`` the segment's length.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from tacitly.errors import InputError

__all__ = ["PAIRWISE_KINDS", "SEGMENT_SCHEMA", "segment_task"]

PAIRWISE_KINDS: dict[str, tuple[str, int]] = {
    "rel_gaze_one": ("gaze", 1),
    "rel_gaze_two": ("gaze", 2),
    "rel_mouse_left": ("mouse", 1),
    "rel_mouse_right": ("mouse", 2),
    "abs_mouse": ("mouse", 0),
}
"""Trace kinds used for side-by-side questions, with their ``(modality, response)``."""

SEGMENT_SCHEMA: dict[str, pl.DataType] = {
    "query_ID": pl.Int64(),
    "modality": pl.String(),
    "response": pl.Int8(),
    "time": pl.Float64(),
    "duration": pl.Float64(),
    "x": pl.Float64(),
    "y": pl.Float64(),
    "valid": pl.Boolean(),
    "char_index": pl.Int64(),
}
"""Columns and types of the table :func:`segment_task` returns."""


def segment_task(
    traces: Mapping[str, pl.DataFrame],
    questions: pl.DataFrame,
    *,
    source: str = "",
) -> pl.DataFrame:
    """Cut one task's traces into per-question segments.

    Parameters
    ----------
    traces:
        ``{kind: trace}`` as :func:`tacitly.signals.gaze.readers.iter_ifllm_tasks` yields them;
        kinds outside :data:`PAIRWISE_KINDS` are ignored.
    questions:
        The task's rows of the query log with ``query_ID`` and ``query_timestamp`` (a
        datetime, as :func:`~tacitly.signals.gaze.readers.read_ifllm_queries` reads it).
    source:
        Where the task comes from, for error messages (default: "").

    Returns
    -------
    pl.DataFrame
        One row per sample, columns as in :data:`SEGMENT_SCHEMA`, sorted by ``query_ID``,
        ``modality``, ``response`` and ``time``. Empty (with that schema) when the task has
        no usable traces or no questions.

    Raises
    ------
    InputError
        When ``questions`` lacks ``query_ID`` or ``query_timestamp`` or has a missing
        timestamp.

    Examples
    --------
    >>> import datetime as dt
    >>> import polars as pl
    >>> t0 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    >>> questions = pl.DataFrame({"query_ID": [7, 8], "query_timestamp": [t0, t0 + dt.timedelta(seconds=1)]})
    >>> epoch = int(t0.timestamp() * 1000)
    >>> trace = pl.DataFrame({"time": [0.0, 1.0, 2.0], "x": [1.0, 2.0, 3.0], "y": [0.0] * 3,
    ...     "valid": [True] * 3, "epoch_ms": [epoch - 5, epoch + 500, epoch + 1500],
    ...     "char_index": [None, 4, 9]})
    >>> segment_task({"rel_gaze_one": trace}, questions).select("query_ID", "time", "duration").rows()
    [(7, 500.0, 1000.0), (8, 500.0, 500.0)]
    """  # noqa: E501
    for name in ("query_ID", "query_timestamp"):
        if name not in questions.columns:
            raise InputError("missing column", source=source or None, field=name)
    if questions["query_timestamp"].null_count():
        row = int(questions["query_timestamp"].is_null().arg_true()[0]) + 1
        raise InputError(
            "question without a timestamp", source=source or None, row=row, field="query_timestamp"
        )
    streams = [
        _tagged(trace, modality, response)
        for kind, (modality, response) in PAIRWISE_KINDS.items()
        if (trace := traces.get(kind)) is not None and trace.height
    ]
    if not streams or questions.is_empty():
        return pl.DataFrame(schema=SEGMENT_SCHEMA)
    samples = pl.concat(streams, how="vertical")
    ordered = questions.select(
        pl.col("query_ID").cast(pl.Int64),
        pl.col("query_timestamp").dt.epoch("ms").cast(pl.Int64).alias("start"),
    ).sort("start", "query_ID")
    starts = ordered["start"].to_numpy()
    task_end = int(samples["epoch_ms"].max())  # type: ignore[arg-type]
    ends = np.append(starts[1:], max(task_end, int(starts[-1])))
    epoch = samples["epoch_ms"].to_numpy()
    owner = np.searchsorted(starts, epoch, side="right") - 1
    # A sample at exactly the next question's timestamp starts that question.
    keep = owner >= 0
    owner = np.where(keep, owner, 0)
    return (
        samples.with_columns(
            query_ID=pl.Series(ordered["query_ID"].to_numpy()[owner]),
            time=pl.Series((epoch - starts[owner]).astype(np.float64)),
            duration=pl.Series((ends[owner] - starts[owner]).astype(np.float64)),
        )
        .filter(pl.Series(keep))
        .select(list(SEGMENT_SCHEMA))
        .cast(SEGMENT_SCHEMA)  # type: ignore[arg-type]
        .sort("query_ID", "modality", "response", "time", maintain_order=True)
    )


def _tagged(trace: pl.DataFrame, modality: str, response: int) -> pl.DataFrame:
    char_index = (
        pl.col("char_index") if "char_index" in trace.columns else pl.lit(None, dtype=pl.Int64)
    )
    return trace.select(
        pl.lit(modality).alias("modality"),
        pl.lit(response, dtype=pl.Int8).alias("response"),
        pl.col("epoch_ms").cast(pl.Int64),
        pl.col("x").cast(pl.Float64),
        pl.col("y").cast(pl.Float64),
        pl.col("valid").cast(pl.Boolean),
        char_index.cast(pl.Int64).alias("char_index"),
    ).filter(pl.col("epoch_ms").is_not_null())
