"""Readers: gaze recordings and reading measures from files into the shared table shapes.

Every reader returns a polars DataFrame with the project's (pymovements-style) column names and
raises :class:`tacitly.errors.InputError` naming the file, the 1-based data row (the header is
not counted) and the column when the input is wrong. Nothing is dropped silently: rows with
missing gaze are kept and marked, and every rule that removes or rewrites a value is written
out in the docstring of the reader that applies it.

Sources
-------
* :func:`read_samples`: raw gaze samples in CSV, TSV or Parquet with any column names and time
  unit.
* :func:`read_eyelink_fixations`, :func:`read_eyelink_ia`, :func:`check_fixation_aois`: the
  fixation and interest-area reports exported by SR Research's EyeLink Data Viewer (CSV, or
  the tab-separated ``.xls``/``.txt`` files Data Viewer writes).
* :func:`read_cmcl`, :func:`cmcl_texts`: the word-level measures of the CMCL 2021 shared task
  on eye-tracking prediction.
* :func:`read_ifllm_trace`, :func:`iter_ifllm_tasks`, :func:`read_ifllm_queries`: the mouse and
  webcam-gaze traces and the query log of the IFllm dataset ("Your Mouse and Eyes Secretly
  Leak Your Preference").
* :func:`read_oasst_etc_words`, :func:`read_oasst_etc`: word-level reading measures of people
  reading OASST1 answers (the OASST-ETC corpus).
"""

from __future__ import annotations

import tarfile
import warnings
from collections.abc import Collection, Iterator, Sequence
from os import PathLike
from pathlib import Path
from typing import Literal, NoReturn

import polars as pl

from tacitly.errors import InputError
from tacitly.signals.gaze.columns import group_columns

__all__ = [
    "DEFAULT_INVALID_VALUES",
    "IFLLM_KINDS",
    "check_fixation_aois",
    "cmcl_texts",
    "iter_ifllm_tasks",
    "read_cmcl",
    "read_eyelink_fixations",
    "read_eyelink_ia",
    "read_ifllm_queries",
    "read_ifllm_trace",
    "read_oasst_etc",
    "read_oasst_etc_words",
    "read_samples",
]

StrPath = str | PathLike[str]
TimeUnit = Literal["s", "ms", "us", "ns"]

DEFAULT_INVALID_VALUES: tuple[str, ...] = ("", ".", "NA", "N/A", "NaN", "nan", "null", "None")
"""Cell values that :func:`read_samples` reads as a missing value."""

_MS_PER_UNIT: dict[str, float] = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}
_SEPARATOR_BY_SUFFIX = {".csv": ",", ".tsv": "\t", ".txt": "\t", ".xls": "\t"}
_PARQUET_SUFFIXES = (".parquet", ".pq")
_TRUE_WORDS = ("1", "1.0", "true", "t", "yes")
_FALSE_WORDS = ("0", "0.0", "false", "f", "no")


# --------------------------------------------------------------------------------------------
# Shared helpers: files, columns, values
# --------------------------------------------------------------------------------------------


def _existing_file(path: StrPath) -> Path:
    file = Path(path)
    if not file.is_file():
        raise InputError("no such file", source=file)
    if file.stat().st_size == 0:
        raise InputError("the file is empty", source=file)
    return file


def _is_parquet(file: Path) -> bool:
    return file.suffix.lower() in _PARQUET_SUFFIXES


def _separator_for(file: Path, separator: str | None) -> str:
    if separator is not None:
        return separator
    found = _SEPARATOR_BY_SUFFIX.get(file.suffix.lower())
    if found is None:
        raise InputError(
            f'cannot tell the format from the suffix "{file.suffix}"; pass separator=',
            source=file,
            expected="a .csv, .tsv, .txt, .xls or .parquet file",
        )
    return found


def _csv_source(file: Path) -> Path | bytes:
    # Data Viewer on Windows may save UTF-16 text; polars reads UTF-8 only.
    with file.open("rb") as handle:
        head = handle.read(2)
    if head in (b"\xff\xfe", b"\xfe\xff"):
        return file.read_bytes().decode("utf-16").encode("utf-8")
    return file


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _header(file: Path, separator: str | None) -> list[str]:
    try:
        if _is_parquet(file):
            return list(pl.read_parquet_schema(file))
        frame = pl.read_csv(
            _csv_source(file),
            separator=_separator_for(file, separator),
            n_rows=0,
            infer_schema=False,
        )
    except pl.exceptions.NoDataError as error:
        raise InputError("the file is empty", source=file) from error
    except (pl.exceptions.PolarsError, OSError, UnicodeError) as error:
        raise InputError(f"cannot read the header: {_first_line(error)}", source=file) from error
    return frame.columns


def _read_columns(
    file: Path,
    columns: Sequence[str],
    *,
    separator: str | None,
    null_values: Sequence[str] | dict[str, str] | None,
) -> pl.DataFrame:
    """Read ``columns`` of a table file: text files as strings, Parquet with its own types."""
    try:
        if _is_parquet(file):
            return _null_markers(pl.read_parquet(file, columns=list(columns)), null_values)
        return pl.read_csv(
            _csv_source(file),
            columns=list(columns),
            separator=_separator_for(file, separator),
            infer_schema=False,
            null_values=null_values if not isinstance(null_values, Sequence) else list(null_values),
        )
    except (pl.exceptions.PolarsError, OSError, UnicodeError) as error:
        raise InputError(f"cannot be read: {_first_line(error)}", source=file) from error


def _null_markers(
    frame: pl.DataFrame, null_values: Sequence[str] | dict[str, str] | None
) -> pl.DataFrame:
    """Apply a text reader's missing-value markers to the string columns of a Parquet table."""
    if not null_values:
        return frame
    markers = (
        {name: [marker] for name, marker in null_values.items()}
        if isinstance(null_values, dict)
        else {name: list(null_values) for name in frame.columns}
    )
    return frame.with_columns(
        pl.when(pl.col(name).is_in(marks)).then(None).otherwise(pl.col(name)).alias(name)
        for name, marks in markers.items()
        if frame.schema.get(name) == pl.String
    )


def _require_columns(present: Sequence[str], required: Sequence[str], *, source: StrPath) -> None:
    missing = [name for name in dict.fromkeys(required) if name not in present]
    if missing:
        raise InputError(
            f"missing column(s) {', '.join(repr(m) for m in missing)}; "
            f"the file has {', '.join(repr(p) for p in present)}",
            source=source,
            field=missing[0],
        )


def _first_true(mask: pl.Series) -> int | None:
    """Index of the first True in ``mask`` (nulls count as False), or None."""
    hits = mask.fill_null(False).arg_true()
    return None if hits.is_empty() else int(hits[0])


def _parse_float(column: pl.Series, *, source: StrPath, field: str) -> pl.Series:
    """Column as Float64: nulls stay null; any other value that is not a number is an error."""
    if column.dtype == pl.Boolean:
        raise InputError("expected numbers, found true/false values", source=source, field=field)
    if column.dtype.is_numeric() or column.dtype == pl.Null:
        return column.cast(pl.Float64)
    text = column.cast(pl.String).str.strip_chars()
    parsed = text.cast(pl.Float64, strict=False)
    bad = _first_true(parsed.is_null() & text.is_not_null())
    if bad is not None:
        raise InputError(f"{text[bad]!r} is not a number", source=source, row=bad + 1, field=field)
    return parsed


def _parse_int(column: pl.Series, *, source: StrPath, field: str) -> pl.Series:
    """Column as Int64: like :func:`_parse_float`, and every value must be a whole number."""
    numbers = _parse_float(column, source=source, field=field)
    bad = _first_true(numbers.is_finite().not_() | (numbers != numbers.floor()))
    if bad is not None:
        raise InputError(
            f"{column[bad]!r} is not a whole number", source=source, row=bad + 1, field=field
        )
    return numbers.cast(pl.Int64)


