"""Per-question features of side-by-side reading: gaze and mouse on the left and right answer.

Input is the segment table of :func:`tacitly.signals.behavior.segments.segment_task` (one row
per sample, streams ``(query_ID, modality, response)``) and the questions' texts. Output is
one row per question. Every column name says what it is:

``{modality}_{measure}_{1|2}``
    A measure of one answer (1 = left, 2 = right) for ``gaze`` or ``mouse``.
``…_diff``
    Antisymmetric: it changes sign when the two answers swap places (left minus right, or a
    log ratio left over right, or a balance ``(a - b) / (a + b)``).
no suffix
    Symmetric: the same whichever side an answer is on.

Definitions (for one stream, samples ordered by time)
-----------------------------------------------------
usable sample
    Mouse: every sample. Gaze: ``valid`` is not False (the webcam tracked the face; null, in
    older files without the flag, counts as usable). A gaze stream with no usable sample gives
    null gaze measures for that answer (the camera never saw the face), never zeros.
on the answer
    A usable sample with a ``char_index`` (the point was over the answer's text).
sample length
    Time to the stream's next sample (for the last sample: to the segment's end), capped at
    ``gap_cap`` ms so that a long pause (tracking lost, worker away) counts as at most
    ``gap_cap``.
``engaged``
    Sum of the lengths of the samples on the answer, in seconds.
``coverage``
    Largest ``char_index`` on the answer divided by the answer's length in characters
    (clipped to 1): how far into the answer the point went.
``pos_mean``, ``pos_var``
    Mean and (population) variance of ``char_index / length`` over samples on the answer.
``regressions``
    Count of backward jumps: consecutive on-answer samples whose ``char_index`` drops by more
    than ``regression_chars``; ``regression_rate`` divides by the number of steps.
``reread``
    Share of on-answer samples more than ``regression_chars`` characters behind the furthest
    point reached so far.
``pos_w0``, ``pos_w1``, ``pos_w2``
    Mean normalised position in the first, second and last third of the segment's time.
``engaged_final``
    Engaged seconds in the final phase: the ``final_window`` ms before the question's
    *reading end*, the time of the last sample of either modality on either answer (after
    it the worker rates and types the next question). ``last_look`` / ``first_look``: time of
    the last / first on-answer sample divided by the reading end (which answer was looked at
    last).
``visits``
    Number of times the point entered the answer (runs of on-answer samples).
``share_diff``, ``share_final_diff``
    ``(engaged_1 - engaged_2) / (engaged_1 + engaged_2)`` over the segment / final phase
    (null when neither answer was engaged). ``excess_share_diff``: ``share_diff`` minus the
    same balance of the answers' lengths in characters (attention beyond what length
    explains). ``last_side_diff``: +1 when the last on-answer sample was on the left answer,
    -1 on the right.
``switches``
    Changes of side between consecutive on-answer samples of both answers merged by time
    (looking back and forth).
``agreement``
    Over 1-second bins where both gaze and mouse were on an answer: the share of bins where
    they were on the same answer.
``mouse_page_*``
    The page coordinates of the mouse (``abs_mouse``) after the reading end (up to
    ``final_window`` ms later, while the worker rates), relative to the
    midline between the two answers, which is estimated per question from the samples where
    both a page and an answer-relative position are known: ``side_final_diff`` is the mean of
    ``(midline - x) / half-width`` (positive: left), ``side_last_diff`` the same for the
    last sample, ``travel_final`` the distance travelled then (px).
``fix_*``
    Fixations from I-DT (:func:`~tacitly.signals.gaze.fixations.detect_fixations_idt`) on the
    usable answer-relative gaze resampled to ``fixation_rate_hz``: count, total and mean
    duration per answer.
``text_*``
    Lengths (characters, words, lines) of both answers and of the question; their log ratios.
``prev_*``
    The previous question's ``gaze_share_diff``, ``mouse_share_diff``,
    ``gaze_share_final_diff`` and ``mouse_share_final_diff`` in the same task (null for a
    task's first question): how the worker behaved just before.

No feature reads the query log's ``preference``, ``likert_*`` or ``adjustment`` columns.
"""

from __future__ import annotations

import math

import polars as pl

from tacitly.errors import InputError
from tacitly.signals.gaze.fixations import detect_fixations_idt, resample

