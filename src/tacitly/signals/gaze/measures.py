"""Word-level reading measures from a fixation sequence, and their averages over readers.

:func:`reading_measures` turns fixations that carry a word index (``aoi``) into one row per word
per reading (a reader reading one text); :func:`aggregate_readers` averages those rows over
readers into the "word measures" shape (``text_id, word_index, word, nFix, FFD, GPT, TRT,
fixProp``); :func:`fit_cmcl_scale` and :func:`rescale_to_cmcl` put averaged measures on the 0–100
scale of the CMCL 2021 shared task.

Definitions
-----------
The *reading order* is the order of the fixation rows within one reading. Word ``w`` is
*passed* once any word to its right (``aoi > w``) has been fixated. A *run* (a *dwell*) is a
maximal stretch of consecutive on-text fixations on the same word. The *first pass* of ``w`` is
its first run, provided that run starts before ``w`` was passed; otherwise ``w`` was *skipped*.
Following Rayner (1998) and the EyeLink Data Viewer interest-area report:

``nFix``
    Number of fixations on the word (EyeLink ``IA_FIXATION_COUNT``).
``TRT``
    Total reading time: summed duration of all fixations on the word (``IA_DWELL_TIME``).
``skipped``
    True when the word received no first-pass fixation: it was never fixated, or a word to its
    right was fixated before it (``IA_SKIP``).
``FFD``
    First fixation duration: duration of the first first-pass fixation; null when skipped.
``SFD``
    Single fixation duration: ``FFD`` when the first pass has exactly one fixation, else null.
``FPRT``
    First-pass reading time (gaze duration): summed duration of the first-pass run; null when
    skipped.
``GPT``
    Go-past time (regression-path duration): summed duration of the fixations from the first
    first-pass fixation on the word up to, not including, the first fixation on a word to its
    right (or the end of the reading). It includes regressions to earlier words and refixations
    of the word itself. Null when skipped.
``RRT``
    Re-reading time: ``TRT - FPRT`` (``FPRT`` counted as 0 when skipped), i.e. all time on the
    word outside its first pass, including the fixations of a word that was skipped and
    looked at later.
``regression_in`` / ``n_regressions_in``
    Whether / how often the word was entered from a word to its right, at any time
    (``IA_REGRESSION_IN``, ``IA_REGRESSION_IN_COUNT``).
``regression_out``
    Whether the first pass ended with a saccade to an earlier word; null when skipped, false
    when the reading ends during the first pass.
``n_regressions_out``
    Number of exits from the word to an earlier word before the word was passed (within the
    ``GPT`` window). EyeLink's ``IA_REGRESSION_OUT_COUNT`` agrees on all but a handful of words
    of the OneStop sample (see the tests).
``n_runs``
    Number of runs on the word (0 when never fixated).

EyeLink Data Viewer and eyekit do not restrict their "first" measures to the first pass; these
columns reproduce them (null when the word was never fixated; EyeLink and eyekit report 0):

``first_fixation_any_pass``
    Duration of the first fixation on the word whenever it happened
    (``IA_FIRST_FIXATION_DURATION``, eyekit ``initial_fixation_duration``).
``first_run_any_pass``
    Summed duration of the first run on the word (``IA_FIRST_RUN_DWELL_TIME``, eyekit
    ``gaze_duration``).
``go_past_any_pass``
    ``GPT`` measured from the first fixation on the word whenever it happened
    (``IA_REGRESSION_PATH_DURATION``, eyekit ``go_past_duration``).

For a word read in the first pass, each of these equals its first-pass counterpart.

Fixations on no word
--------------------
A fixation with a null ``aoi`` (on a margin, between lines, off the text) does not count for any
word, does not break a run (``A, off-text, A`` is one run of two fixations) and is invisible to
regression counts. By default it adds nothing to ``GPT`` either: EyeLink Data Viewer leaves such
fixations out of ``IA_REGRESSION_PATH_DURATION``, which this reproduces on every word of the
OneStop sample. With ``off_text_in_go_past=True`` their durations are added when they fall
inside a go-past window, as eyekit's ``go_past_duration`` does (it has no notion of off-text
fixations and counts every fixation not to the right of the word).

References
----------
Rayner, K. (1998). Eye movements in reading and information processing: 20 years of research.
Psychological Bulletin, 124(3), 372–422.

SR Research (2021). EyeLink Data Viewer User's Manual, "Interest Area Report".

Hollenstein, N., et al. (2021). CMCL 2021 Shared Task on Eye-Tracking Prediction.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import polars as pl

from tacitly.errors import InputError
from tacitly.signals.gaze.columns import group_columns

__all__ = [
    "CMCL_FEATURES",
    "MEASURE_COLUMNS",
    "aggregate_readers",
    "fit_cmcl_scale",
    "reading_measures",
    "rescale_to_cmcl",
]

CMCL_FEATURES = ("nFix", "FFD", "GPT", "TRT", "fixProp")
"""The five features of the CMCL 2021 shared task, in its column order."""

MEASURE_COLUMNS = (
    "nFix",
    "FFD",
    "SFD",
    "FPRT",
    "GPT",
    "TRT",
    "RRT",
    "skipped",
    "regression_in",
    "n_regressions_in",
    "regression_out",
    "n_regressions_out",
    "n_runs",
    "first_fixation_any_pass",
    "first_run_any_pass",
    "go_past_any_pass",
)
"""The measure columns of :func:`reading_measures`, in output order."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_ROW = "__tacitly_row"
_GROUP = "__tacitly_group"
_N_WORDS = "n_words"