def _parse_bool(column: pl.Series, *, source: StrPath, field: str) -> pl.Series:
    """Column as Boolean from true/false, yes/no, t/f or 1/0 (any case); no missing values."""
    if column.dtype == pl.Boolean:
        parsed = column
    else:
        words = column.cast(pl.String).str.strip_chars().str.to_lowercase()
        parsed = (
            pl.DataFrame({"w": words})
            .select(
                pl.when(pl.col("w").is_in(_TRUE_WORDS))
                .then(True)
                .when(pl.col("w").is_in(_FALSE_WORDS))
                .then(False)
                .otherwise(None)
                .alias(field)
            )
            .to_series()
        )
    bad = _first_true(parsed.is_null())
    if bad is not None:
        value = column[bad]
        raise InputError(
            "value is missing" if value is None else f"{value!r} is not a true/false value",
            source=source,
            row=bad + 1,
            field=field,
            expected="true/false or 1/0",
        )
    return parsed.alias(field)


def _check_no_missing(column: pl.Series, *, source: StrPath, field: str) -> None:
    missing = column.is_null()
    if column.dtype.is_float():
        missing = missing | column.is_nan()
    bad = _first_true(missing)
    if bad is not None:
        raise InputError("value is missing", source=source, row=bad + 1, field=field)


def _check_finite(column: pl.Series, *, source: StrPath, field: str) -> None:
    """Raise on a missing (null or NaN) or infinite value of a Float64 column."""
    _check_no_missing(column, source=source, field=field)
    bad = _first_true(column.is_infinite())
    if bad is not None:
        raise InputError(f"{field} is infinite", source=source, row=bad + 1, field=field)


def _check_not_backwards(
    frame: pl.DataFrame, *, column: str, by: Sequence[str], source: StrPath
) -> None:
    """Raise when ``column`` decreases from one row to the next inside a ``by`` group."""
    step = pl.col(column).diff()
    steps = frame.select(step.over(list(by)) if by else step).to_series()
    bad = _first_true(steps < 0)
    if bad is not None:
        value = frame[column][bad]
        group = ""
        if by:
            keys = frame.row(bad, named=True)
            group = " within " + ", ".join(f"{name}={keys[name]!r}" for name in by)
        raise InputError(
            f"{column} goes backwards{group}: {value} after {value - steps[bad]}",
            source=source,
            row=bad + 1,
            field=column,
            expected="values that never decrease",
        )


def _check_by_names(by: Sequence[str], reserved: Collection[str]) -> None:
    clashes = [name for name in by if name in reserved]
    if clashes:
        raise InputError(
            f"grouping column(s) {clashes} clash with output column names {sorted(reserved)}",
            field=clashes[0],
        )


# --------------------------------------------------------------------------------------------
# Raw gaze samples
# --------------------------------------------------------------------------------------------

_SAMPLE_COLUMNS = ("time", "x", "y", "valid")


def read_samples(
    path: StrPath,
    *,
    time: str = "time",
    x: str = "x",
    y: str = "y",
    valid: str | None = None,
    time_unit: TimeUnit = "ms",
    separator: str | None = None,
    by: str | Sequence[str] = (),
    invalid_values: Sequence[str] = DEFAULT_INVALID_VALUES,
) -> pl.DataFrame:
    """Read raw gaze samples from a CSV, TSV or Parquet file.

    Missing gaze is kept, never dropped: a cell that is empty or one of ``invalid_values``
    (text files), a null (Parquet), NaN or ±inf in the ``x`` or ``y`` column becomes a null
    coordinate and the sample gets ``valid = False``. With a ``valid`` column, a sample is valid
    only when that column says so *and* both coordinates are present. Every other value in
    ``time``, ``x`` and ``y`` must be a number; ``time`` must be present in every row and must
    never decrease inside a ``by`` group (equal times are allowed).

    Parameters
    ----------
    path:
        A ``.csv`` (comma), ``.tsv``/``.txt``/``.xls`` (tab) or ``.parquet`` file.
    time:
        Name of the timestamp column (default: "time").
    x, y:
        Names of the horizontal and vertical gaze-position columns, in pixels
        (default: "x", "y").
    valid:
        Name of a column that marks usable samples with true/false, yes/no or 1/0; None derives
        validity from the coordinates alone (default: None).
    time_unit:
        Unit of the ``time`` column: "s", "ms", "us" or "ns" (default: "ms").
    separator:
        Field separator of a text file; None takes it from the suffix (default: None).
    by:
        Grouping columns (for example a trial id) copied through unchanged; time order is
        checked inside each group (default: ()).
    invalid_values:
        Cell values read as missing, in a text file or a text column of a Parquet file
        (default: :data:`DEFAULT_INVALID_VALUES`, which includes "" and "." as EyeLink writes
        for lost samples).

    Returns
    -------
    pl.DataFrame
        The ``by`` columns, then ``time`` (ms, Float64), ``x``, ``y`` (px, Float64, null where
        missing) and ``valid`` (Boolean), one row per sample in file order.

    Raises
    ------
    InputError
        When the file is missing or empty, a column is missing, a value is not a number, a time
        is missing, or time goes backwards; the message names the file, the row and the column.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "gaze.tsv"
    >>> _ = file.write_text("t\\tgx\\tgy\\n0.000\\t10\\t20\\n0.001\\t\\t21\\n")
    >>> samples = read_samples(file, time="t", x="gx", y="gy", time_unit="s")
    >>> samples["time"].to_list(), samples["valid"].to_list()
    ([0.0, 1.0], [True, False])
    """
    by = group_columns(by)
    file = _existing_file(path)
    by = list(by)
    _check_by_names(by, _SAMPLE_COLUMNS)
    if time_unit not in _MS_PER_UNIT:
        raise InputError(
            f"unknown time unit {time_unit!r}", field="time_unit", expected="s, ms, us or ns"
        )
    wanted = [*by, time, x, y, *([valid] if valid is not None else [])]
    _require_columns(_header(file, separator), wanted, source=file)
    raw = _read_columns(
        file, list(dict.fromkeys(wanted)), separator=separator, null_values=invalid_values
    )
    if raw.height == 0:
        raise InputError("the file has a header but no samples", source=file)

    times = _parse_float(raw[time], source=file, field=time)
    _check_finite(times, source=file, field=time)
    xs = _coordinate(raw[x], source=file, field=x)
    ys = _coordinate(raw[y], source=file, field=y)
    present = xs.is_not_null() & ys.is_not_null()
    if valid is not None:
        present = _parse_bool(raw[valid], source=file, field=valid) & present
    samples = pl.DataFrame(
        {
            **{name: raw[name] for name in by},
            "time": times * _MS_PER_UNIT[time_unit],
            "x": xs,
            "y": ys,
            "valid": present,
        }
    )
    _check_not_backwards(samples, column="time", by=by, source=file)
    return samples


def _coordinate(column: pl.Series, *, source: StrPath, field: str) -> pl.Series:
    numbers = _parse_float(column, source=source, field=field)
    return numbers.set(numbers.is_finite().not_().fill_null(False), None)


# --------------------------------------------------------------------------------------------
# EyeLink Data Viewer reports
# --------------------------------------------------------------------------------------------

_READER_CANDIDATES = ("participant_id", "RECORDING_SESSION_LABEL")
_TRIAL_CANDIDATES = ("unique_trial_id", "TRIAL_INDEX")
_FIXATION_SOURCE = {
    "onset": "CURRENT_FIX_START",
    "offset": "CURRENT_FIX_END",
    "duration": "CURRENT_FIX_DURATION",
    "x": "CURRENT_FIX_X",
    "y": "CURRENT_FIX_Y",
}
_FIX_INDEX = "CURRENT_FIX_INDEX"
_FIX_AOI_ID = "CURRENT_FIX_INTEREST_AREA_ID"
_FIX_AOI_LABEL = "CURRENT_FIX_INTEREST_AREA_LABEL"
_IA_GEOMETRY = ("IA_LEFT", "IA_TOP", "IA_RIGHT", "IA_BOTTOM")
_IA_ID = "IA_ID"
_IA_LABEL = "IA_LABEL"
_EYELINK_MISSING = "."
_FIXATION_OUTPUT = (
    "reader",
    "trial",
    "fixation_index",
    "onset",
    "offset",
    "duration",
    "x",
    "y",
    "aoi",
    "aoi_text",
)
_IA_OUTPUT = ("reader", "trial", "aoi", "text", "left", "top", "width", "height")


