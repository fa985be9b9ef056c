"""The feature table of a whole IFllm-layout folder: one row per side-by-side question.

An IFllm-layout folder holds ``query_logs_table.csv`` and the traces, either as
``user_behavior.tar.gz`` (read member by member, never extracted) or as the extracted
``user_behavior/<worker>/<task>/`` folders. The traces' worker folder name is the query log's
``user_id``; the task folder name is its ``task_id``.

Policies
--------
Questions kept
    Pairwise rows of the query log (both answers present). Single-answer rows only bound the
    segments of their task.
No preference
    A question without a preference keeps its row with ``label`` null: its features are
    computed (so that :mod:`tacitly.rewards.behavior` can label it) but it is never used to
    train or score a model. A warning gives their number.
Task without traces
    A question whose task has no trace files (or no pairwise ones) keeps its row with
    ``has_traces`` False and null behaviour features; text features are still filled. A warning
    names the first such questions.
Bad traces
    A trace line with the wrong number of fields or a value that is not a number stops the
    build with :class:`~tacitly.errors.InputError` naming the archive member (or file) and the
    1-based line, as raised by :func:`~tacitly.signals.gaze.readers.iter_ifllm_tasks`.
The target
    ``label`` is 1.0 when the left answer (response 1) was preferred and 0.0 for the right; it
    comes from ``preference`` and is the only column derived from it. ``likert_*``,
    ``preference`` and ``adjustment`` are not copied into the table.
"""

from __future__ import annotations

import warnings
from os import PathLike
from pathlib import Path

import polars as pl

from tacitly.errors import InputError
from tacitly.signals.behavior.features import question_features
from tacitly.signals.behavior.segments import PAIRWISE_KINDS, SEGMENT_SCHEMA, segment_task
from tacitly.signals.gaze.readers import iter_ifllm_tasks, read_ifllm_queries

__all__ = [
    "ID_COLUMNS",
    "TEXT_COLUMNS",
    "build_feature_table",
    "feature_columns",
    "load_segments",
    "read_pairwise_questions",
]

StrPath = str | PathLike[str]

ID_COLUMNS: tuple[str, ...] = ("query_ID", "user_id", "task_id", "label", "has_traces")
"""Columns of the feature table that identify a question or hold its target."""

TEXT_COLUMNS: tuple[str, ...] = ("user_query", "llm_response_1", "llm_response_2")
"""The question and the two answers, kept in the table for text models and preference rows."""

_FORBIDDEN = ("preference", "likert", "adjustment")


def _query_log(root: Path) -> Path:
    file = root / "query_logs_table.csv" if root.is_dir() else root
    if not file.is_file():
        raise InputError(
            "no query log found",
            source=root,
            expected="an IFllm-layout folder with query_logs_table.csv and user_behavior.tar.gz",
        )
    return file


def read_pairwise_questions(root: StrPath) -> pl.DataFrame:
    """The query log of an IFllm-layout folder, with ``label`` and only the allowed columns.

    Parameters
    ----------
    root:
        The folder (or its ``query_logs_table.csv``).

    Returns
    -------
    pl.DataFrame
        Every row of the log: ``query_ID``, ``user_id``, ``task_id``, ``query_timestamp``,
        ``pairwise``, ``label`` (1.0 left preferred, 0.0 right, null otherwise) and
        :data:`TEXT_COLUMNS`.

    Raises
    ------
    InputError
        As :func:`~tacitly.signals.gaze.readers.read_ifllm_queries`.

    Examples
    --------
    >>> read_pairwise_questions("../shared/data/ifllm").height  # doctest: +SKIP
    1211
    """
    queries = read_ifllm_queries(_query_log(Path(root)))
    label = (
        pl.when(~pl.col("pairwise"))
        .then(None)
        .when(pl.col("preference") == 1.0)
        .then(1.0)
        .when(pl.col("preference") == 2.0)
        .then(0.0)
    )
    return queries.select(
        pl.col("query_ID").cast(pl.Int64),
        pl.col("user_id").cast(pl.String),
        pl.col("task_id").cast(pl.Int64),
        "query_timestamp",
        "pairwise",
        label.cast(pl.Float64).alias("label"),
        *(pl.col(name).cast(pl.String) for name in TEXT_COLUMNS),
    )