# --------------------------------------------------------------------------------------------
# Per-reading measures
# --------------------------------------------------------------------------------------------


def reading_measures(
    fixations: pl.DataFrame,
    *,
    aois: pl.DataFrame | None = None,
    n_words: int | pl.DataFrame | None = None,
    by: str | Sequence[str] = (),
    trial_by: Sequence[str] | None = None,
    off_text_in_go_past: bool = False,
    source: str | None = None,
) -> pl.DataFrame:
    """Compute word-level reading measures, one row per word per reading.

    The definitions are in the module docstring. Rows of ``fixations`` must be in reading order
    within each group; groups may be interleaved.

    Parameters
    ----------
    fixations:
        Fixation table with ``onset``, ``duration`` (ms) and ``aoi`` (0-based word index, null
        for a fixation on no word), plus the ``by`` columns.
    aois:
        Word table with ``aoi`` (0, 1, ..., n-1 for each text), optional ``text`` (becomes the
        ``word`` column) and the ``trial_by`` columns (default: None).
    n_words:
        Instead of ``aois``: the number of words of every text (an int), or a table with the
        ``trial_by`` columns and ``n_words`` (default: None). One of ``aois`` and ``n_words`` is
        required, so that words nobody fixated still get rows.
    by:
        Columns that identify one reading, e.g. ``("trial", "reader")`` (default: ``()``, the
        whole table is one reading).
    trial_by:
        The columns of ``by`` that identify the text, used to look words up in ``aois`` or
        ``n_words`` (default: None, the ``by`` columns that the word table has).
    off_text_in_go_past:
        Add fixations on no word to ``GPT`` and ``go_past_any_pass`` when they fall inside the
        go-past window (default: False, as EyeLink Data Viewer).
    source:
        Name of the input, used in error messages (default: None).

    Returns
    -------
    pl.DataFrame
        The ``by`` columns, ``word_index``, ``word`` (when ``aois`` has ``text``) and the
        columns of :data:`MEASURE_COLUMNS`; durations in ms (Float64), counts Int64, flags
        Boolean. Readings are sorted by ``by``, words by index.

    Raises
    ------
    InputError
        A column is missing, an ``aoi`` is not a valid word index of its text, a ``duration``
        is missing or negative, or ``onset`` decreases within a reading (naming the row).

    Examples
    --------
    >>> fixations = pl.DataFrame({
    ...     "onset": [0.0, 250.0, 450.0, 700.0, 900.0],
    ...     "duration": [200.0, 180.0, 220.0, 150.0, 210.0],
    ...     "aoi": [0, 1, 2, 1, 3],
    ... })
    >>> table = reading_measures(fixations, n_words=4)
    >>> table["GPT"].to_list()
    [200.0, 180.0, 370.0, 210.0]
    >>> table["regression_in"].to_list()
    [False, True, False, False]
    """
    by = group_columns(by)
    by = list(by)
    fixations = _checked_fixations(fixations, by=by, source=source)
    words = _word_table(aois=aois, n_words=n_words, by=by, trial_by=trial_by, source=source)
    ordered, keys = _group_readings(fixations, by=by)
    counts = _words_per_reading(keys, words, source=source)
    _check_word_indices(ordered, counts, source=source)

    group = ordered[_GROUP].to_numpy().astype(np.int64)
    aoi = ordered["aoi"].fill_null(-1).to_numpy().astype(np.int64)
    duration = ordered["duration"].to_numpy().astype(np.float64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    columns = _measures(
        group=group,
        aoi=aoi,
        duration=duration,
        offsets=offsets,
        off_text_in_go_past=off_text_in_go_past,
    )

    reading_of_word = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    word_index = np.arange(offsets[-1], dtype=np.int64) - offsets[reading_of_word]
    table = (
        keys.select(pl.col(by).gather(reading_of_word)).with_columns(
            pl.Series("word_index", word_index, dtype=pl.Int64)
        )
        if by
        else pl.DataFrame({"word_index": pl.Series(word_index, dtype=pl.Int64)})
    )
    if "word" in words.columns:
        table = _attach_word_text(table, words, trial_by=_text_columns(words))
    return table.with_columns(*(columns[name] for name in MEASURE_COLUMNS))


def _checked_fixations(
    fixations: pl.DataFrame, *, by: Sequence[str], source: str | None
) -> pl.DataFrame:
    needed = ["onset", "duration", "aoi", *by]
    missing = [name for name in needed if name not in fixations.columns]
    if missing:
        raise InputError(
            f"fixation table lacks column(s) {', '.join(map(repr, missing))}",
            source=source,
            field=missing[0],
            expected=f"columns {', '.join(needed)}",
        )
    table = fixations.select(needed).with_row_index(_ROW)
    for name in ("onset", "duration", "aoi"):
        if not table.schema[name].is_numeric() and table.schema[name] != pl.Null:
            raise InputError(
                f"column is {table.schema[name]}, not numeric",
                source=source,
                field=name,
                expected="numbers (aoi: integer word indices or null)",
            )
    _raise_at_first(
        table,
        pl.col("duration").is_null() | pl.col("duration").is_nan(),
        "duration is missing",
        source=source,
        field="duration",
        expected="a duration in ms for every fixation",
    )
    _raise_at_first(
        table,
        pl.col("duration") < 0,
        "duration is negative",
        source=source,
        field="duration",
        expected="durations ≥ 0 ms",
    )
    _raise_at_first(
        table,
        pl.col("onset").is_null() | pl.col("onset").is_nan(),
        "onset is missing",
        source=source,
        field="onset",
        expected="an onset in ms for every fixation",
    )
    aoi = pl.col("aoi")
    if table.schema["aoi"].is_float():
        _raise_at_first(
            table,
            aoi.is_not_null() & (aoi.is_nan() | (aoi != aoi.round())),
            "aoi is not a whole number",
            source=source,
            field="aoi",
            expected="a 0-based word index or null",
        )
    table = table.with_columns(aoi.cast(pl.Int64))
    going_back = pl.col("onset").diff().over(by) < 0 if by else pl.col("onset").diff() < 0
    _raise_at_first(
        table,
        going_back,
        "onset is earlier than the previous fixation of the same reading",
        source=source,
        field="onset",
        expected="fixations in temporal order within each reading",
    )
    return table


def _raise_at_first(
    table: pl.DataFrame,
    bad: pl.Expr,
    message: str,
    *,
    source: str | None,
    field: str,
    expected: str,
) -> None:
    hits = table.filter(bad.fill_null(False))
    if hits.height:
        raise InputError(
            message, source=source, row=int(hits[_ROW][0]) + 1, field=field, expected=expected
        )


def _word_table(
    *,
    aois: pl.DataFrame | None,
    n_words: int | pl.DataFrame | None,
    by: Sequence[str],
    trial_by: Sequence[str] | None,
    source: str | None,
) -> pl.DataFrame:
    """Return one row per text: its key columns, ``n_words`` and (with AOI text) ``word``."""
    if (aois is None) == (n_words is None):
        raise InputError(
            "give exactly one of aois and n_words",
            source=source,
            expected="an AOI table with aoi (and text), or the number of words per text",
        )
    if n_words is not None and not isinstance(n_words, pl.DataFrame):
        if isinstance(n_words, bool) or not isinstance(n_words, int):
            raise InputError(
                f"n_words must be a whole number or a table, not {type(n_words).__name__}",
                source=source,
                field="n_words",
                expected="an int ≥ 0, or a table with the trial_by columns and n_words",
            )
        if n_words < 0:
            raise InputError(
                "n_words is negative", source=source, field="n_words", expected="a count ≥ 0"
            )
        return pl.DataFrame({_N_WORDS: [n_words]}, schema={_N_WORDS: pl.Int64})
    table = aois if aois is not None else n_words
    assert isinstance(table, pl.DataFrame)
    keys = [c for c in by if c in table.columns] if trial_by is None else list(trial_by)
    missing = [c for c in keys if c not in table.columns or c not in by]
    if missing:
        raise InputError(
            f"text column {missing[0]!r} must be both in by and in the word table",
            source=source,
            field=missing[0],
            expected=f"trial_by ⊆ by = {list(by)}",
        )
    if aois is None:
        if _N_WORDS not in table.columns:
            raise InputError(
                "n_words table lacks its count column",
                source=source,
                field=_N_WORDS,
                expected=f"columns {[*keys, _N_WORDS]}",
            )
        return table.select(*keys, pl.col(_N_WORDS).cast(pl.Int64))
    return _texts_from_aois(table, keys=keys, source=source)


def _texts_from_aois(table: pl.DataFrame, *, keys: list[str], source: str | None) -> pl.DataFrame:
    if "aoi" not in table.columns:
        raise InputError(
            "AOI table lacks column 'aoi'",
            source=source,
            field="aoi",
            expected="a 0-based word index per row",
        )
    summary = [
        pl.len().cast(pl.Int64).alias(_N_WORDS),
        pl.col("aoi").min().alias("__min"),
        pl.col("aoi").max().alias("__max"),
        pl.col("aoi").n_unique().alias("__unique"),
    ]
    word = pl.col("text").sort_by("aoi").alias("word")
    has_text = "text" in table.columns
    if keys:
        texts = table.group_by(keys, maintain_order=True).agg(*summary, *[word] * has_text)
    else:  # polars cannot group by no key: one text, summarised by a plain select
        texts = table.select(*summary, *[word.implode()] * has_text)
    broken = texts.filter(
        (pl.col("__min") != 0)
        | (pl.col("__max") != pl.col(_N_WORDS) - 1)
        | (pl.col("__unique") != pl.col(_N_WORDS))
    )
    if broken.height:
        where = ", ".join(f"{k}={broken[k][0]!r}" for k in keys) or "the AOI table"
        raise InputError(
            f"AOI indices of {where} are not 0, 1, ..., n-1",
            source=source,
            field="aoi",
            expected="each word index exactly once per text, starting at 0",
        )
    return texts.drop("__min", "__max", "__unique")


def _text_columns(words: pl.DataFrame) -> list[str]:
    return [c for c in words.columns if c not in (_N_WORDS, "word")]


def _group_readings(
    fixations: pl.DataFrame, *, by: Sequence[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Make each reading contiguous (order inside kept) and number the readings 0, 1, ..."""
    if not by:
        ordered = fixations.with_columns(pl.lit(0, dtype=pl.Int64).alias(_GROUP))
        return ordered, ordered.head(1).select(_GROUP, _ROW)
    ordered = fixations.sort(by, maintain_order=True, nulls_last=True)
    changed = pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in by)
    ordered = ordered.with_columns(
        (changed.fill_null(True).cast(pl.Int64).cum_sum() - 1).alias(_GROUP)
    )
    keys = ordered.group_by(_GROUP, maintain_order=True).agg(
        *(pl.col(c).first() for c in by), pl.col(_ROW).first()
    )
    return ordered, keys


def _words_per_reading(keys: pl.DataFrame, words: pl.DataFrame, *, source: str | None) -> IntArray:
    text_keys = _text_columns(words)
    if not text_keys:
        if words.height != 1:
            raise InputError(
                "the word table has several texts but none of its columns is in by",
                source=source,
                expected="trial_by naming the text columns",
            )
        return np.full(keys.height, int(words[_N_WORDS][0]), dtype=np.int64)
    joined = keys.join(
        words.select(*text_keys, _N_WORDS),
        on=text_keys,
        how="left",
        nulls_equal=True,
        maintain_order="left",
    )
    unknown = joined.filter(pl.col(_N_WORDS).is_null())
    if unknown.height:
        where = ", ".join(f"{k}={unknown[k][0]!r}" for k in text_keys)
        raise InputError(
            f"no words are known for the text {where}",
            source=source,
            row=int(unknown[_ROW][0]) + 1,
            field=text_keys[0],
            expected="every text of the fixations in the word table",
        )
    counts: IntArray = joined[_N_WORDS].to_numpy().astype(np.int64)
    return counts


def _check_word_indices(ordered: pl.DataFrame, counts: IntArray, *, source: str | None) -> None:
    limit = pl.Series(counts)[ordered[_GROUP]]
    bad = ordered.filter((pl.col("aoi") < 0) | (pl.col("aoi") >= limit))
    if bad.height:
        n = int(counts[int(bad[_GROUP][0])])
        raise InputError(
            f"aoi {bad['aoi'][0]} is not a word of this text, which has {n} words",
            source=source,
            row=int(bad[_ROW][0]) + 1,
            field="aoi",
            expected=f"0 ≤ aoi < {n}, or null for a fixation on no word",
        )


def _attach_word_text(
    table: pl.DataFrame, words: pl.DataFrame, *, trial_by: list[str]
) -> pl.DataFrame:
    texts = (
        words.select(*trial_by, "word")
        .with_columns(pl.int_ranges(pl.col("word").list.len(), dtype=pl.Int64).alias("word_index"))
        .explode("word", "word_index")
    )
    return table.join(
        texts, on=[*trial_by, "word_index"], how="left", nulls_equal=True, maintain_order="left"
    )


def _measures(
    *,
    group: IntArray,
    aoi: IntArray,
    duration: FloatArray,
    offsets: IntArray,
    off_text_in_go_past: bool,
) -> dict[str, pl.Series]:
    """All measures for every word slot (``offsets[reading] + word_index``), vectorised.

    ``aoi`` is -1 for a fixation on no word; readings are contiguous and numbered 0, 1, ...
    """
    total = int(offsets[-1])
    on = aoi >= 0
    running = _running_max(group, aoi)
    before = np.full_like(running, -1)
    before[1:] = np.where(group[1:] == group[:-1], running[:-1], -1)
    # A fixation on a new rightmost word starts that word's first pass.
    starts_first_pass = on & (aoi > before)

    at = np.flatnonzero(on)
    word, reading, dur = aoi[at], group[at], duration[at]
    slot = offsets[reading] + word
    n_fix = np.bincount(slot, minlength=total).astype(np.int64)
    trt = np.bincount(slot, weights=dur, minlength=total)

    new_run = np.ones(slot.size, dtype=bool)
    new_run[1:] = slot[1:] != slot[:-1]
    run_id = np.cumsum(new_run) - 1
    run_duration = np.bincount(run_id, weights=dur)
    run_length = np.bincount(run_id)
    run_last = np.flatnonzero(np.append(new_run[1:], True))
    n_runs = np.bincount(slot[new_run], minlength=total).astype(np.int64)

    fixated, first = np.unique(slot, return_index=True)
    first_run = run_id[first]
    in_first_pass = starts_first_pass[at[first]]
    after_run = run_last[first_run] + 1
    has_next = after_run < slot.size
    nxt = np.minimum(after_run, max(slot.size - 1, 0))
    exits_left = has_next & (reading[nxt] == reading[first]) & (word[nxt] < word[first])

    weights = duration if off_text_in_go_past else np.where(on, duration, 0.0)
    cumulative = np.concatenate([[0.0], np.cumsum(weights)])
    start = at[first]
    stop = _next_to_the_right(group, aoi, start)
    go_past = cumulative[stop] - cumulative[start]

    same_reading = reading[1:] == reading[:-1]
    regression = same_reading & (word[1:] < word[:-1])
    n_in = np.bincount(slot[1:][regression], minlength=total).astype(np.int64)
    from_frontier = regression & (word[:-1] == running[at][:-1])
    n_out = np.bincount(slot[:-1][from_frontier], minlength=total).astype(np.int64)

    def spread(values: npt.NDArray[np.generic], fill: float | bool) -> npt.NDArray[np.generic]:
        # An empty selection can arrive with an integer dtype; NaN fills need a float one.
        full = np.full(total, fill, dtype=np.result_type(values.dtype, type(fill)))
        full[fixated] = values
        return full

    first_pass = spread(in_first_pass, False).astype(bool)
    ever = n_fix > 0
    ffd = spread(dur[first], np.nan)
    single = spread(run_length[first_run] == 1, False).astype(bool)
    fprt = spread(run_duration[first_run], np.nan)
    return {
        "nFix": pl.Series("nFix", n_fix, dtype=pl.Int64),
        "FFD": _masked("FFD", ffd, first_pass),
        "SFD": _masked("SFD", ffd, first_pass & single),
        "FPRT": _masked("FPRT", fprt, first_pass),
        "GPT": _masked("GPT", spread(go_past, np.nan), first_pass),
        "TRT": pl.Series("TRT", trt, dtype=pl.Float64),
        "RRT": pl.Series("RRT", trt - np.where(first_pass, fprt, 0.0), dtype=pl.Float64),
        "skipped": pl.Series("skipped", ~first_pass, dtype=pl.Boolean),
        "regression_in": pl.Series("regression_in", n_in > 0, dtype=pl.Boolean),
        "n_regressions_in": pl.Series("n_regressions_in", n_in, dtype=pl.Int64),
        "regression_out": _masked(
            "regression_out", spread(exits_left, False).astype(bool), first_pass
        ),
        "n_regressions_out": pl.Series("n_regressions_out", n_out, dtype=pl.Int64),
        "n_runs": pl.Series("n_runs", n_runs, dtype=pl.Int64),
        "first_fixation_any_pass": _masked("first_fixation_any_pass", ffd, ever),
        "first_run_any_pass": _masked("first_run_any_pass", fprt, ever),
        "go_past_any_pass": _masked("go_past_any_pass", spread(go_past, np.nan), ever),
    }


def _masked(name: str, values: npt.NDArray[np.generic], valid: BoolArray) -> pl.Series:
    """``values`` where ``valid``, null elsewhere."""
    frame = pl.DataFrame({"v": values, "ok": valid})
    return frame.select(pl.when(pl.col("ok")).then(pl.col("v")).alias(name)).to_series()


def _running_max(group: IntArray, aoi: IntArray) -> IntArray:
    """Rightmost word fixated so far in each reading (-1 before the first on-text fixation)."""
    if aoi.size == 0:
        return aoi.copy()
    # Lifting each reading above the previous one lets one cumulative max serve all readings.
    span = int(aoi.max()) + 2
    lifted = aoi + group * span
    result: IntArray = np.maximum.accumulate(lifted) - group * span
    return result


def _next_to_the_right(group: IntArray, aoi: IntArray, start: IntArray) -> IntArray:
    """For each ``start``, the first later fixation of its reading on a word right of
    ``aoi[start]``, or the end of that reading.

    A sparse table of range maxima (block ``k`` holds the maximum of ``2**k`` fixations) lets
    every query walk forward in at most log2(reading length) vectorised jumps.
    """
    n = aoi.size
    if start.size == 0:
        return start.copy()
    end = np.searchsorted(group, group[start], side="right")
    longest = int(np.max(np.bincount(group)))
    blocks = [aoi]
    width = 1
    while width * 2 <= longest:
        previous = blocks[-1]
        widened = previous.copy()
        widened[: n - width] = np.maximum(previous[: n - width], previous[width:])
        blocks.append(widened)
        width *= 2
    threshold = aoi[start]
    position = start + 1
    for level in range(len(blocks) - 1, -1, -1):
        step = 1 << level
        inside = position + step <= end
        peek = blocks[level][np.minimum(position, n - 1)]
        position = np.where(inside & (peek <= threshold), position + step, position)
    return position


# --------------------------------------------------------------------------------------------
# Averages over readers and the CMCL scale
# --------------------------------------------------------------------------------------------


def aggregate_readers(
    measures: pl.DataFrame,
    *,
    by: str | Sequence[str] = (),
    columns: Sequence[str] = ("nFix", "FFD", "GPT", "TRT"),
    zeros_for_missing: bool = True,
    any_pass: bool = False,
    source: str | None = None,
) -> pl.DataFrame:
    """Average per-reading word measures over readers, in the "word measures" shape.

    Every row of ``measures`` with the same ``by`` values and ``word_index`` is taken to be one
    reader's reading of that word.

    Parameters
    ----------
    measures:
        Output of :func:`reading_measures` (at least ``word_index``, ``nFix``, the ``by``
        columns and ``columns``).
    by:
        Columns that identify the text, e.g. ``("trial",)`` (default: ``()``, one text).
    columns:
        Measures to average (default: ``("nFix", "FFD", "GPT", "TRT")``). Boolean columns
        average to proportions.
    zeros_for_missing:
        Count a null measure (FFD, GPT, ... of a reader who skipped the word) as 0 in the mean
        (default: True). This is what the CMCL 2021 data show: their FFD, GPT and TRT shrink in
        proportion to ``fixProp``, so readers who did not fixate a word entered the mean with
        0. With False, the mean is over the readers for whom the measure is defined, and is
        null when no reader has it.
    any_pass:
        Take ``FFD`` from ``first_fixation_any_pass`` and ``GPT`` from ``go_past_any_pass``
        (EyeLink's and eyekit's definitions; ZuCo, the source of the CMCL data, describes its
        FFD as "the first fixation on the word" without restricting it to the first pass)
        (default: False, the first-pass definitions).
    source:
        Name of the input, used in error messages (default: None).

    Returns
    -------
    pl.DataFrame
        ``text_id``, the ``by`` columns (when there are several or it is not called
        ``text_id``), ``word_index``, ``word`` (when present), the averaged ``columns``,
        ``fixProp`` (share of readers with at least one fixation on the word, 0–1) and
        ``n_readers``. ``text_id`` is the single ``by`` column, the ``by`` values joined with
        "/" when there are several, or 0 with no ``by``.

    Examples
    --------
    >>> per_reader = pl.DataFrame({
    ...     "trial": [7, 7, 7, 7], "reader": ["a", "a", "b", "b"], "word_index": [0, 1, 0, 1],
    ...     "nFix": [1, 0, 2, 1], "FFD": [200.0, None, 180.0, 240.0],
    ...     "GPT": [200.0, None, 400.0, 240.0], "TRT": [200.0, 0.0, 400.0, 240.0],
    ... })
    >>> aggregate_readers(per_reader, by=("trial",)).select("word_index", "FFD", "fixProp").rows()
    [(0, 190.0, 1.0), (1, 120.0, 0.5)]
    """
    by = group_columns(by)
    by = list(by)
    renamed = {"FFD": "first_fixation_any_pass", "GPT": "go_past_any_pass"} if any_pass else {}
    wanted = [renamed.get(c, c) for c in columns]
    needed = [*by, "word_index", "nFix", *wanted]
    missing = [c for c in dict.fromkeys(needed) if c not in measures.columns]
    if missing:
        raise InputError(
            f"measure table lacks column(s) {', '.join(map(repr, missing))}",
            source=source,
            field=missing[0],
            expected="the output of reading_measures",
        )
    _require_numeric(measures, ["nFix", *wanted], source=source)
    word = ["word"] if "word" in measures.columns else []
    keys = [*by, "word_index"]

    def mean_of(name: str, column: str) -> pl.Expr:
        value = pl.col(column).cast(pl.Float64)
        value = value.fill_null(0.0) if zeros_for_missing else value
        return value.mean().alias(name)

    table = (
        measures.group_by(keys, maintain_order=False)
        .agg(
            *(pl.col(w).first() for w in word),
            *(mean_of(name, column) for name, column in zip(columns, wanted, strict=True)),
            (pl.col("nFix") > 0).cast(pl.Float64).mean().alias("fixProp"),
            pl.len().cast(pl.Int64).alias("n_readers"),
        )
        .sort(keys, nulls_last=True)
    )
    return table.select(_text_id(by), *[c for c in table.columns if c != "text_id"])


def _text_id(by: Sequence[str]) -> pl.Expr:
    if not by:
        return pl.lit(0, dtype=pl.Int64).alias("text_id")
    if len(by) == 1:
        return pl.col(by[0]).alias("text_id")
    return pl.concat_str([pl.col(c).cast(pl.String) for c in by], separator="/").alias("text_id")


def fit_cmcl_scale(
    table: pl.DataFrame, *, columns: Sequence[str] = CMCL_FEATURES
) -> dict[str, tuple[float, float]]:
    """Fit the min-max ranges that :func:`rescale_to_cmcl` maps onto 0–100.

    Parameters
    ----------
    table:
        Word measures averaged over readers (e.g. from :func:`aggregate_readers`).
    columns:
        Features to fit (default: :data:`CMCL_FEATURES`).

    Returns
    -------
    dict[str, tuple[float, float]]
        ``{column: (minimum, maximum)}`` over the non-null values.

    Examples
    --------
    >>> fit_cmcl_scale(pl.DataFrame({"TRT": [0.0, 150.0, 600.0]}), columns=("TRT",))
    {'TRT': (0.0, 600.0)}
    """
    _require_columns(table, columns)
    _require_numeric(table, columns, source=None)
    row = table.select(
        *(pl.col(c).cast(pl.Float64).min().alias(f"{c}\0min") for c in columns),
        *(pl.col(c).cast(pl.Float64).max().alias(f"{c}\0max") for c in columns),
    ).row(0, named=True)
    scale: dict[str, tuple[float, float]] = {}
    for c in columns:
        low, high = row[f"{c}\0min"], row[f"{c}\0max"]
        if low is None or high is None:
            raise InputError(
                "column has no values to fit a scale on",
                field=c,
                expected="at least one non-null value",
            )
        scale[c] = (float(low), float(high))
    return scale


def rescale_to_cmcl(
    table: pl.DataFrame,
    *,
    columns: Sequence[str] = CMCL_FEATURES,
    scale: Mapping[str, tuple[float, float]] | None = None,
) -> pl.DataFrame:
    """Put averaged word measures on the 0–100 scale of the CMCL 2021 shared task.

    The shared task min-max scaled each feature over its whole data set:
    ``100 * (value - min) / (max - min)``. In the released training data every feature has
    minimum 0, and nFix, GPT and fixProp reach 100 (FFD and TRT peak in the unreleased test
    part). Fit the ranges once with :func:`fit_cmcl_scale` on a reference set and pass them as
    ``scale`` to put other data on the same scale; values outside the fitted range land
    outside 0–100 rather than being clipped.

    Parameters
    ----------
    table:
        Word measures averaged over readers.
    columns:
        Features to rescale; other columns pass through (default: :data:`CMCL_FEATURES`).
    scale:
        ``{column: (minimum, maximum)}`` (default: None, fitted on ``table`` itself). A range
        with ``maximum == minimum`` maps every value to 0.

    Returns
    -------
    pl.DataFrame
        ``table`` with ``columns`` replaced by their rescaled Float64 values.

    Examples
    --------
    >>> words = pl.DataFrame({"TRT": [0.0, 150.0, 600.0]})
    >>> rescale_to_cmcl(words, columns=("TRT",))["TRT"].to_list()
    [0.0, 25.0, 100.0]
    >>> rescale_to_cmcl(words, columns=("TRT",), scale={"TRT": (0.0, 300.0)})["TRT"].to_list()
    [0.0, 50.0, 200.0]
    """
    _require_columns(table, columns)
    _require_numeric(table, columns, source=None)
    ranges = dict(scale) if scale is not None else fit_cmcl_scale(table, columns=columns)
    for column in columns:
        _check_range(column, ranges.get(column))

    def rescaled(column: str) -> pl.Expr:
        low, high = ranges[column]
        width = high - low
        value = pl.col(column).cast(pl.Float64)
        if width == 0:
            return (value * 0.0).alias(column)
        return ((value - low) * (100.0 / width)).alias(column)

    return table.with_columns(*(rescaled(c) for c in columns))


def _check_range(column: str, pair: object) -> None:
    expected = "a (minimum, maximum) pair of finite numbers for every rescaled column"
    if pair is None:
        raise InputError("scale has no range for this column", field=column, expected=expected)
    usable = (
        isinstance(pair, tuple | list)
        and len(pair) == 2
        and all(isinstance(v, numbers.Real) and math.isfinite(v) for v in pair)
    )
    if not usable:
        raise InputError(f"scale range {pair!r} is not usable", field=column, expected=expected)


def _require_numeric(table: pl.DataFrame, columns: Sequence[str], *, source: str | None) -> None:
    for column in columns:
        dtype = table.schema[column]
        if not dtype.is_numeric() and dtype != pl.Null:
            raise InputError(
                f"column is {dtype}, not numeric", source=source, field=column, expected="numbers"
            )


def _require_columns(table: pl.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(
            f"table lacks column(s) {', '.join(map(repr, missing))}",
            field=missing[0],
            expected=f"columns {', '.join(columns)}",
        )