def _pick_column(
    present: Sequence[str],
    chosen: str | None,
    candidates: Sequence[str],
    *,
    role: str,
    source: Path,
) -> str:
    if chosen is not None:
        _require_columns(present, [chosen], source=source)
        return chosen
    for name in candidates:
        if name in present:
            return name
    raise InputError(
        f"no {role} column found; pass {role}= with the column that identifies the {role}",
        source=source,
        expected=" or ".join(repr(c) for c in candidates),
    )


def _eyelink_report(
    path: StrPath, *, reader: str | None, trial: str | None, separator: str | None
) -> tuple[Path, list[str], str, str]:
    """The report file, its header, and the columns that identify reader and trial."""
    file = _existing_file(path)
    present = _header(file, separator)
    reader_column = _pick_column(present, reader, _READER_CANDIDATES, role="reader", source=file)
    trial_column = _pick_column(present, trial, _TRIAL_CANDIDATES, role="trial", source=file)
    return file, present, reader_column, trial_column


def _trial_keys(
    raw: pl.DataFrame, reader_column: str, trial_column: str, by: Sequence[str]
) -> dict[str, pl.Series]:
    """The ``reader``, ``trial`` and ``by`` output columns, all as text."""
    return {
        "reader": _as_text(raw, reader_column),
        "trial": _as_text(raw, trial_column),
        **{name: _as_text(raw, name) for name in by},
    }


def _read_eyelink(
    file: Path, columns: Sequence[str], *, numeric: Sequence[str], separator: str | None
) -> pl.DataFrame:
    # "." is Data Viewer's missing value; only numeric columns treat it so, because a label
    # may legitimately be a lone full stop.
    raw = _read_columns(
        file,
        list(dict.fromkeys(columns)),
        separator=separator,
        null_values={name: _EYELINK_MISSING for name in numeric},
    )
    if raw.height == 0:
        raise InputError("the file has a header but no rows", source=file)
    return raw


def _as_text(frame: pl.DataFrame, column: str) -> pl.Series:
    return frame[column].cast(pl.String)


def read_eyelink_fixations(
    path: StrPath,
    *,
    reader: str | None = None,
    trial: str | None = None,
    id_base: int = 1,
    by: str | Sequence[str] = (),
    separator: str | None = None,
) -> pl.DataFrame:
    """Read an EyeLink Data Viewer fixation report.

    Column mapping: ``onset`` = CURRENT_FIX_START, ``offset`` = CURRENT_FIX_END, ``duration``
    = CURRENT_FIX_DURATION (all ms, as Data Viewer reports them: relative to the trial start;
    END is the time of the fixation's last sample, so ``duration`` is usually ``offset`` −
    ``onset`` + 1; in the OneStop sample 20 of 3,209 fixations, each the last of its trial, have
    ``offset`` − ``onset``), ``x``/``y`` = CURRENT_FIX_X/Y, ``fixation_index`` =
    CURRENT_FIX_INDEX − 1 (0-based position in the trial), ``aoi`` =
    CURRENT_FIX_INTEREST_AREA_ID − ``id_base`` (0-based; null when the fixation is outside
    every interest area, "." in the report) and ``aoi_text`` =
    CURRENT_FIX_INTEREST_AREA_LABEL (null outside any interest area).

    Interest-area ids: Data Viewer numbers interest areas from 1 in fixation reports, hence
    ``id_base=1``. Interest-area reports may be numbered from 0 or from 1 (the OneStop
    corpus re-numbered its IA report from 0 but left the fixation report at 1: the fixation on
    "Robert" says 1, the IA report lists "Robert" as IA_ID 0); :func:`read_eyelink_ia`
    detects that, so both tables share the 0-based ``aoi``. Use :func:`check_fixation_aois`
    to confirm that ids and labels agree.

    Parameters
    ----------
    path:
        The report: ``.csv``, or Data Viewer's tab-separated ``.xls``/``.txt``/``.tsv``.
    reader:
        Column that identifies the reader; None takes the first of "participant_id",
        "RECORDING_SESSION_LABEL" present (default: None).
    trial:
        Column that identifies the trial (within a reader); None takes the first of
        "unique_trial_id", "TRIAL_INDEX" present (default: None).
    id_base:
        The number of the first interest area in CURRENT_FIX_INTEREST_AREA_ID (default: 1).
    by:
        Further columns copied through as text, for example "article_id" (default: ()).
    separator:
        Field separator; None takes it from the suffix (default: None).

    Returns
    -------
    pl.DataFrame
        ``reader``, ``trial`` (text), the ``by`` columns, ``fixation_index`` (Int64),
        ``onset``, ``offset``, ``duration``, ``x``, ``y`` (Float64), ``aoi`` (Int64, nullable)
        and ``aoi_text`` (String, nullable), one row per fixation in file order.

    Raises
    ------
    InputError
        On a missing column or file, a value that is not a number, a missing onset, offset or
        duration, an interest-area id below ``id_base``, or onsets that go backwards inside a
        trial.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "fixations.csv"
    >>> _ = file.write_text(
    ...     "RECORDING_SESSION_LABEL,TRIAL_INDEX,CURRENT_FIX_INDEX,CURRENT_FIX_START,"
    ...     "CURRENT_FIX_END,CURRENT_FIX_DURATION,CURRENT_FIX_X,CURRENT_FIX_Y,"
    ...     "CURRENT_FIX_INTEREST_AREA_ID,CURRENT_FIX_INTEREST_AREA_LABEL\\n"
    ...     "s1,1,1,100,299,200,50.5,80,1,The\\n"
    ...     "s1,1,2,320,499,180,400,80,.,.\\n"
    ... )
    >>> fixations = read_eyelink_fixations(file)
    >>> fixations["aoi"].to_list(), fixations["aoi_text"].to_list()
    ([0, None], ['The', None])
    """
    by = group_columns(by)
    by = list(by)
    _check_by_names(by, _FIXATION_OUTPUT)
    file, present, reader_column, trial_column = _eyelink_report(
        path, reader=reader, trial=trial, separator=separator
    )
    numeric = [*_FIXATION_SOURCE.values(), _FIX_INDEX, _FIX_AOI_ID]
    wanted = [reader_column, trial_column, *by, *numeric]
    _require_columns(present, wanted, source=file)
    has_label = _FIX_AOI_LABEL in present
    raw = _read_eyelink(
        file,
        [*wanted, *([_FIX_AOI_LABEL] if has_label else [])],
        numeric=numeric,
        separator=separator,
    )

    measures = {
        name: _parse_float(raw[column], source=file, field=column)
        for name, column in _FIXATION_SOURCE.items()
    }
    for name in ("onset", "offset", "duration"):
        _check_no_missing(measures[name], source=file, field=_FIXATION_SOURCE[name])
    index = _parse_int(raw[_FIX_INDEX], source=file, field=_FIX_INDEX) - 1
    aoi = _aoi_from_ids(raw[_FIX_AOI_ID], id_base=id_base, source=file, field=_FIX_AOI_ID)
    label = _as_text(raw, _FIX_AOI_LABEL) if has_label else pl.Series(dtype=pl.String)
    fixations = pl.DataFrame(
        {
            **_trial_keys(raw, reader_column, trial_column, by),
            "fixation_index": index,
            **measures,
            "aoi": aoi,
            "aoi_text": label.set(aoi.is_null(), None) if has_label else [None] * raw.height,
        },
        schema_overrides={"aoi_text": pl.String},
    )
    _check_not_backwards(fixations, column="onset", by=["reader", "trial"], source=file)
    return fixations


def _aoi_from_ids(column: pl.Series, *, id_base: int, source: StrPath, field: str) -> pl.Series:
    ids = _parse_int(column, source=source, field=field)
    bad = _first_true(ids < id_base)
    if bad is not None:
        raise InputError(
            f"interest-area id {ids[bad]} is below id_base={id_base}",
            source=source,
            row=bad + 1,
            field=field,
            expected=f"ids from {id_base} (pass id_base= to match how the report numbers them)",
        )
    return (ids - id_base).alias("aoi")