__all__ = [
    "STREAM_MEASURES",
    "fixation_features",
    "mirror_features",
    "question_features",
    "reading_end",
    "stream_features",
    "text_features",
]

STREAM_MEASURES: tuple[str, ...] = (
    "n_samples",
    "usable_share",
    "engaged",
    "engaged_final",
    "coverage",
    "pos_mean",
    "pos_var",
    "regressions",
    "regression_rate",
    "reread",
    "pos_w0",
    "pos_w1",
    "pos_w2",
    "first_look",
    "last_look",
    "visits",
)
"""Measures computed per ``(question, modality, answer)`` stream by :func:`stream_features`."""

_DIFF_MEASURES = ("engaged", "engaged_final", "coverage", "pos_mean", "last_look", "visits")
_PREVIOUS = (
    "gaze_share_diff",
    "mouse_share_diff",
    "gaze_share_final_diff",
    "mouse_share_final_diff",
)
_EPS = 1e-9


def _check_positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise InputError(f"{name} is {value}", field=name, expected="a positive number")


def _lengths(texts: pl.DataFrame) -> pl.DataFrame:
    for name in ("query_ID", "llm_response_1", "llm_response_2"):
        if name not in texts.columns:
            raise InputError("missing column", source="texts", field=name)
    return texts.select(
        pl.col("query_ID").cast(pl.Int64),
        pl.col("llm_response_1").fill_null("").str.len_chars().cast(pl.Float64).alias("len_1"),
        pl.col("llm_response_2").fill_null("").str.len_chars().cast(pl.Float64).alias("len_2"),
    )