def load_segments(root: StrPath, questions: pl.DataFrame | None = None) -> pl.DataFrame:
    """Segment every task's traces of an IFllm-layout folder (see :mod:`.segments`).

    Parameters
    ----------
    root:
        The folder holding ``user_behavior.tar.gz`` or ``user_behavior/``.
    questions:
        The query log as :func:`read_pairwise_questions` returns it (default: None, read from
        ``root``).

    Returns
    -------
    pl.DataFrame
        The segment tables of all tasks that have pairwise questions, stacked.

    Raises
    ------
    InputError
        On an unreadable archive or trace line.

    Examples
    --------
    >>> load_segments("../shared/data/ifllm").columns[:3]  # doctest: +SKIP
    ['query_ID', 'modality', 'response']
    """
    folder = Path(root)
    log = read_pairwise_questions(folder) if questions is None else questions
    by_task = {
        key: frame
        for key, frame in log.partition_by(["user_id", "task_id"], as_dict=True).items()
        if frame["pairwise"].any()
    }
    parts = [pl.DataFrame(schema=SEGMENT_SCHEMA)]
    source = folder.parent if folder.is_file() else folder
    for worker, task, traces in iter_ifllm_tasks(source, kinds=set(PAIRWISE_KINDS)):
        if not task.isdigit():
            continue
        asked = by_task.get((worker, int(task)))
        if asked is None:
            continue
        parts.append(segment_task(traces, asked, source=f"{source}:{worker}/{task}"))
    return pl.concat(parts, how="vertical")


def build_feature_table(
    root: StrPath,
    *,
    gap_cap: float = 1000.0,
    final_window: float = 10000.0,
    regression_chars: int = 30,
    fixations: bool = True,
) -> pl.DataFrame:
    """Features of every side-by-side question of an IFllm-layout folder.

    Parameters
    ----------
    root:
        The folder with ``query_logs_table.csv`` and ``user_behavior.tar.gz`` (or
        ``user_behavior/``).
    gap_cap, final_window, regression_chars, fixations:
        As for :func:`~tacitly.signals.behavior.features.question_features`
        (defaults: 1000.0, 10000.0, 30, True).

    Returns
    -------
    pl.DataFrame
        :data:`ID_COLUMNS`, :data:`TEXT_COLUMNS`, then the features (see
        :mod:`tacitly.signals.behavior.features`); one row per pairwise question, in the log's
        order.

    Raises
    ------
    InputError
        When the folder has no query log or no pairwise question, or a trace is malformed.

    Examples
    --------
    >>> table = build_feature_table("../shared/data/ifllm")  # doctest: +SKIP
    >>> table.height  # doctest: +SKIP
    568
    """
    folder = Path(root)
    log = read_pairwise_questions(folder)
    pairwise = log.filter("pairwise")
    if pairwise.is_empty():
        raise InputError("the query log has no side-by-side question", source=_query_log(folder))
    segments = load_segments(folder, log)
    features = question_features(
        segments,
        pairwise,
        gap_cap=gap_cap,
        final_window=final_window,
        regression_chars=regression_chars,
        fixations=fixations,
    )
    seen = segments.select(pl.col("query_ID").unique())
    table = pairwise.select(
        "query_ID",
        "user_id",
        "task_id",
        "label",
        pl.col("query_ID").is_in(seen["query_ID"].implode()).alias("has_traces"),
        *TEXT_COLUMNS,
    ).join(features, on="query_ID", how="left", maintain_order="left")
    _warn_about_gaps(table)
    _check_no_forbidden(table)
    return table


def _warn_about_gaps(table: pl.DataFrame) -> None:
    unlabeled = table.filter(pl.col("label").is_null()).height
    if unlabeled:
        warnings.warn(
            f"{unlabeled} side-by-side question(s) have no preference; they are kept with a "
            "null label and are not used for training or scoring",
            stacklevel=3,
        )
    missing = table.filter(~pl.col("has_traces"))["query_ID"].to_list()
    if missing:
        shown = ", ".join(str(q) for q in missing[:10]) + (", …" if len(missing) > 10 else "")
        warnings.warn(
            f"{len(missing)} question(s) have no traces (query_ID {shown}); their behaviour "
            "features are null",
            stacklevel=3,
        )


def _check_no_forbidden(table: pl.DataFrame) -> None:
    leaked = [c for c in table.columns if any(word in c for word in _FORBIDDEN)]
    if leaked:
        raise AssertionError(f"feature table holds columns derived from the ratings: {leaked}")


def feature_columns(table: pl.DataFrame, groups: tuple[str, ...] | None = None) -> list[str]:
    """Names of the feature columns of ``table``, optionally only those of some groups.

    Groups are column-name prefixes: ``gaze`` (answer-relative gaze measures), ``fix``
    (fixations), ``mouse`` (answer-relative and page mouse), ``agreement`` (gaze–mouse),
    ``prev_gaze``, ``prev_mouse`` (previous question), ``text`` (lengths).

    Parameters
    ----------
    table:
        A table from :func:`build_feature_table`.
    groups:
        Prefixes to keep (default: None, every feature).

    Returns
    -------
    list of str
        In the table's order.

    Examples
    --------
    >>> import polars as pl
    >>> t = pl.DataFrame({"query_ID": [1], "label": [1.0], "gaze_engaged_1": [2.0],
    ...                   "text_chars_1": [5.0]})
    >>> feature_columns(t, ("text",))
    ['text_chars_1']
    """
    skip = set(ID_COLUMNS) | set(TEXT_COLUMNS)
    names = [c for c in table.columns if c not in skip and table.schema[c].is_numeric()]
    if groups is None:
        return names
    return [c for c in names if any(c == g or c.startswith(g + "_") for g in groups)]