def read_eyelink_ia(
    path: StrPath,
    *,
    reader: str | None = None,
    trial: str | None = None,
    id_base: int | None = None,
    by: str | Sequence[str] = (),
    separator: str | None = None,
) -> pl.DataFrame:
    """Read an EyeLink Data Viewer interest-area report as an AOI table with its measures.

    Column mapping: ``aoi`` = IA_ID − ``id_base`` (0-based), ``text`` = IA_LABEL, ``left`` =
    IA_LEFT, ``top`` = IA_TOP, ``width`` = IA_RIGHT − IA_LEFT, ``height`` = IA_BOTTOM −
    IA_TOP (px). Every other column whose name starts with ``IA_`` or ``TRIAL_`` (Data
    Viewer's report measures such as IA_DWELL_TIME, IA_FIRST_FIXATION_DURATION,
    IA_FIXATION_COUNT, IA_REGRESSION_PATH_DURATION, IA_FIRST_RUN_DWELL_TIME, IA_SKIP,
    IA_REGRESSION_IN, IA_REGRESSION_OUT, TRIAL_FIXATION_COUNT) is kept under its own name:
    Int64 when every value is a whole number, Float64 when every value is a number, text
    otherwise; "." (Data Viewer's "not applicable", e.g. the dwell time of a skipped word)
    becomes null.

    Parameters
    ----------
    path:
        The report: ``.csv``, or Data Viewer's tab-separated ``.xls``/``.txt``/``.tsv``.
    reader, trial:
        Columns that identify reader and trial, as in :func:`read_eyelink_fixations`
        (default: None).
    id_base:
        The number of the first interest area in IA_ID; None reads 0 when the smallest IA_ID
        in the file is 0 and 1 otherwise, which covers Data Viewer's own numbering (from 1)
        and re-numbered exports such as OneStop's (from 0) (default: None).
    by:
        Further columns copied through as text, for example "article_id" (default: ()).
    separator:
        Field separator; None takes it from the suffix (default: None).

    Returns
    -------
    pl.DataFrame
        ``reader``, ``trial`` (text), the ``by`` columns, ``aoi`` (Int64), ``text``,
        ``left``, ``top``, ``width``, ``height`` (Float64), then the ``IA_*``/``TRIAL_*``
        measures; one row per interest area and trial, in file order.

    Raises
    ------
    InputError
        On a missing column or file, a bad or infinite number, an interest area listed twice
        for a trial,
        or a box whose right edge lies left of its left edge (or bottom above top).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "ia.xls"
    >>> rows = [
    ...     "RECORDING_SESSION_LABEL TRIAL_INDEX IA_ID IA_LABEL IA_LEFT IA_TOP IA_RIGHT "
    ...     "IA_BOTTOM IA_DWELL_TIME IA_SKIP",
    ...     "s1 1 1 The 10 20 60 60 212 0",
    ...     "s1 1 2 cat 60 20 120 60 . 1",
    ... ]
    >>> _ = file.write_text("\\n".join(r.replace(" ", "\\t") for r in rows) + "\\n")
    >>> aois = read_eyelink_ia(file)
    >>> aois.select("aoi", "text", "width", "IA_DWELL_TIME").rows()
    [(0, 'The', 50.0, 212), (1, 'cat', 60.0, None)]
    """
    by = group_columns(by)
    by = list(by)
    file, present, reader_column, trial_column = _eyelink_report(
        path, reader=reader, trial=trial, separator=separator
    )
    skip = {reader_column, trial_column, *by, _IA_ID, _IA_LABEL, *_IA_GEOMETRY}
    measure_columns = [
        name for name in present if name.startswith(("IA_", "TRIAL_")) and name not in skip
    ]
    _check_by_names(by, {*_IA_OUTPUT, *measure_columns})
    wanted = [reader_column, trial_column, *by, _IA_ID, _IA_LABEL, *_IA_GEOMETRY]
    _require_columns(present, wanted, source=file)
    raw = _read_eyelink(
        file,
        [*wanted, *measure_columns],
        numeric=[_IA_ID, *_IA_GEOMETRY, *measure_columns],
        separator=separator,
    )

    ids = _parse_int(raw[_IA_ID], source=file, field=_IA_ID)
    _check_no_missing(ids, source=file, field=_IA_ID)
    if id_base is None:
        id_base = 0 if ids.min() == 0 else 1
    aoi = _aoi_from_ids(ids, id_base=id_base, source=file, field=_IA_ID)
    edges = {name: _parse_float(raw[name], source=file, field=name) for name in _IA_GEOMETRY}
    for name, edge in edges.items():
        _check_finite(edge, source=file, field=name)
    aois = pl.DataFrame(
        {
            **_trial_keys(raw, reader_column, trial_column, by),
            "aoi": aoi,
            "text": _as_text(raw, _IA_LABEL),
            "left": edges["IA_LEFT"],
            "top": edges["IA_TOP"],
            "width": edges["IA_RIGHT"] - edges["IA_LEFT"],
            "height": edges["IA_BOTTOM"] - edges["IA_TOP"],
            **{name: _measure(raw[name]) for name in measure_columns},
        }
    )
    _check_boxes(aois, source=file)
    _check_unique(aois, keys=["reader", "trial", "aoi"], source=file, field=_IA_ID)
    return aois


def _measure(column: pl.Series) -> pl.Series:
    """The narrowest of Int64, Float64 and String that holds every non-missing value."""
    text = column.cast(pl.String).str.strip_chars()
    as_float = text.cast(pl.Float64, strict=False)
    if (as_float.is_null() & text.is_not_null()).any():
        return column.cast(pl.String)
    # Whole numbers beyond Int64's range (about 9.2e18) stay Float64.
    fits_int = as_float.is_finite() & (as_float.abs() < 2.0**63)
    finite = as_float.filter(fits_int)
    whole = finite.len() == as_float.drop_nulls().len() and bool((finite == finite.floor()).all())
    return as_float.cast(pl.Int64) if whole else as_float


def _check_boxes(aois: pl.DataFrame, *, source: StrPath) -> None:
    for size, edge in (("width", "IA_RIGHT"), ("height", "IA_BOTTOM")):
        bad = _first_true(aois[size] < 0)
        if bad is not None:
            raise InputError(
                f"the interest area's {size} is negative ({aois[size][bad]})",
                source=source,
                row=bad + 1,
                field=edge,
            )


def _check_unique(frame: pl.DataFrame, *, keys: Sequence[str], source: StrPath, field: str) -> None:
    bad = _first_true(frame.select(pl.struct(keys).is_first_distinct().not_()).to_series())
    if bad is not None:
        where = ", ".join(f"{key}={frame[key][bad]!r}" for key in keys)
        raise InputError(f"duplicate entry ({where})", source=source, row=bad + 1, field=field)