def stream_features(
    segments: pl.DataFrame,
    texts: pl.DataFrame,
    *,
    gap_cap: float = 1000.0,
    final_window: float = 10000.0,
    regression_chars: int = 30,
) -> pl.DataFrame:
    """Measures of each answer-relative stream (see the module notes for definitions).

    Parameters
    ----------
    segments:
        Segment table of :func:`~tacitly.signals.behavior.segments.segment_task`.
    texts:
        ``query_ID``, ``llm_response_1``, ``llm_response_2`` (for the answers' lengths).
    gap_cap:
        Longest time one sample may count for, in ms (default: 1000.0).
    final_window:
        Length of the final phase before the reading end, in ms (default: 10000.0).
    regression_chars:
        A backward jump longer than this many characters is a regression (default: 30).

    Returns
    -------
    pl.DataFrame
        ``query_ID``, ``modality``, ``response`` and :data:`STREAM_MEASURES`; streams of page
        coordinates (``response`` 0) are left out.

    Examples
    --------
    >>> import polars as pl
    >>> seg = pl.DataFrame({"query_ID": [1, 1, 1, 1], "modality": ["mouse"] * 4,
    ...     "response": [1] * 4, "time": [0.0, 200.0, 3200.0, 3400.0],
    ...     "duration": [4000.0] * 4, "x": [1.0] * 4, "y": [1.0] * 4,
    ...     "valid": [True] * 4, "char_index": [10, 50, 5, None]})
    >>> texts = pl.DataFrame({"query_ID": [1], "llm_response_1": ["a" * 100],
    ...     "llm_response_2": ["b"]})
    >>> stream_features(seg, texts).select("engaged", "coverage", "regressions").rows()
    [(1.4, 0.5, 1)]
    """
    _check_positive("gap_cap", gap_cap)
    _check_positive("regression_chars", regression_chars)
    _check_positive("final_window", final_window)
    stream = ("query_ID", "modality", "response")
    length = pl.when(pl.col("response") == 1).then(pl.col("len_1")).otherwise(pl.col("len_2"))
    usable = pl.when(pl.col("modality") == "gaze").then(pl.col("valid").fill_null(True))
    frame = (
        segments.filter(pl.col("response") > 0)
        .join(_lengths(texts), on="query_ID", how="left")
        .join(reading_end(segments), on="query_ID", how="left")
        .with_columns(
            usable=usable.otherwise(True),
            length=pl.max_horizontal(length.fill_null(0.0), pl.lit(1.0)),
            step=pl.min_horizontal(
                pl.col("time").shift(-1).over(stream).fill_null(pl.col("duration"))
                - pl.col("time"),
                pl.lit(gap_cap),
            ).clip(lower_bound=0.0),
        )
        .with_columns(on=pl.col("usable") & pl.col("char_index").is_not_null())
        .with_columns(
            pos=pl.when("on").then((pl.col("char_index") / pl.col("length")).clip(0.0, 1.0)),
            final=(pl.col("time") >= pl.col("reading_end") - final_window)
            & (pl.col("time") <= pl.col("reading_end")),
            window=(3.0 * pl.col("time") / pl.col("duration").clip(lower_bound=_EPS))
            .floor()
            .clip(0, 2),
            entered=pl.col("on") & ~pl.col("on").shift(1).over(stream).fill_null(False),
        )
    )
    on_steps = (
        frame.filter("on")
        .with_columns(
            jump=pl.col("char_index").diff().over(stream),
            behind=pl.col("char_index").cum_max().over(stream) - pl.col("char_index"),
        )
        .group_by(stream)
        .agg(
            (pl.col("jump") < -regression_chars).sum().alias("regressions"),
            ((pl.col("jump") < -regression_chars).sum() / (pl.len() - 1).clip(lower_bound=1))
            .cast(pl.Float64)
            .alias("regression_rate"),
            (pl.col("behind") > regression_chars).mean().alias("reread"),
        )
    )
    on_time = pl.col("step").filter("on")
    _end = pl.col("reading_end").first().clip(lower_bound=1.0)
    measures = frame.group_by(stream).agg(
        pl.len().cast(pl.Float64).alias("n_samples"),
        pl.col("usable").mean().alias("usable_share"),
        pl.col("usable").any().alias("any_usable"),
        (on_time.sum() / 1000.0).alias("engaged"),
        (pl.col("step").filter(pl.col("on") & pl.col("final")).sum() / 1000.0).alias(
            "engaged_final"
        ),
        pl.col("pos").max().alias("coverage"),
        pl.col("pos").mean().alias("pos_mean"),
        pl.col("pos").var(ddof=0).alias("pos_var"),
        *(pl.col("pos").filter(pl.col("window") == w).mean().alias(f"pos_w{w}") for w in range(3)),
        (pl.col("time").filter("on").min() / _end).alias("first_look"),
        (pl.col("time").filter("on").max() / _end).alias("last_look"),
        pl.col("entered").sum().cast(pl.Float64).alias("visits"),
    )
    measures = measures.join(on_steps, on=list(stream), how="left").with_columns(
        pl.col("regressions").fill_null(0),
        pl.col("regression_rate").fill_null(0.0),
    )
    # A stream never tracked by the camera says nothing; its measures are null, not zero.
    unusable = ~pl.col("any_usable")
    return measures.select(
        *stream,
        *(
            pl.when(unusable).then(None).otherwise(pl.col(name)).alias(name)
            if name not in ("n_samples", "usable_share")
            else pl.col(name)
            for name in STREAM_MEASURES
        ),
    ).sort(stream)


def _on_answer(segments: pl.DataFrame) -> pl.DataFrame:
    return segments.filter(
        (pl.col("response") > 0)
        & pl.col("char_index").is_not_null()
        & ((pl.col("modality") == "mouse") | pl.col("valid").fill_null(True))
    )


def reading_end(segments: pl.DataFrame) -> pl.DataFrame:
    """Per question, the time (ms) of the last sample of any modality on either answer.

    Parameters
    ----------
    segments:
        Segment table.

    Returns
    -------
    pl.DataFrame
        ``query_ID``, ``reading_end``; questions never looked at are absent.

    Examples
    --------
    >>> import polars as pl
    >>> seg = pl.DataFrame({"query_ID": [1, 1], "modality": ["gaze", "mouse"],
    ...     "response": [1, 2], "time": [10.0, 30.0], "valid": [True, False],
    ...     "char_index": [3, 4]})
    >>> reading_end(seg).rows()
    [(1, 30.0)]
    """
    return (
        _on_answer(segments)
        .group_by("query_ID")
        .agg(pl.col("time").max().alias("reading_end"))
        .sort("query_ID")
    )