def check_fixation_aois(
    fixations: pl.DataFrame,
    aois: pl.DataFrame,
    *,
    source: StrPath | None = None,
    by: Sequence[str] = ("reader", "trial"),
) -> None:
    """Check that every fixation's ``aoi`` exists in ``aois`` for its trial, with the same text.

    Fixations outside every AOI (``aoi`` null) are fine. When ``fixations`` has an
    ``aoi_text`` column and ``aois`` a ``text`` column, the two must agree wherever both are
    present: a mismatch almost always means the two reports number their interest areas from
    different bases (see ``id_base`` in :func:`read_eyelink_fixations`).

    Parameters
    ----------
    fixations:
        Fixation table with ``aoi`` and the ``by`` columns (as from
        :func:`read_eyelink_fixations`).
    aois:
        AOI table with ``aoi`` and the ``by`` columns (as from :func:`read_eyelink_ia`).
    source:
        The fixation file, named in the error message (default: None).
    by:
        Columns that identify a trial in both tables (default: ("reader", "trial")).

    Raises
    ------
    InputError
        Naming the first offending fixation's row (1-based, in ``fixations``), its trial and
        its ``aoi``.

    Examples
    --------
    >>> fixations = pl.DataFrame({"trial": ["a", "a"], "aoi": [0, 3]})
    >>> aois = pl.DataFrame({"trial": ["a", "a"], "aoi": [0, 1]})
    >>> check_fixation_aois(fixations, aois, by=["trial"])
    Traceback (most recent call last):
    ...
    tacitly.errors.InputError: row 2, field "aoi": fixation refers to AOI 3, which trial='a' \
does not have (expected one of its 2 AOIs, 0 to 1)
    """
    keys = [*by, "aoi"]
    _require_columns(fixations.columns, keys, source=source or "fixations")
    _require_columns(aois.columns, keys, source="aois")
    for key in keys:
        if fixations.schema[key] != aois.schema[key]:
            raise InputError(
                f"column types differ: {fixations.schema[key]} in fixations, "
                f"{aois.schema[key]} in aois",
                source=source,
                field=key,
            )
    placed = fixations.with_row_index("_row", offset=1).filter(pl.col("aoi").is_not_null())
    unknown = placed.join(aois.select(keys).unique(), on=keys, how="anti")
    if unknown.height:
        _raise_unknown_aoi(unknown.sort("_row").row(0, named=True), aois, by=by, source=source)
    if "aoi_text" in fixations.columns and "text" in aois.columns:
        paired = placed.join(aois.select(*keys, "text"), on=keys, how="left")
        clash = paired.filter(
            pl.col("aoi_text").is_not_null()
            & pl.col("text").is_not_null()
            & (pl.col("aoi_text") != pl.col("text"))
        )
        if clash.height:
            first = clash.sort("_row").row(0, named=True)
            raise InputError(
                f"fixation's AOI label {first['aoi_text']!r} differs from the text "
                f"{first['text']!r} of AOI {first['aoi']} in the AOI table",
                source=source,
                row=first["_row"],
                field="aoi",
                expected="the same numbering in both reports (check id_base)",
            )


def _raise_unknown_aoi(
    fixation: dict[str, object], aois: pl.DataFrame, *, by: Sequence[str], source: StrPath | None
) -> NoReturn:
    trial = ", ".join(f"{key}={fixation[key]!r}" for key in by) or "the AOI table"
    same_trial = aois.filter(*(pl.col(key) == fixation[key] for key in by)) if by else aois
    if same_trial.height:
        low, high = same_trial.select(
            pl.col("aoi").min().alias("low"), pl.col("aoi").max().alias("high")
        ).row(0)
        have = f"one of its {same_trial.height} AOIs, {low} to {high}"
    else:
        have = "a trial that the AOI table lists"
    raise InputError(
        f"fixation refers to AOI {fixation['aoi']}, which {trial} does not have",
        source=source,
        row=int(str(fixation["_row"])),
        field="aoi",
        expected=have,
    )


# --------------------------------------------------------------------------------------------
# CMCL 2021 word measures
# --------------------------------------------------------------------------------------------

_CMCL_MEASURES = ("nFix", "FFD", "GPT", "TRT", "fixProp")
_CMCL_SOURCE = {"text_id": "sentence_id", "word_index": "word_id", "word": "word"}
_EOS = "<EOS>"


def read_cmcl(path: StrPath, *, strip_eos: bool = True) -> pl.DataFrame:
    """Read a CMCL 2021 shared-task file of word-level eye-tracking measures.

    The measures are averages over readers, rescaled by the task organisers to roughly 0–100
    (not milliseconds): ``nFix`` number of fixations, ``FFD`` first fixation duration,
    ``GPT`` go-past time, ``TRT`` total reading time, ``fixProp`` share of readers who
    fixated the word.

    Parameters
    ----------
    path:
        ``train.csv``, ``valid.csv`` or a file with the same columns: ``sentence_id,
        word_id, word, nFix, FFD, GPT, TRT, fixProp``.
    strip_eos:
        Remove the ``<EOS>`` marker that the task appends to the last word of each sentence
        (default: True).

    Returns
    -------
    pl.DataFrame
        ``text_id`` (= sentence_id), ``word_index`` (= word_id), ``word``, ``nFix``, ``FFD``,
        ``GPT``, ``TRT``, ``fixProp`` (Float64), one row per word in file order.

    Raises
    ------
    InputError
        On a missing column, a measure that is missing, infinite, not a number or negative, a
        word id that is not a whole number, or a (sentence_id, word_id) pair listed twice.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "train.csv"
    >>> _ = file.write_text(
    ...     "sentence_id,word_id,word,nFix,FFD,GPT,TRT,fixProp\\n"
    ...     "0,0,Hello,10,3,4,5,80\\n0,1,world.<EOS>,12,3.5,6,7,90\\n"
    ... )
    >>> read_cmcl(file)["word"].to_list()
    ['Hello', 'world.']
    """
    file = _existing_file(path)
    required = [*_CMCL_SOURCE.values(), *_CMCL_MEASURES]
    _require_columns(_header(file, None), required, source=file)
    raw = _read_columns(file, required, separator=None, null_values=None)
    if raw.height == 0:
        raise InputError("the file has a header but no words", source=file)
    columns: dict[str, pl.Series] = {}
    for name in ("text_id", "word_index"):
        column = _CMCL_SOURCE[name]
        _check_no_missing(raw[column], source=file, field=column)
        columns[name] = _parse_int(raw[column], source=file, field=column)
    words = _as_text(raw, "word")
    _check_no_missing(words, source=file, field="word")
    columns["word"] = words.str.strip_suffix(_EOS) if strip_eos else words
    for name in _CMCL_MEASURES:
        values = _parse_float(raw[name], source=file, field=name)
        _check_finite(values, source=file, field=name)
        bad = _first_true(values < 0)
        if bad is not None:
            raise InputError(
                f"negative value {values[bad]}",
                source=file,
                row=bad + 1,
                field=name,
                expected="a measure >= 0",
            )
        columns[name] = values
    table = pl.DataFrame(columns)
    _check_unique(table, keys=["text_id", "word_index"], source=file, field="word_id")
    return table


def cmcl_texts(table: pl.DataFrame) -> list[tuple[int, list[str]]]:
    """The texts of a word-measure table: ``(text_id, words in word_index order)`` per text.

    Parameters
    ----------
    table:
        A table with ``text_id``, ``word_index`` and ``word`` (as from :func:`read_cmcl`).

    Returns
    -------
    list[tuple[int, list[str]]]
        One entry per text, ordered by ``text_id``; ``" ".join(words)`` gives the sentence.

    Examples
    --------
    >>> table = pl.DataFrame(
    ...     {"text_id": [1, 0, 0], "word_index": [0, 1, 0], "word": ["Hi.", "there.", "Hello"]}
    ... )
    >>> cmcl_texts(table)
    [(0, ['Hello', 'there.']), (1, ['Hi.'])]
    """
    _require_columns(table.columns, ["text_id", "word_index", "word"], source="word table")
    grouped = (
        table.sort("text_id", "word_index")
        .group_by("text_id", maintain_order=True)
        .agg(pl.col("word"))
    )
    return [(int(text_id), list(words)) for text_id, words in grouped.iter_rows()]


# --------------------------------------------------------------------------------------------
# IFllm traces and query log
# --------------------------------------------------------------------------------------------

IFLLM_KINDS: tuple[str, ...] = (
    "abs_gaze",
    "abs_mouse",
    "rel_gaze_one",
    "rel_gaze_two",
    "rel_mouse_left",
    "rel_mouse_right",
    "rel_gaze",
    "rel_mouse",
)
"""Trace files of an IFllm task, by file name without ``.csv``. ``rel_gaze``/``rel_mouse``
appear in single-response tasks instead of the ``_one``/``_two``/``_left``/``_right`` pairs."""

_RESPONSE_BY_KIND = {
    "rel_gaze_one": 1,
    "rel_mouse_left": 1,
    "rel_gaze_two": 2,
    "rel_mouse_right": 2,
    "rel_gaze": 1,
    "rel_mouse": 1,
}
_ABS_SCHEMA = {
    "time": pl.Float64,
    "x": pl.Float64,
    "y": pl.Float64,
    "valid": pl.Boolean,
    "epoch_ms": pl.Int64,
}
_REL_SCHEMA = {
    **_ABS_SCHEMA,
    "char_index": pl.Int64,
    "text_window": pl.String,
    "response": pl.Int8,
}
_FIELD = r"([^,]*)"
# The text window is free text between the two leading and the trailing numeric fields, so
# it is matched greedily in the middle; the files neither quote nor escape it consistently.
_ABS_LINE = rf"^{_FIELD},{_FIELD},{_FIELD},{_FIELD}\r?$"
_REL_LINE_WITH_CAMERA = rf'^{_FIELD},{_FIELD},(.*),{_FIELD},{_FIELD},{_FIELD},([^,"]*)"?\r?$'
_REL_LINE_NO_CAMERA = rf'^{_FIELD},{_FIELD},(.*),{_FIELD},{_FIELD},([^,"]*)"?\r?$'
_ABS_FIELDS = ("x", "y", "page_timer_ms", "epoch_ms")
_REL_FIELDS = (
    "x_rel",
    "y_rel",
    "text_window",
    "char_index",
    "page_timer_ms",
    "camera_valid",
    "epoch_ms",
)


def _kind_of(name: str, kind: str | None, *, source: StrPath) -> str:
    found = kind if kind is not None else name.removesuffix(".csv")
    if found not in IFLLM_KINDS:
        raise InputError(
            f"unknown IFllm trace kind {found!r}",
            source=source,
            expected=f"a file named <kind>.csv or kind= one of {', '.join(IFLLM_KINDS)}",
        )
    return found


def read_ifllm_trace(
    path: StrPath, *, kind: str | None = None, drop_duplicates: bool = True
) -> pl.DataFrame:
    """Read one IFllm trace file (headerless CSV, one row per webcam frame) as samples.

    Output for every kind: ``time`` = page_timer_ms (ms since the page loaded; it restarts
    when the page reloads, so it is not checked for order), ``x``, ``y`` (px), ``valid``,
    ``epoch_ms`` (wall clock, UTC ms). Absolute files (``abs_gaze``, ``abs_mouse``: page
    pixels) set ``valid`` when both coordinates are numbers. Relative files (``rel_*``:
    pixels relative to one response's text box) add ``char_index`` (character of the response
    under the point, null when none), ``text_window`` (±10 characters around it, null when
    none) and ``response`` (1 for ``_one``/``_left`` and for single-response ``rel_gaze``/
    ``rel_mouse``, 2 for ``_two``/``_right``); their ``valid`` is ``camera_valid`` (the face
    was tracked), or null in older six-column files that do not record it; their sentinel
    position (−1, −1), "outside this response", becomes null ``x`` and ``y``.

    Quirks of the real files handled here: ``text_window`` is quoted only sometimes and quotes
    inside it are doubled only sometimes (one enclosing pair of quotes is removed and ``""``
    read as ``"``; a stray closing quote at the end of the line is ignored); some rel files
    have no camera_valid column; ``abs_gaze`` files repeat blocks of rows verbatim (about 38%
    of rows in the development subset), which ``drop_duplicates`` removes, keeping the first
    copy (afterwards ``abs_gaze`` has one row per ``abs_mouse`` row). Blank lines are skipped;
    an empty file gives an empty table with the full schema.

    Parameters
    ----------
    path:
        The trace file.
    kind:
        One of :data:`IFLLM_KINDS`; None takes it from the file name (default: None).
    drop_duplicates:
        Drop rows that repeat an earlier row exactly (default: True).

    Returns
    -------
    pl.DataFrame
        ``time``, ``x``, ``y``, ``valid``, ``epoch_ms`` (+ ``char_index``, ``text_window``,
        ``response`` for rel files), in file order.

    Raises
    ------
    InputError
        On an unknown kind, a line that does not have the kind's fields, or a value that is not
        a number; the message names the file and the row.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "rel_gaze_two.csv"
    >>> _ = file.write_text('12.5,40,"ello, world",3,1500.5,1,1700000000000\\n'
    ...                     '-1,-1,,,1580.1,0,1700000000080\\n')
    >>> read_ifllm_trace(file).select("x", "valid", "text_window", "response").rows()
    [(12.5, True, 'ello, world', 2), (None, False, None, 2)]
    """
    file = Path(path)
    if not file.is_file():
        raise InputError("no such file", source=file)
    found = _kind_of(file.name, kind, source=file)
    return _parse_ifllm_trace(
        file.read_bytes(), kind=found, source=file, drop_duplicates=drop_duplicates
    )


def _parse_ifllm_trace(
    data: bytes, *, kind: str, source: StrPath, drop_duplicates: bool
) -> pl.DataFrame:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"not UTF-8 text ({error.reason})", source=source) from error
    lines = pl.Series("line", text.split("\n"), dtype=pl.String)
    lines = lines.filter(lines.str.strip_chars() != "")
    is_rel = kind.startswith("rel")
    if lines.is_empty():
        return pl.DataFrame(schema=_REL_SCHEMA if is_rel else _ABS_SCHEMA)
    if is_rel:
        trace = _parse_rel_lines(lines, source=source, response=_RESPONSE_BY_KIND[kind])
    else:
        trace = _parse_abs_lines(lines, source=source)
    return trace.unique(maintain_order=True) if drop_duplicates else trace


def _split_lines(
    lines: pl.Series, pattern: str, names: Sequence[str], *, source: StrPath
) -> pl.DataFrame:
    fields = (
        pl.DataFrame({"line": lines})
        .select(pl.col("line").str.extract_groups(pattern).struct.rename_fields(list(names)))
        .unnest("line")
    )
    bad = _first_true(fields[names[0]].is_null())
    if bad is not None:
        raise InputError(
            f"cannot split the line into {len(names)} fields: {lines[bad][:80]!r}",
            source=source,
            row=bad + 1,
            expected=", ".join(names),
        )
    return fields.select(pl.all().replace("", None))


def _parse_abs_lines(lines: pl.Series, *, source: StrPath) -> pl.DataFrame:
    fields = _split_lines(lines, _ABS_LINE, _ABS_FIELDS, source=source)
    xs = _coordinate(fields["x"], source=source, field="x")
    ys = _coordinate(fields["y"], source=source, field="y")
    return pl.DataFrame(
        {
            "time": _parse_float(fields["page_timer_ms"], source=source, field="page_timer_ms"),
            "x": xs,
            "y": ys,
            "valid": xs.is_not_null() & ys.is_not_null(),
            "epoch_ms": _parse_int(fields["epoch_ms"], source=source, field="epoch_ms"),
        },
        schema=_ABS_SCHEMA,
    )


def _parse_rel_lines(lines: pl.Series, *, source: StrPath, response: int) -> pl.DataFrame:
    has_camera = bool(lines.str.contains(r',[01],[^,]*"?\r?$').all())
    if has_camera:
        fields = _split_lines(lines, _REL_LINE_WITH_CAMERA, _REL_FIELDS, source=source)
        valid = _parse_bool(fields["camera_valid"], source=source, field="camera_valid")
    else:
        names = [name for name in _REL_FIELDS if name != "camera_valid"]
        fields = _split_lines(lines, _REL_LINE_NO_CAMERA, names, source=source)
        valid = pl.Series("valid", [None] * len(lines), dtype=pl.Boolean)
    xs = _coordinate(fields["x_rel"], source=source, field="x_rel")
    ys = _coordinate(fields["y_rel"], source=source, field="y_rel")
    outside = ((xs == -1) & (ys == -1)).fill_null(False)
    return pl.DataFrame(
        {
            "time": _parse_float(fields["page_timer_ms"], source=source, field="page_timer_ms"),
            "x": xs.set(outside, None),
            "y": ys.set(outside, None),
            "valid": valid,
            "epoch_ms": _parse_int(fields["epoch_ms"], source=source, field="epoch_ms"),
            "char_index": _parse_int(fields["char_index"], source=source, field="char_index"),
            "text_window": _unquote(fields["text_window"]),
            "response": [response] * len(lines),
        },
        schema=_REL_SCHEMA,
    )


def _unquote(column: pl.Series) -> pl.Series:
    text = pl.col("t")
    quoted = text.str.starts_with('"') & text.str.ends_with('"') & (text.str.len_chars() >= 2)
    inner = text.str.slice(1, text.str.len_chars() - 2).str.replace_all('""', '"', literal=True)
    return (
        pl.DataFrame({"t": column})
        .select(pl.when(quoted).then(inner).otherwise(text).alias("text_window"))
        .to_series()
    )