def _side_wide(streams: pl.DataFrame) -> pl.DataFrame:
    """One row per question: ``{modality}_{measure}_{response}`` plus left-minus-right diffs."""
    wide = streams.with_columns(
        pl.format("{}_{}", "modality", pl.col("response").cast(pl.String)).alias("key")
    ).pivot(on="key", index="query_ID", values=list(STREAM_MEASURES), separator="|")
    renamed = {name: _wide_name(name) for name in wide.columns if "|" in name}
    wide = wide.rename(renamed)
    for modality in ("gaze", "mouse"):
        for measure in STREAM_MEASURES:
            for side in ("1", "2"):
                name = f"{modality}_{measure}_{side}"
                if name not in wide.columns:
                    wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
    diffs = []
    for modality in ("gaze", "mouse"):
        left, right = pl.col(f"{modality}_engaged_1"), pl.col(f"{modality}_engaged_2")
        diffs.append(_balance(left, right).alias(f"{modality}_share_diff"))
        fl, fr = pl.col(f"{modality}_engaged_final_1"), pl.col(f"{modality}_engaged_final_2")
        diffs.append(_balance(fl, fr).alias(f"{modality}_share_final_diff"))
        diffs.extend(
            (pl.col(f"{modality}_{m}_1") - pl.col(f"{modality}_{m}_2")).alias(
                f"{modality}_{m}_diff"
            )
            for m in _DIFF_MEASURES
        )
    return wide.with_columns(diffs)


def _wide_name(pivoted: str) -> str:
    measure, key = pivoted.split("|", 1)
    modality, side = key.split("_", 1)
    return f"{modality}_{measure}_{side}"


def _balance(left: pl.Expr, right: pl.Expr) -> pl.Expr:
    total = left + right
    return pl.when(total > 0).then((left - right) / total)


def _switches_and_agreement(segments: pl.DataFrame) -> pl.DataFrame:
    on = (
        _on_answer(segments)
        .select("query_ID", "modality", "response", "time")
        .sort("query_ID", "modality", "time", "response")
    )
    last_side = (
        on.group_by("query_ID", "modality")
        .agg(pl.col("response").last().alias("side"))
        .with_columns(side=pl.when(pl.col("side") == 1).then(1.0).otherwise(-1.0))
        .pivot(on="modality", index="query_ID", values="side")
    )
    last_side = last_side.rename(
        {name: f"{name}_last_side_diff" for name in last_side.columns if name != "query_ID"}
    )
    switches = (
        on.with_columns(
            changed=(pl.col("response") != pl.col("response").shift(1)).over("query_ID", "modality")
        )
        .group_by("query_ID", "modality")
        .agg(pl.col("changed").fill_null(False).sum().cast(pl.Float64).alias("switches"))
        .pivot(on="modality", index="query_ID", values="switches")
    )
    switches = switches.rename(
        {name: f"{name}_switches" for name in switches.columns if name != "query_ID"}
    )
    bins = (
        on.with_columns(second=(pl.col("time") / 1000.0).floor().cast(pl.Int64))
        .group_by("query_ID", "modality", "second")
        .agg(pl.col("response").cast(pl.Float64).mean().round(0).alias("side"))
        .pivot(on="modality", index=["query_ID", "second"], values="side")
    )
    if {"gaze", "mouse"} <= set(bins.columns):
        agreement = (
            bins.drop_nulls(["gaze", "mouse"])
            .group_by("query_ID")
            .agg((pl.col("gaze") == pl.col("mouse")).mean().alias("agreement"))
        )
    else:
        agreement = pl.DataFrame(schema={"query_ID": pl.Int64, "agreement": pl.Float64})
    table = switches.join(agreement, on="query_ID", how="full", coalesce=True).join(
        last_side, on="query_ID", how="full", coalesce=True
    )
    names = (
        "gaze_switches",
        "mouse_switches",
        "agreement",
        "gaze_last_side_diff",
        "mouse_last_side_diff",
    )
    for name in names:
        if name not in table.columns:
            table = table.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
    return table.select("query_ID", *names)