def iter_ifllm_tasks(
    root: StrPath,
    *,
    kinds: Collection[str] | None = None,
    drop_duplicates: bool = True,
) -> Iterator[tuple[str, str, dict[str, pl.DataFrame]]]:
    """Yield ``(worker, task, {kind: trace})`` for every task of the IFllm user-behaviour data.

    ``root`` may be the archive ``user_behavior.tar.gz`` (read member by member, never
    extracted to disk), the extracted ``user_behavior`` folder, or a folder holding either.
    Folders are walked in sorted order; an archive in its stored order, which must keep each
    task's files together (as ``tar`` writes a folder). Files whose name is not a known kind
    are ignored. Each trace is read as by :func:`read_ifllm_trace`.

    Parameters
    ----------
    root:
        Archive or folder, as above.
    kinds:
        Only read these kinds (default: None, all of :data:`IFLLM_KINDS`).
    drop_duplicates:
        Passed to :func:`read_ifllm_trace` (default: True).

    Yields
    ------
    tuple[str, str, dict[str, pl.DataFrame]]
        The worker id (e.g. "worker_030da562"), the task id as written in the folder name
        (e.g. "175"; ``task_id`` in the query log is its integer), and the traces by kind.

    Raises
    ------
    InputError
        When ``root`` is neither an archive nor a folder of tasks, a trace cannot be read, or
        an archive interleaves the files of different tasks.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> task = pathlib.Path(tempfile.mkdtemp()) / "user_behavior" / "worker_1" / "7"
    >>> task.mkdir(parents=True)
    >>> _ = (task / "abs_mouse.csv").write_text("10,20,100.5,1700000000000\\n")
    >>> [(w, t, sorted(k)) for w, t, k in iter_ifllm_tasks(task.parents[1])]
    [('worker_1', '7', ['abs_mouse'])]
    """
    wanted = set(IFLLM_KINDS if kinds is None else kinds)
    unknown = wanted - set(IFLLM_KINDS)
    if unknown:
        raise InputError(
            f"unknown IFllm trace kind(s) {sorted(unknown)}",
            field="kinds",
            expected=", ".join(IFLLM_KINDS),
        )
    source = _ifllm_source(Path(root))
    if source.is_dir():
        yield from _iter_task_folders(source, wanted, drop_duplicates=drop_duplicates)
    else:
        yield from _iter_task_archive(source, wanted, drop_duplicates=drop_duplicates)


def _ifllm_source(root: Path) -> Path:
    if root.is_file():
        return root
    if not root.is_dir():
        raise InputError("no such file or folder", source=root)
    for candidate in (root / "user_behavior", root / "user_behavior.tar.gz"):
        if candidate.exists():
            return candidate
    return root


def _task_sort_key(folder: Path) -> tuple[int, str]:
    # Task folders are numbers; sort them as numbers so that "9" comes before "10".
    return (int(folder.name), "") if folder.name.isdigit() else (-1, folder.name)


def _iter_task_folders(
    root: Path, kinds: Collection[str], *, drop_duplicates: bool
) -> Iterator[tuple[str, str, dict[str, pl.DataFrame]]]:
    for worker in sorted(p for p in root.iterdir() if p.is_dir()):
        for task in sorted((p for p in worker.iterdir() if p.is_dir()), key=_task_sort_key):
            traces = {
                file.stem: _parse_ifllm_trace(
                    file.read_bytes(),
                    kind=file.stem,
                    source=file,
                    drop_duplicates=drop_duplicates,
                )
                for file in sorted(task.glob("*.csv"))
                if file.stem in kinds
            }
            if traces:
                yield worker.name, task.name, traces


def _iter_task_archive(
    archive: Path, kinds: Collection[str], *, drop_duplicates: bool
) -> Iterator[tuple[str, str, dict[str, pl.DataFrame]]]:
    current: tuple[str, str] | None = None
    traces: dict[str, pl.DataFrame] = {}
    finished: set[tuple[str, str]] = set()
    try:
        with tarfile.open(archive, mode="r|*") as members:
            for member in members:
                parts = Path(member.name).parts
                if not member.isfile() or len(parts) < 3 or not member.name.endswith(".csv"):
                    continue
                task_key = (parts[-3], parts[-2])
                if task_key != current:
                    if current is not None and traces:
                        yield (*current, traces)
                    if current is not None:
                        finished.add(current)
                    if task_key in finished:
                        raise InputError(
                            f"the archive lists files of task {task_key[1]} of {task_key[0]} "
                            "after other tasks' files; extract it and pass the folder",
                            source=archive,
                        )
                    current, traces = task_key, {}
                kind = Path(parts[-1]).stem
                if kind not in kinds:
                    continue
                handle = members.extractfile(member)
                data = handle.read() if handle is not None else b""
                traces[kind] = _parse_ifllm_trace(
                    data,
                    kind=kind,
                    source=f"{archive}:{member.name}",
                    drop_duplicates=drop_duplicates,
                )
    except (tarfile.TarError, OSError, EOFError) as error:
        raise InputError(
            f"cannot read the archive: {_first_line(error)}", source=archive
        ) from error
    if current is not None and traces:
        yield (*current, traces)


_QUERY_REQUIRED = (
    "query_ID",
    "user_id",
    "task_id",
    "user_query",
    "llm_response_1",
    "llm_response_2",
    "preference",
    "query_timestamp",
)
_QUERY_INTS = ("query_ID", "task_id", "adjustment")
_QUERY_FLOATS = ("likert_1", "likert_2", "preference")
_PREFERENCES = (0.0, 1.0, 2.0)


def read_ifllm_queries(path: StrPath) -> pl.DataFrame:
    """Read the IFllm query log (``query_logs_table.csv``): one row per question asked.

    All columns are kept. ``query_ID``, ``task_id`` and ``adjustment`` become Int64;
    ``likert_1``, ``likert_2`` (1–5) and ``preference`` nullable Float64; ``query_timestamp``
    a UTC datetime (it matches the traces' ``epoch_ms``). ``preference`` is 1.0 when
    response 1 (left) was preferred, 2.0 for response 2 (right) and null when none was given;
    single-response rows also carry 0.0 or 1.0, which is not a pairwise preference. An added
    Boolean column ``pairwise`` is True where the row has a second response.

    Parameters
    ----------
    path:
        ``query_logs_table.csv`` (comma-separated, with a header; responses span lines inside
        quotes).

    Returns
    -------
    pl.DataFrame
        The file's columns with the types above, plus ``pairwise``.

    Raises
    ------
    InputError
        On a missing required column (query_ID, user_id, task_id, user_query,
        llm_response_1, llm_response_2, preference, query_timestamp), a bad number, a
        preference other than 0, 1, 2 or empty, or a timestamp that is not
        "YYYY-MM-DD HH:MM:SS".

    Examples
    --------
    >>> import pathlib, tempfile
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "query_logs_table.csv"
    >>> _ = file.write_text(
    ...     "query_ID,user_id,task_id,user_query,llm_response_1,llm_response_2,preference,"
    ...     "query_timestamp\\n"
    ...     '1,w1,4,Why?,"Because,\\nreasons.",Dunno.,1.0,2025-04-23 22:32:38\\n'
    ... )
    >>> read_ifllm_queries(file).select("preference", "pairwise").rows()
    [(1.0, True)]
    """
    file = _existing_file(path)
    present = _header(file, ",")
    _require_columns(present, _QUERY_REQUIRED, source=file)
    raw = _read_columns(file, present, separator=",", null_values=None)
    columns = {name: raw[name] for name in present}
    for name in _QUERY_INTS:
        if name in columns:
            columns[name] = _parse_int(raw[name], source=file, field=name)
    for name in _QUERY_FLOATS:
        if name in columns:
            columns[name] = _parse_float(raw[name], source=file, field=name)
    bad = _first_true(columns["preference"].is_in(_PREFERENCES).not_())
    if bad is not None:
        raise InputError(
            f"preference {columns['preference'][bad]} is not 0, 1 or 2",
            source=file,
            row=bad + 1,
            field="preference",
            expected="1.0 (response 1), 2.0 (response 2), 0.0 or empty",
        )
    columns["query_timestamp"] = _parse_timestamp(raw["query_timestamp"], source=file)
    second = raw["llm_response_2"].cast(pl.String)
    columns["pairwise"] = (second.is_not_null() & (second.str.strip_chars() != "")).fill_null(False)
    return pl.DataFrame(columns)


def _parse_timestamp(column: pl.Series, *, source: StrPath) -> pl.Series:
    text = column.cast(pl.String).str.strip_chars()
    # IFllm writes whole seconds; tacitly's own exports add milliseconds (".123").
    parsed = text.str.strptime(pl.Datetime("ms", "UTC"), "%Y-%m-%d %H:%M:%S%.f", strict=False)
    bad = _first_true(parsed.is_null() & text.is_not_null())
    if bad is not None:
        raise InputError(
            f"{text[bad]!r} is not a timestamp",
            source=source,
            row=bad + 1,
            field="query_timestamp",
            expected="YYYY-MM-DD HH:MM:SS (optionally .mmm)",
        )
    return parsed


# --------------------------------------------------------------------------------------------
# OASST-ETC: word-level reading measures of OASST1 answers

_OASST_ETC_SOURCE = {
    "word_index": "number",
    "word": "text",
    "TRT": "fix_duration",
    "FFD": "first_fix_duration",
    "nFix": "fix_number",
    "TRT_n": "fix_duration_n",
    "FFD_n": "first_fix_duration_n",
    "nFix_n": "fix_number_n",
}
_OASST_ETC_SECONDS = ("TRT", "FFD")
_OASST_ETC_FILE = "word_cor_image_fixations_"


def read_oasst_etc_words(path: StrPath) -> pl.DataFrame:
    """Read one OASST-ETC word file (``word_cor_image_fixations_<prompt>.<response>.csv``).

    The files are semicolon-separated, one row per whitespace word of the answer as shown, with
    measures averaged over the readers of the trial (so fractional fixation counts occur).
    Durations are converted from seconds to milliseconds so that they share the unit of
    :func:`tacitly.signals.gaze.measures.reading_measures`. Some files hold rows with an empty
    ``text`` (slots of the displayed layout whose word was lost in the corpus's export: 12 rows
    in the released files, 5 of them with fixations); they are dropped, since no word of the
    answer can carry their values, with a warning naming the rows when they had been looked
    at. ``word_index`` keeps the file's numbering.

    Parameters
    ----------
    path:
        A word file with the columns ``number; fix_duration; first_fix_duration; fix_number;
        fix_duration_n; first_fix_duration_n; fix_number_n; text``.

    Returns
    -------
    pl.DataFrame
        ``trial`` (``"<prompt>.<response>"`` from the file name), ``prompt_id``, ``response``,
        ``word_index``, ``word``, ``TRT`` and ``FFD`` (ms), ``nFix``, and the same three
        normalised to sum to 1 over the answer (``TRT_n``, ``FFD_n``, ``nFix_n``).

    Raises
    ------
    InputError
        On a missing column, or a measure that is not a finite number >= 0.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "word_cor_image_fixations_3.1.csv"
    >>> _ = file.write_text(
    ...     "number;fix_duration;first_fix_duration;fix_number;fix_duration_n;"
    ...     "first_fix_duration_n;fix_number_n;text\\n"
    ...     "0;0.25;0.2;1.5;0.5;0.5;0.6;Hello\\n1;0.25;0.2;1.0;0.5;0.5;0.4;there.\\n"
    ... )
    >>> read_oasst_etc_words(file).select("trial", "word", "TRT", "nFix").rows()
    [('3.1', 'Hello', 250.0, 1.5), ('3.1', 'there.', 250.0, 1.0)]
    """
    file = _existing_file(path)
    trial = _oasst_etc_trial(file)
    required = list(_OASST_ETC_SOURCE.values())
    _require_columns(_header(file, ";"), required, source=file)
    raw = _read_columns(file, required, separator=";", null_values=None)
    if raw.height == 0:
        raise InputError("the file has a header but no words", source=file)
    index_column = _OASST_ETC_SOURCE["word_index"]
    _check_no_missing(raw[index_column], source=file, field=index_column)
    columns: dict[str, pl.Series] = {
        "word_index": _parse_int(raw[index_column], source=file, field=index_column)
    }
    columns["word"] = _as_text(raw, "text")
    for name, column in _OASST_ETC_SOURCE.items():
        if name in ("word_index", "word"):
            continue
        values = _parse_float(raw[column], source=file, field=column)
        _check_no_missing(values, source=file, field=column)
        _check_finite(values, source=file, field=column)
        bad = _first_true(values < 0)
        if bad is not None:
            raise InputError(
                f"negative value {values[bad]}", source=file, row=bad + 1, field=column
            )
        columns[name] = values * 1000.0 if name in _OASST_ETC_SECONDS else values
    table = _drop_blank_oasst_etc_slots(pl.DataFrame(columns), source=file)
    prompt, response = trial.split(".")
    return table.select(
        pl.lit(trial).alias("trial"),
        pl.lit(int(prompt), dtype=pl.Int64).alias("prompt_id"),
        pl.lit(int(response), dtype=pl.Int64).alias("response"),
        pl.all(),
    )


def read_oasst_etc(folder: StrPath) -> pl.DataFrame:
    """Read every OASST-ETC word file below ``folder`` (e.g. ``gaze_features_real/``).

    Parameters
    ----------
    folder:
        A folder holding ``set_<k>/word_cor_image_fixations_<prompt>.<response>.csv`` files
        (or the files themselves).

    Returns
    -------
    pl.DataFrame
        The tables of :func:`read_oasst_etc_words` stacked, with a ``set`` column (the
        ``set_<k>`` folder's number, null when the files are not in such a folder), sorted by
        set, prompt, response and word.

    Raises
    ------
    InputError
        When the folder does not exist or holds no word file, or on a bad file.

    Examples
    --------
    >>> read_oasst_etc("../shared/data/oasst_etc/gaze_features_real")  # doctest: +SKIP
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError("no such folder", source=root, expected="the gaze_features_real folder")
    files = sorted(root.rglob(f"{_OASST_ETC_FILE}*.csv"))
    if not files:
        raise InputError(
            f"no {_OASST_ETC_FILE}<prompt>.<response>.csv files below the folder", source=root
        )
    tables = []
    for file in files:
        set_name = file.parent.name
        set_number = (
            int(set_name[4:]) if set_name.startswith("set_") and set_name[4:].isdigit() else None
        )
        tables.append(
            read_oasst_etc_words(file).select(
                pl.lit(set_number, dtype=pl.Int64).alias("set"), pl.all()
            )
        )
    return pl.concat(tables).sort("set", "prompt_id", "response", "word_index", nulls_last=True)


def _drop_blank_oasst_etc_slots(table: pl.DataFrame, *, source: Path) -> pl.DataFrame:
    """Drop the word slots without text; warn when such a slot had been looked at."""
    blank = table["word"].is_null() | (table["word"].str.strip_chars() == "")
    measures = [name for name in _OASST_ETC_SOURCE if name not in ("word_index", "word")]
    looked_at = table.select(pl.any_horizontal([pl.col(name) > 0 for name in measures]))
    read_blank = (blank & looked_at.to_series()).arg_true().to_list()
    if read_blank:
        rows = ", ".join(str(row + 1) for row in read_blank)
        warnings.warn(
            f"{source}: rows {rows} have no word text but reading measures; they are dropped "
            "because no word of the answer can carry them",
            stacklevel=3,
        )
    return table.filter(~blank)


def _oasst_etc_trial(file: Path) -> str:
    stem = file.stem
    trial = stem[len(_OASST_ETC_FILE) :] if stem.startswith(_OASST_ETC_FILE) else ""
    parts = trial.split(".")
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise InputError(
            "cannot tell the trial from the file name",
            source=file,
            expected=f"{_OASST_ETC_FILE}<prompt>.<response>.csv",
        )
    return trial