def _page_mouse(segments: pl.DataFrame, *, final_window: float) -> pl.DataFrame:
    """Where the mouse is on the page during the final phase, relative to the answers' midline."""
    mouse = segments.filter(pl.col("modality") == "mouse")
    page = mouse.filter(pl.col("response") == 0).select(
        "query_ID", "time", "duration", pl.col("x").alias("page_x"), pl.col("y").alias("page_y")
    )
    rel = mouse.filter((pl.col("response") > 0) & pl.col("x").is_not_null()).select(
        "query_ID", "time", "response", "x"
    )
    # The left edge of each answer box on the page: page x minus box-relative x, same frame.
    edges = (
        rel.join(page, on=["query_ID", "time"], how="inner")
        .group_by("query_ID", "response")
        .agg((pl.col("page_x") - pl.col("x")).median().alias("edge"))
        .pivot(on="response", index="query_ID", values="edge")
    )
    for side in ("1", "2"):
        if side not in edges.columns:
            edges = edges.with_columns(pl.lit(None, dtype=pl.Float64).alias(side))
    # With two boxes of equal width side by side, the right box's left edge is the midline and
    # the distance between the two left edges is one box width.
    edges = edges.select(
        "query_ID",
        pl.col("2").alias("midline"),
        (pl.col("2") - pl.col("1")).alias("half_width"),
    ).filter(pl.col("half_width") > 0)
    final = (
        page.join(reading_end(segments), on="query_ID", how="inner")
        .filter(
            (pl.col("time") > pl.col("reading_end"))
            & (pl.col("time") <= pl.col("reading_end") + final_window)
        )
        .join(edges, on="query_ID", how="inner")
        .with_columns(
            side=(pl.col("midline") - pl.col("page_x")) / pl.col("half_width"),
            moved=(pl.col("page_x").diff().pow(2) + pl.col("page_y").diff().pow(2))
            .sqrt()
            .over("query_ID"),
        )
        .sort("query_ID", "time")
    )
    return final.group_by("query_ID").agg(
        pl.col("side").mean().alias("mouse_page_side_final_diff"),
        pl.col("side").drop_nulls().last().alias("mouse_page_side_last_diff"),
        pl.col("moved").sum().alias("mouse_page_travel_final"),
    )


def fixation_features(
    segments: pl.DataFrame,
    *,
    rate_hz: float = 30.0,
    dispersion_px: float = 120.0,
    min_duration: float = 100.0,
) -> pl.DataFrame:
    """I-DT fixations on each answer from the answer-relative webcam gaze.

    Usable gaze samples on the answer (see the module notes) are resampled onto a regular grid
    (:func:`~tacitly.signals.gaze.fixations.resample`, gaps up to 250 ms bridged), then
    :func:`~tacitly.signals.gaze.fixations.detect_fixations_idt` runs on the box-relative
    pixels.

    Parameters
    ----------
    segments:
        Segment table of :func:`~tacitly.signals.behavior.segments.segment_task`.
    rate_hz:
        Resampling rate in Hz (default: 30.0).
    dispersion_px:
        I-DT dispersion threshold in px; webcam gaze is noisy (default: 120.0).
    min_duration:
        Shortest fixation in ms (default: 100.0).

    Returns
    -------
    pl.DataFrame
        ``query_ID``, ``fix_count_{1,2}``, ``fix_time_{1,2}`` (s), ``fix_mean_{1,2}`` (ms),
        ``fix_count_diff``, ``fix_time_diff``; 0 for an answer with usable gaze but no
        fixation.

    Examples
    --------
    >>> import polars as pl
    >>> seg = pl.DataFrame({"query_ID": [1] * 8, "modality": ["gaze"] * 8,
    ...     "response": [1] * 8, "time": [0.0, 100, 200, 300, 400, 500, 600, 700],
    ...     "duration": [800.0] * 8, "x": [10.0] * 8, "y": [5.0] * 8,
    ...     "valid": [True] * 8, "char_index": [3] * 8})
    >>> fixation_features(seg).select("fix_count_1", "fix_time_1").rows()
    [(1.0, 0.7)]
    """
    _check_positive("rate_hz", rate_hz)
    _check_positive("dispersion_px", dispersion_px)
    gaze = segments.filter((pl.col("modality") == "gaze") & (pl.col("response") > 0)).select(
        "query_ID",
        "response",
        "time",
        "x",
        "y",
        (
            pl.col("valid").fill_null(True) & pl.col("x").is_not_null() & pl.col("y").is_not_null()
        ).alias("valid"),
    )
    keys = gaze.filter("valid").select("query_ID", "response").unique()
    columns = ["query_ID"] + [f"fix_{m}_{s}" for m in ("count", "time", "mean") for s in ("1", "2")]
    if keys.is_empty():
        return pl.DataFrame(
            schema={n: pl.Float64 if n != "query_ID" else pl.Int64 for n in columns}
        ).with_columns(
            pl.lit(None, dtype=pl.Float64).alias("fix_count_diff"),
            pl.lit(None, dtype=pl.Float64).alias("fix_time_diff"),
        )
    grid = resample(gaze, rate_hz=rate_hz, max_gap=250.0, by=["query_ID", "response"])
    found = detect_fixations_idt(
        grid,
        dispersion_threshold=dispersion_px,
        unit="px",
        min_duration=min_duration,
        max_gap=1.5 * 1000.0 / rate_hz,
        by=["query_ID", "response"],
    )
    per_side = keys.join(
        found.group_by("query_ID", "response").agg(
            pl.len().cast(pl.Float64).alias("count"),
            (pl.col("duration").sum() / 1000.0).alias("time"),
            pl.col("duration").mean().alias("mean"),
        ),
        on=["query_ID", "response"],
        how="left",
    ).with_columns(pl.col("count", "time").fill_null(0.0))
    wide = per_side.pivot(
        on="response", index="query_ID", values=["count", "time", "mean"], separator="_"
    )
    wide = wide.rename({n: f"fix_{n}" for n in wide.columns if n != "query_ID"})
    for name in columns[1:]:
        if name not in wide.columns:
            wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
    return wide.select(columns).with_columns(
        (pl.col("fix_count_1") - pl.col("fix_count_2")).alias("fix_count_diff"),
        (pl.col("fix_time_1") - pl.col("fix_time_2")).alias("fix_time_diff"),
    )


def text_features(texts: pl.DataFrame) -> pl.DataFrame:
    """Lengths of the two answers and of the question, in characters, words and lines.

    Parameters
    ----------
    texts:
        ``query_ID``, ``user_query``, ``llm_response_1``, ``llm_response_2``.

    Returns
    -------
    pl.DataFrame
        ``query_ID``, ``text_chars_{1,2}``, ``text_words_{1,2}``, ``text_lines_{1,2}``,
        ``text_query_chars``, and ``text_chars_diff``, ``text_words_diff`` (log ratios
        left over right, of lengths plus one).

    Examples
    --------
    >>> import polars as pl
    >>> texts = pl.DataFrame({"query_ID": [1], "user_query": ["Why?"],
    ...     "llm_response_1": ["Because it is."], "llm_response_2": ["No.\\nReally."]})
    >>> text_features(texts).select("text_words_1", "text_lines_2", "text_query_chars").rows()
    [(3.0, 2.0, 4.0)]
    """
    if "user_query" not in texts.columns:
        raise InputError("missing column", source="texts", field="user_query")
    columns = []
    for side in ("1", "2"):
        text = pl.col(f"llm_response_{side}").fill_null("")
        columns += [
            text.str.len_chars().cast(pl.Float64).alias(f"text_chars_{side}"),
            text.str.count_matches(r"\S+").cast(pl.Float64).alias(f"text_words_{side}"),
            (text.str.strip_chars().str.count_matches("\n") + 1)
            .cast(pl.Float64)
            .alias(f"text_lines_{side}"),
        ]
    table = _lengths(texts).select("query_ID").with_columns(texts.select(columns))
    table = table.with_columns(
        texts["user_query"].fill_null("").str.len_chars().cast(pl.Float64).alias("text_query_chars")
    )
    return table.with_columns(
        ((pl.col(f"text_{m}_1") + 1).log() - (pl.col(f"text_{m}_2") + 1).log()).alias(
            f"text_{m}_diff"
        )
        for m in ("chars", "words")
    )


def question_features(
    segments: pl.DataFrame,
    texts: pl.DataFrame,
    *,
    gap_cap: float = 1000.0,
    final_window: float = 10000.0,
    regression_chars: int = 30,
    fixations: bool = True,
) -> pl.DataFrame:
    """All behaviour and text features, one row per question of ``texts``.

    Parameters
    ----------
    segments:
        Segment table of :func:`~tacitly.signals.behavior.segments.segment_task` (any number
        of tasks).
    texts:
        One row per question: ``query_ID``, ``task_id``, ``query_timestamp``,
        ``user_query``, ``llm_response_1``, ``llm_response_2`` (``task_id`` and
        ``query_timestamp`` order the previous-question features; without them those are
        null).
    gap_cap, final_window, regression_chars:
        As for :func:`stream_features` (defaults: 1000.0, 10000.0, 30).
    fixations:
        Add the I-DT fixation features (default: True).

    Returns
    -------
    pl.DataFrame
        ``query_ID`` then the features named in the module notes, in the order of ``texts``.
        A question without any sample keeps its row with null behaviour features.

    Examples
    --------
    >>> import polars as pl
    >>> from tacitly.signals.behavior.segments import SEGMENT_SCHEMA
    >>> texts = pl.DataFrame({"query_ID": [1], "user_query": ["Why?"],
    ...     "llm_response_1": ["Yes."], "llm_response_2": ["No."]})
    >>> table = question_features(pl.DataFrame(schema=SEGMENT_SCHEMA), texts)
    >>> table.select("query_ID", "gaze_engaged_1", "text_chars_1").rows()
    [(1, None, 4.0)]
    """
    streams = stream_features(
        segments,
        texts,
        gap_cap=gap_cap,
        final_window=final_window,
        regression_chars=regression_chars,
    )
    parts = [
        _side_wide(streams),
        _switches_and_agreement(segments),
        _page_mouse(segments, final_window=final_window),
    ]
    if fixations:
        parts.append(fixation_features(segments))
    table = text_features(texts)
    for part in parts:
        table = table.join(part, on="query_ID", how="left")
    length_balance = (pl.col("text_chars_1") - pl.col("text_chars_2")) / (
        pl.col("text_chars_1") + pl.col("text_chars_2")
    ).clip(lower_bound=1.0)
    table = table.with_columns(
        (pl.col(f"{m}_share_diff") - length_balance).alias(f"{m}_excess_share_diff")
        for m in ("gaze", "mouse")
    )
    table = _with_previous(table, texts)
    return table.with_columns(
        pl.col(pl.Float32, pl.Int64, pl.UInt32).exclude("query_ID").cast(pl.Float64)
    )


def _with_previous(table: pl.DataFrame, texts: pl.DataFrame) -> pl.DataFrame:
    if not {"task_id", "query_timestamp"} <= set(texts.columns) or "user_id" not in texts.columns:
        return table.with_columns(
            pl.lit(None, dtype=pl.Float64).alias(f"prev_{name}") for name in _PREVIOUS
        )
    order = texts.select(pl.col("query_ID").cast(pl.Int64), "user_id", "task_id", "query_timestamp")
    ranked = (
        table.select("query_ID", *_PREVIOUS)
        .join(order, on="query_ID", how="left")
        .sort("user_id", "task_id", "query_timestamp", "query_ID")
        .select(
            "query_ID",
            *(
                pl.col(name).shift(1).over("user_id", "task_id").alias(f"prev_{name}")
                for name in _PREVIOUS
            ),
        )
    )
    return table.join(ranked, on="query_ID", how="left")


def mirror_features(table: pl.DataFrame) -> pl.DataFrame:
    """The same questions with the two answers swapped: ``_1``↔``_2``, ``_diff`` negated.

    Used to train side-symmetric models (each question seen both ways round).

    Parameters
    ----------
    table:
        A feature table named as in the module notes.

    Returns
    -------
    pl.DataFrame
        Same columns, same order.

    Examples
    --------
    >>> import polars as pl
    >>> t = pl.DataFrame({"a_1": [1.0], "a_2": [2.0], "a_diff": [-1.0], "n": [3.0]})
    >>> mirror_features(t).rows()
    [(2.0, 1.0, 1.0, 3.0)]
    """
    swapped = []
    for name in table.columns:
        if name.endswith("_1") and name[:-2] + "_2" in table.columns:
            swapped.append(pl.col(name[:-2] + "_2").alias(name))
        elif name.endswith("_2") and name[:-2] + "_1" in table.columns:
            swapped.append(pl.col(name[:-2] + "_1").alias(name))
        elif name.endswith("_diff"):
            swapped.append((-pl.col(name)).alias(name))
        else:
            swapped.append(pl.col(name))
    return table.select(swapped)
