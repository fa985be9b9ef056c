"""Fixation detection on raw gaze samples: I-VT, I-DT, and resampling of irregular streams.

Input tables hold one gaze sample per row: ``time`` (ms), ``x``, ``y`` (px, origin at the
upper-left screen corner), optionally ``valid`` (bool), and optionally grouping columns named
with ``by`` (e.g. ``trial``, ``reader``). Output fixation tables hold the ``by`` columns followed
by ``onset``, ``offset``, ``duration`` (ms), ``x``, ``y`` (px) and ``n_samples``.

Policies shared by the detectors
--------------------------------
Groups
    Each combination of ``by`` values is detected independently; nothing (no velocity, no
    window, no fixation) ever spans two groups. Rows of a group need not be contiguous; groups
    are reported in order of first appearance, and fixations within a group by onset.
Time order
    ``time`` must be finite and non-decreasing within each group, otherwise
    :class:`~tacitly.errors.InputError` names the 1-based row where it goes wrong.
Invalid samples
    A sample is *invalid* when ``valid`` is false or null, or ``x`` or ``y`` is null or not
    finite. Invalid samples are removed before anything else: they never contribute to
    velocities, dispersions, positions or ``n_samples``. What is left forms *segments*: runs of
    valid samples in which consecutive samples are at most ``max_gap`` ms apart. A gap longer
    than ``max_gap`` — whether rows are missing or present but invalid — ends the segment, and
    no fixation spans two segments. Shorter losses (a dropped sample, a one-frame tracking
    failure) are bridged, as in the gap fill-in step of the Tobii I-VT filter (Olsen, 2012),
    whose 75 ms default is also ours; blinks (≥ 100 ms) always split fixations.
Onset, offset, duration
    ``onset`` is the time of the first sample of the fixation. With
    ``offset_convention="last_sample"`` (the default) ``offset`` is the time of its last sample
    and ``duration = offset - onset``, exactly as in pymovements, so tables can be compared with
    pymovements' events row by row. With ``"sample_end"`` the last sample is taken to last one
    nominal sample interval (``1000 / sampling_rate`` when given, else the median interval
    between consecutive samples of the group), so ``offset`` is the end of the last sample, a
    fixation of *n* samples at 1000 Hz lasts *n* ms, as in EyeLink reports and in
    :func:`~tacitly.signals.gaze.simulate.simulate_reading`'s ground truth. Prefer it for
    low-rate (webcam) streams, where one sample is 33 ms or more. ``min_duration`` is compared
    with ``duration`` under the chosen convention (``duration >= min_duration`` is kept).
Positions
    ``x`` and ``y`` of a fixation are the means of its valid samples in pixels, whatever unit
    the thresholds are in.

Reproducing pymovements
-----------------------
pymovements 0.28 (``Gaze.pix2deg()``, ``Gaze.pos2vel(method)``, ``Gaze.detect("ivt", ...)``)
gives the same fixations as::

    detect_fixations_ivt(samples, velocity_threshold=20.0, unit="deg", geometry=geometry,
                         min_duration=100.0, velocity_method=method, sampling_rate=rate,
                         max_gap=1.5 * 1000 / rate)

on regularly sampled data: ``sampling_rate`` makes velocities ``difference × rate`` as
pymovements computes them, and a ``max_gap`` between one and two sample intervals splits at
every invalid (NaN) sample, as pymovements' NaN velocities do. Velocities at segment edges that
would need samples outside the segment are undefined (pymovements' polars transforms give null
there), so such samples are never fixation samples. ``pymovements.transforms.numpy.pos2vel``
instead fills the first and last samples of a recording with one-sided estimates; fixations
touching the very first or last samples of a recording can then differ by those samples.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from tacitly.errors import InputError
from tacitly.signals.gaze.columns import group_columns

__all__ = [
    "FIXATION_COLUMNS",
    "ScreenGeometry",
    "detect_fixations_idt",
    "detect_fixations_ivt",
    "resample",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

Unit = Literal["deg", "px"]
VelocityMethod = Literal["preceding", "neighbors", "smooth", "fivepoint"]
OffsetConvention = Literal["last_sample", "sample_end"]

FIXATION_COLUMNS = ("onset", "offset", "duration", "x", "y", "n_samples")
"""Columns of a fixation table after the ``by`` columns."""

_SAMPLE_COLUMNS = ("time", "x", "y")
_MAX_GRID_POINTS = 100_000_000  # about 28 hours at 1000 Hz; each column then takes 800 MB
_UNITS = ("deg", "px")
_VELOCITY_METHODS = ("preceding", "neighbors", "smooth", "fivepoint")
_OFFSET_CONVENTIONS = ("last_sample", "sample_end")
_FIXATION_SCHEMA: dict[str, pl.DataType] = {
    "onset": pl.Float64(),
    "offset": pl.Float64(),
    "duration": pl.Float64(),
    "x": pl.Float64(),
    "y": pl.Float64(),
    "n_samples": pl.Int64(),
}


@dataclass(frozen=True)
class ScreenGeometry:
    """Screen size and viewing distance, to turn pixels into degrees of visual angle.

    Attributes
    ----------
    width_px, height_px:
        Screen resolution in pixels.
    width_cm, height_cm:
        Size of the visible screen area in centimetres.
    distance_cm:
        Distance from the eye to the screen centre in centimetres.

    Examples
    --------
    >>> screen = ScreenGeometry(width_px=1280, height_px=1024, width_cm=38.0, height_cm=30.0,
    ...                         distance_cm=68.0)
    >>> x, y = screen.pixels_to_degrees([123.0], [865.0])
    >>> round(float(x[0]), 6), round(float(y[0]), 6)
    (-12.707322, 8.65964)
    """

    width_px: int = field(metadata={"help": "Screen width in pixels."})
    height_px: int = field(metadata={"help": "Screen height in pixels."})
    width_cm: float = field(metadata={"help": "Visible screen width in centimetres."})
    height_cm: float = field(metadata={"help": "Visible screen height in centimetres."})
    distance_cm: float = field(metadata={"help": "Eye-to-screen-centre distance in centimetres."})

    def __post_init__(self) -> None:
        for name in ("width_px", "height_px", "width_cm", "height_cm", "distance_cm"):
            _check_positive(name, getattr(self, name))

    @property
    def distance_px(self) -> tuple[float, float]:
        """Eye-to-screen distance in horizontal and vertical pixel units."""
        return (
            self.distance_cm * (self.width_px / self.width_cm),
            self.distance_cm * (self.height_px / self.height_cm),
        )

    def pixels_to_degrees(
        self, x: npt.ArrayLike, y: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        """Visual angle of pixel positions relative to the screen centre, per axis.

        Follows pymovements' ``pix2deg`` with origin "upper left": the centre of the screen is
        pixel ``((width_px - 1) / 2, (height_px - 1) / 2)`` and each axis is converted on its
        own, ``atan2(x - centre_x, distance_px_x)`` in degrees (likewise for ``y``).

        Parameters
        ----------
        x, y:
            Pixel coordinates (scalars or arrays of the same shape).

        Returns
        -------
        tuple[numpy.ndarray, numpy.ndarray]
            Horizontal and vertical angles in degrees (float64).

        Examples
        --------
        A point 50 px right of the centre, with the eye 50 px away, lies 45° to the right:

        >>> screen = ScreenGeometry(width_px=101, height_px=101, width_cm=10.1, height_cm=10.1,
        ...                         distance_cm=5.0)
        >>> [round(float(v[0]), 9) for v in screen.pixels_to_degrees([100.0], [50.0])]
        [45.0, 0.0]
        """
        x_arr = np.asarray(x, dtype=np.float64)
        y_arr = np.asarray(y, dtype=np.float64)
        dist_x, dist_y = self.distance_px
        x_deg = np.degrees(np.arctan2(x_arr - (self.width_px - 1) / 2, dist_x))
        y_deg = np.degrees(np.arctan2(y_arr - (self.height_px - 1) / 2, dist_y))
        return x_deg, y_deg

    def degrees_per_pixel(self) -> tuple[float, float]:
        """Visual angle of one pixel at the screen centre, horizontally and vertically.

        Useful to translate a pixel threshold into degrees (or back) for a given set-up; away
        from the centre a pixel subtends slightly less.

        Examples
        --------
        >>> screen = ScreenGeometry(width_px=1920, height_px=1080, width_cm=53.0,
        ...                         height_cm=30.0, distance_cm=60.0)
        >>> [round(v, 5) for v in screen.degrees_per_pixel()]
        [0.02636, 0.02653]
        """
        dist_x, dist_y = self.distance_px
        return (
            float(np.degrees(2.0 * np.arctan(0.5 / dist_x))),
            float(np.degrees(2.0 * np.arctan(0.5 / dist_y))),
        )


# ---------------------------------------------------------------------------------------------
# Public detectors
# ---------------------------------------------------------------------------------------------


def detect_fixations_ivt(
    samples: pl.DataFrame,
    *,
    velocity_threshold: float = 20.0,
    unit: Unit = "deg",
    geometry: ScreenGeometry | None = None,
    min_duration: float = 100.0,
    max_gap: float = 75.0,
    velocity_method: VelocityMethod = "smooth",
    sampling_rate: float | None = None,
    offset_convention: OffsetConvention = "last_sample",
    by: str | Sequence[str] = (),
) -> pl.DataFrame:
    """Detect fixations with a velocity threshold (I-VT, Salvucci & Goldberg, 2000).

    Every valid sample gets a speed (norm of its 2-D velocity); samples slower than
    ``velocity_threshold`` are fixation samples, and each run of consecutive fixation samples
    within a segment (see the module notes on gaps and invalid samples) is one fixation, kept if
    its duration is at least ``min_duration``.

    Velocities are computed per segment, from positions in ``unit``:

    * ``"smooth"`` (default; alias ``"fivepoint"``, pymovements' default, Engbert's
      five-point estimate): ``((p[i+2] + p[i+1]) - (p[i-1] + p[i-2])) / Δt``; undefined for
      two samples at each segment end. The default because at 1000 Hz point-to-point
      differences of ordinary tracker noise (0.02° RMS) already exceed 20°/s and would shred
      fixations.
    * ``"preceding"`` (the classic point-to-point I-VT, fine at low rates such as resampled
      webcam gaze): ``(p[i] - p[i-1]) / Δt``; undefined for the first sample of a segment.
    * ``"neighbors"``: ``(p[i+1] - p[i-1]) / Δt``; undefined at both segment ends.

    ``Δt`` is the matching difference of sample times (so irregular streams get true
    velocities), or, when ``sampling_rate`` is given, its nominal value (``1 / rate``,
    ``2 / rate``, ``6 / rate``), which reproduces pymovements' ``pos2vel`` bit for bit. A sample
    whose velocity is undefined is never a fixation sample.

    Parameters
    ----------
    samples:
        Sample table with ``time`` (ms), ``x``, ``y`` (px), optional ``valid`` and the ``by``
        columns.
    velocity_threshold:
        Speed below which a sample belongs to a fixation, in ``unit`` per second: degrees per
        second for ``"deg"``, pixels per second for ``"px"`` (default: 20.0).
    unit:
        ``"deg"`` (visual angle, needs ``geometry``) or ``"px"`` (default: "deg").
    geometry:
        Screen geometry for converting pixels to degrees; required when ``unit="deg"``
        (default: None).
    min_duration:
        Shortest fixation kept, in ms (default: 100.0).
    max_gap:
        Longest time between consecutive valid samples, in ms, that a fixation may bridge
        (default: 75.0).
    velocity_method:
        ``"smooth"``, ``"fivepoint"`` (the same), ``"preceding"`` or ``"neighbors"``
        (default: "smooth").
    sampling_rate:
        Nominal sampling rate in Hz; when given, velocities use it instead of the sample time
        differences, as pymovements does (default: None).
    offset_convention:
        ``"last_sample"`` or ``"sample_end"``; see the module notes (default: "last_sample").
    by:
        Grouping columns; each group is detected independently and its values are copied to
        its fixations (default: ()).

    Returns
    -------
    polars.DataFrame
        The ``by`` columns, then ``onset``, ``offset``, ``duration``, ``x``, ``y``,
        ``n_samples``.

    Raises
    ------
    InputError
        If a column is missing, ``time`` goes backwards within a group, a parameter is out of
        range, or ``unit="deg"`` without ``geometry``.

    Examples
    --------
    >>> import polars as pl
    >>> samples = pl.DataFrame({
    ...     "time": [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0],
    ...     "x": [100.0, 100.0, 101.0, 100.0, 300.0, 500.0, 500.0, 501.0],
    ...     "y": [200.0] * 8,
    ... })
    >>> fix = detect_fixations_ivt(samples, velocity_threshold=1000.0, unit="px",
    ...                            velocity_method="preceding", min_duration=10.0)
    >>> fix.select("onset", "offset", "duration", "n_samples").rows()
    [(10.0, 30.0, 20.0, 3), (60.0, 70.0, 10.0, 2)]
    """
    by = group_columns(by)
    _check_positive("velocity_threshold", velocity_threshold)
    _check_common(unit, geometry, min_duration, max_gap, offset_convention)
    _check_choice("velocity_method", velocity_method, _VELOCITY_METHODS)
    if sampling_rate is not None:
        _check_positive("sampling_rate", sampling_rate)
    stream = _prepare_stream(samples, by=by, max_gap=max_gap)
    if stream.size == 0:
        return _empty_fixations(samples, by)
    ux, uy = _positions_in_unit(stream, unit, geometry)
    speed = _speed(ux, uy, stream, velocity_method, sampling_rate)
    # NaN speeds (undefined velocities) compare False, so they never start or extend a run.
    starts, ends = _runs_of(speed < velocity_threshold, stream.segment_start)
    return _fixation_table(stream, starts, ends, min_duration, offset_convention, sampling_rate, by)


def detect_fixations_idt(
    samples: pl.DataFrame,
    *,
    dispersion_threshold: float = 1.0,
    unit: Unit = "deg",
    geometry: ScreenGeometry | None = None,
    min_duration: float = 100.0,
    max_gap: float = 75.0,
    offset_convention: OffsetConvention = "last_sample",
    by: str | Sequence[str] = (),
) -> pl.DataFrame:
    """Detect fixations with a dispersion threshold (I-DT, Salvucci & Goldberg, 2000).

    Within each segment (see the module notes), starting at sample *i*:

    1. the window is the shortest run of samples ``i..j`` that covers ``min_duration``
       (``t[j] >= t[i] + min_duration``, with the last sample lasting one nominal interval
       under ``offset_convention="sample_end"``); if the segment ends first, no fixation can
       start at *i*;
    2. if the window's dispersion ``(max x - min x) + (max y - min y)`` is at most
       ``dispersion_threshold``, the window grows one sample at a time while the dispersion
       stays at most the threshold; the grown window is a fixation, and the search restarts
       at the sample after it;
    3. otherwise the search restarts at ``i + 1``.

    The initial-window dispersions of all samples are computed at once (range extrema over a
    sparse table, O(n log w) for windows of w samples), so Python work is per fixation, not per
    sample. Resample irregular or low-rate streams (webcams) with :func:`resample` first: the
    window rule assumes samples spread evenly over time.

    Parameters
    ----------
    samples:
        Sample table with ``time`` (ms), ``x``, ``y`` (px), optional ``valid`` and the ``by``
        columns.
    dispersion_threshold:
        Largest dispersion of a fixation, in ``unit`` (default: 1.0).
    unit:
        ``"deg"`` (visual angle, needs ``geometry``) or ``"px"`` (default: "deg").
    geometry:
        Screen geometry; required when ``unit="deg"`` (default: None).
    min_duration:
        Shortest fixation, in ms (default: 100.0).
    max_gap:
        Longest time between consecutive valid samples, in ms, that a fixation may bridge
        (default: 75.0).
    offset_convention:
        ``"last_sample"`` or ``"sample_end"``; see the module notes (default: "last_sample").
    by:
        Grouping columns (default: ()).

    Returns
    -------
    polars.DataFrame
        The ``by`` columns, then ``onset``, ``offset``, ``duration``, ``x``, ``y``,
        ``n_samples``.

    Raises
    ------
    InputError
        As :func:`detect_fixations_ivt`.

    Examples
    --------
    >>> import polars as pl
    >>> samples = pl.DataFrame({
    ...     "time": [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
    ...     "x": [100.0, 101.0, 100.0, 150.0, 200.0, 201.0, 200.0],
    ...     "y": [50.0] * 7,
    ... })
    >>> fix = detect_fixations_idt(samples, dispersion_threshold=2.0, unit="px",
    ...                            min_duration=20.0)
    >>> fix.select("onset", "offset", "x", "n_samples").rows()
    [(0.0, 20.0, 100.33333333333333, 3), (40.0, 60.0, 200.33333333333334, 3)]
    """
    by = group_columns(by)
    _check_positive("dispersion_threshold", dispersion_threshold)
    _check_common(unit, geometry, min_duration, max_gap, offset_convention)
    stream = _prepare_stream(samples, by=by, max_gap=max_gap)
    if stream.size == 0:
        return _empty_fixations(samples, by)
    ux, uy = _positions_in_unit(stream, unit, geometry)
    last_sample_length = _last_sample_length(stream, offset_convention, None)
    seg_start_idx = np.flatnonzero(stream.segment_start)
    seg_end_idx = np.append(seg_start_idx[1:], stream.size)
    seg_of = np.cumsum(stream.segment_start) - 1
    need = min_duration - last_sample_length[stream.group]
    window_end = _searchsorted_in_parts(
        stream.time, seg_start_idx, stream.time + need, seg_of, side="left"
    )
    # A window holds at least its first sample (need ≤ 0 or repeated timestamps).
    window_end = np.maximum(window_end, np.arange(stream.size))
    fits = window_end < seg_end_idx[seg_of]
    candidates = np.flatnonzero(fits)
    dispersion = _range_dispersion(ux, uy, candidates, window_end[candidates])
    passing = candidates[dispersion <= dispersion_threshold]
    starts, ends = _grow_fixations(
        ux, uy, passing, window_end, seg_end_idx[seg_of], dispersion_threshold
    )
    return _fixation_table(stream, starts, ends, min_duration, offset_convention, None, by)


def resample(
    samples: pl.DataFrame,
    *,
    rate_hz: float = 30.0,
    max_gap: float = 250.0,
    by: str | Sequence[str] = (),
) -> pl.DataFrame:
    """Resample an irregular gaze stream onto a regular time grid by linear interpolation.

    Webcam gaze arrives at 5–30 Hz with jittered timestamps; I-DT's duration window and
    fixed-rate velocities assume even spacing, so resample such streams before detection.

    For each group the grid starts at the group's first sample time ``t0`` and runs in steps of
    ``1000 / rate_hz`` ms up to its last sample time. A grid point at time *g* takes its
    neighbours from the input: the last sample at or before *g* and the first after it (the
    sample itself when one lies exactly at *g*), and interpolates ``x`` and ``y`` linearly
    between them. The point is valid only if both neighbours are valid and they are at most
    ``max_gap`` ms apart; invalid points keep their row (so the grid stays regular) with null
    ``x`` and ``y``. Columns other than ``time``, ``x``, ``y``, ``valid`` and ``by`` are
    dropped.

    Parameters
    ----------
    samples:
        Sample table with ``time`` (ms), ``x``, ``y`` (px), optional ``valid`` and the ``by``
        columns.
    rate_hz:
        Output sampling rate in Hz (default: 30.0).
    max_gap:
        Longest interval between two input samples, in ms, that may be interpolated across;
        it must exceed the stream's normal sample interval (200 ms at 5 Hz) (default: 250.0).
    by:
        Grouping columns; each group gets its own grid (default: ()).

    Returns
    -------
    polars.DataFrame
        The ``by`` columns, then ``time``, ``x``, ``y``, ``valid``.

    Examples
    --------
    >>> import polars as pl
    >>> samples = pl.DataFrame({"time": [0.0, 90.0, 210.0], "x": [0.0, 90.0, 330.0],
    ...                         "y": [5.0, 5.0, 5.0]})
    >>> resample(samples, rate_hz=20.0)["x"].to_list()
    [0.0, 50.0, 110.0, 210.0, 310.0]
    """
    by = group_columns(by)
    _check_positive("rate_hz", rate_hz)
    _check_positive("max_gap", max_gap)
    frame = _arrange(samples, by)
    time = _time_column(frame)
    x, y = _float_column(frame.table, "x"), _float_column(frame.table, "y")
    valid = _valid_mask(frame) & np.isfinite(x) & np.isfinite(y)
    if time.size == 0:
        return _empty_resampled(samples, by)
    group_start = np.flatnonzero(frame.group_start)
    group_end = np.append(group_start[1:], time.size)
    step = 1000.0 / rate_hz
    first, last = time[group_start], time[group_end - 1]
    n_points = _grid_sizes(first, last, step)
    _check_grid_size(n_points, frame.rows[group_start])
    grid_group = np.repeat(np.arange(group_start.size), n_points)
    k = np.arange(grid_group.size) - np.repeat(np.cumsum(n_points) - n_points, n_points)
    grid_time = first[grid_group] + k * step
    left = _searchsorted_in_parts(time, group_start, grid_time, grid_group, side="right") - 1
    exact = time[left] == grid_time
    right = np.where(exact, left, np.minimum(left + 1, group_end[grid_group] - 1))
    span = time[right] - time[left]
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(exact, 0.0, (grid_time - time[left]) / span)
    out_x = x[left] + (x[right] - x[left]) * fraction
    out_y = y[left] + (y[right] - y[left]) * fraction
    out_valid = valid[left] & valid[right] & (span <= max_gap)
    keys = _gather_keys(frame.table, by, group_start[grid_group])
    table = pl.DataFrame(
        {
            "time": grid_time,
            "x": np.where(out_valid, out_x, np.nan),
            "y": np.where(out_valid, out_y, np.nan),
            "valid": out_valid,
        }
    ).with_columns(pl.col("x", "y").fill_nan(None))
    return _with_keys(keys, table)


# ---------------------------------------------------------------------------------------------
# Input preparation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Arranged:
    """The input with each group's rows together, and where the groups start."""

    table: pl.DataFrame
    rows: IntArray  # 0-based row in the caller's table of each row of ``table``
    group_start: BoolArray  # True at the first row of each group


@dataclass(frozen=True)
class _Stream:
    """The valid samples of all groups, in group order, as flat arrays."""

    table: pl.DataFrame  # arranged input, to copy ``by`` values from
    rows: IntArray  # row in ``table`` of each valid sample
    time: FloatArray
    x: FloatArray
    y: FloatArray
    group: IntArray  # 0-based group index of each valid sample
    n_groups: int
    segment_start: BoolArray  # True where a new group starts or the gap exceeds max_gap

    @property
    def size(self) -> int:
        return int(self.time.size)


def _prepare_stream(samples: pl.DataFrame, *, by: Sequence[str], max_gap: float) -> _Stream:
    frame = _arrange(samples, by)
    time = _time_column(frame)
    x, y = _float_column(frame.table, "x"), _float_column(frame.table, "y")
    keep = _valid_mask(frame) & np.isfinite(x) & np.isfinite(y)
    group_all = np.cumsum(frame.group_start) - 1
    rows = np.flatnonzero(keep)
    time_kept = time[rows]
    group = group_all[rows]
    segment_start = np.ones(rows.size, dtype=np.bool_)
    segment_start[1:] = (group[1:] != group[:-1]) | (np.diff(time_kept) > max_gap)
    return _Stream(
        table=frame.table,
        rows=rows,
        time=time_kept,
        x=x[rows],
        y=y[rows],
        group=group,
        n_groups=int(group_all[-1] + 1) if group_all.size else 0,
        segment_start=segment_start,
    )


def _arrange(samples: pl.DataFrame, by: Sequence[str]) -> _Arranged:
    """Check the columns and bring each group's rows together, keeping their order."""
    if not isinstance(samples, pl.DataFrame):
        raise InputError(
            f"samples must be a polars DataFrame, got {type(samples).__name__}",
            expected="a polars DataFrame with time, x, y (and valid) columns",
        )
    by = list(by)
    for name in (*_SAMPLE_COLUMNS, *by):
        if name not in samples.columns:
            raise InputError(
                f'sample table has no column "{name}"',
                field=name,
                expected=f"columns {[*_SAMPLE_COLUMNS, *by]} (and optionally valid)",
            )
    clash = [name for name in by if name in (*_SAMPLE_COLUMNS, "valid", *FIXATION_COLUMNS)]
    if clash:
        raise InputError(
            f'"{clash[0]}" cannot be a grouping column',
            field=clash[0],
            expected="grouping columns other than sample and fixation columns",
        )
    n = samples.height
    rows = np.arange(n, dtype=np.int64)
    if not by or n == 0:
        group_start = np.zeros(n, dtype=np.bool_)
        group_start[:1] = True
        return _Arranged(table=samples, rows=rows, group_start=group_start)
    run_id = samples.select(pl.struct(by).rle_id()).to_series().to_numpy()
    n_groups = samples.select(pl.struct(by).n_unique()).item()
    table = samples
    if int(run_id[-1]) + 1 != n_groups:
        # A group's rows are scattered: gather them at its first appearance, order kept.
        first_row = (
            samples.with_row_index("__row")
            .select(pl.col("__row").min().over(by))
            .to_series()
            .to_numpy()
        )
        rows = np.argsort(first_row, kind="stable").astype(np.int64)
        table = samples[rows]
        run_id = table.select(pl.struct(by).rle_id()).to_series().to_numpy()
    group_start = np.ones(n, dtype=np.bool_)
    group_start[1:] = run_id[1:] != run_id[:-1]
    return _Arranged(table=table, rows=rows, group_start=group_start)


def _time_column(frame: _Arranged) -> FloatArray:
    time = _float_column(frame.table, "time")
    bad = np.flatnonzero(~np.isfinite(time))
    if bad.size:
        raise InputError(
            "time is missing or not finite",
            row=int(frame.rows[bad[0]]) + 1,
            field="time",
            expected="a finite time in milliseconds",
        )
    backwards = np.flatnonzero((np.diff(time) < 0) & ~frame.group_start[1:]) + 1
    if backwards.size:
        at = int(backwards[0])
        raise InputError(
            f"time goes backwards within its group ({time[at - 1]:g} ms, then {time[at]:g} ms)",
            row=int(frame.rows[at]) + 1,
            field="time",
            expected="non-decreasing time within each group",
        )
    return time


def _float_column(table: pl.DataFrame, name: str) -> FloatArray:
    column = table.get_column(name)
    if not column.dtype.is_numeric():
        raise InputError(
            f'column "{name}" holds {column.dtype}, not numbers',
            field=name,
            expected="a numeric column",
        )
    return np.asarray(column.cast(pl.Float64).to_numpy(), dtype=np.float64)


def _valid_mask(frame: _Arranged) -> BoolArray:
    if "valid" not in frame.table.columns:
        return np.ones(frame.table.height, dtype=np.bool_)
    column = frame.table.get_column("valid")
    if column.dtype == pl.Boolean:
        flags = column.fill_null(False)
    elif column.dtype.is_numeric():
        flags = column.cast(pl.Float64).fill_null(0.0).fill_nan(0.0) != 0.0
    else:
        raise InputError(
            f'column "valid" holds {column.dtype}, not booleans',
            field="valid",
            expected="a boolean column",
        )
    return np.asarray(flags.to_numpy(), dtype=np.bool_)


def _positions_in_unit(
    stream: _Stream, unit: Unit, geometry: ScreenGeometry | None
) -> tuple[FloatArray, FloatArray]:
    if unit == "px":
        return stream.x, stream.y
    assert geometry is not None  # checked by _check_common
    return geometry.pixels_to_degrees(stream.x, stream.y)


# ---------------------------------------------------------------------------------------------
# Parameter checks
# ---------------------------------------------------------------------------------------------


def _check_common(
    unit: str,
    geometry: ScreenGeometry | None,
    min_duration: float,
    max_gap: float,
    offset_convention: str,
) -> None:
    _check_choice("unit", unit, _UNITS)
    if unit == "deg" and geometry is None:
        raise InputError(
            'unit="deg" needs the screen geometry to convert pixels to degrees',
            field="geometry",
            expected='a ScreenGeometry, or unit="px" with a threshold in pixels',
        )
    if geometry is not None and not isinstance(geometry, ScreenGeometry):
        raise InputError(
            f"geometry must be a ScreenGeometry, got {type(geometry).__name__}",
            field="geometry",
            expected="a ScreenGeometry",
        )
    if not (np.isfinite(min_duration) and min_duration >= 0):
        raise InputError(
            f"min_duration must be a finite number ≥ 0, got {min_duration!r}",
            field="min_duration",
            expected="≥ 0 ms",
        )
    _check_positive("max_gap", max_gap, allow_inf=True)
    _check_choice("offset_convention", offset_convention, _OFFSET_CONVENTIONS)


def _check_positive(name: str, value: float, *, allow_inf: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and value > 0 and (allow_inf or np.isfinite(value))
    if not ok:
        raise InputError(
            f"{name} must be a positive number, got {value!r}", field=name, expected="> 0"
        )


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise InputError(
            f"{name} {value!r} is not supported", field=name, expected=f"one of {list(choices)}"
        )


# ---------------------------------------------------------------------------------------------
# I-VT internals
# ---------------------------------------------------------------------------------------------


def _shifted(values: FloatArray, offset: int, segment: IntArray) -> FloatArray:
    """``values[i + offset]`` where that sample is in the same segment as ``i``, else NaN."""
    out = np.full(values.size, np.nan)
    if abs(offset) >= values.size:
        return out
    if offset > 0:
        out[:-offset] = np.where(segment[offset:] == segment[:-offset], values[offset:], np.nan)
    else:
        k = -offset
        out[k:] = np.where(segment[:-k] == segment[k:], values[:-k], np.nan)
    return out


def _speed(
    ux: FloatArray,
    uy: FloatArray,
    stream: _Stream,
    method: str,
    sampling_rate: float | None,
) -> FloatArray:
    """Speed of every valid sample in unit/s; NaN where the method needs missing neighbours."""
    segment = np.cumsum(stream.segment_start) - 1

    # The operation order mirrors pymovements' polars transforms so fixed-rate results match
    # bit for bit.
    def derivative(values: FloatArray) -> FloatArray:
        if method == "preceding":
            change = values - _shifted(values, -1, segment)
            if sampling_rate is not None:
                return change * sampling_rate
            return change / (stream.time - _shifted(stream.time, -1, segment)) * 1000.0
        if method == "neighbors":
            change = _shifted(values, 1, segment) - _shifted(values, -1, segment)
            if sampling_rate is not None:
                return change * (sampling_rate / 2)
            elapsed = _shifted(stream.time, 1, segment) - _shifted(stream.time, -1, segment)
            return change / elapsed * 1000.0
        change = _five_point_sum(values, segment)
        if sampling_rate is not None:
            return change * (sampling_rate / 6)
        return change / _five_point_sum(stream.time, segment) * 1000.0

    with np.errstate(invalid="ignore", divide="ignore"):
        vx = derivative(ux)
        vy = derivative(uy)
        speed: FloatArray = np.sqrt(vx * vx + vy * vy)
    # Repeated timestamps make 0/0 or x/0: no defined velocity.
    speed[~np.isfinite(speed)] = np.nan
    return speed


def _five_point_sum(values: FloatArray, segment: IntArray) -> FloatArray:
    return (
        _shifted(values, 2, segment)
        + _shifted(values, 1, segment)
        - _shifted(values, -1, segment)
        - _shifted(values, -2, segment)
    )


def _runs_of(flags: BoolArray, segment_start: BoolArray) -> tuple[IntArray, IntArray]:
    """First and last index of each run of True flags, runs cut at segment starts."""
    begins_run = flags.copy()
    begins_run[1:] &= ~flags[:-1] | segment_start[1:]
    ends_run = flags.copy()
    ends_run[:-1] &= ~flags[1:] | segment_start[1:]
    return np.flatnonzero(begins_run), np.flatnonzero(ends_run)


# ---------------------------------------------------------------------------------------------
# I-DT internals
# ---------------------------------------------------------------------------------------------


def _range_dispersion(ux: FloatArray, uy: FloatArray, lo: IntArray, hi: IntArray) -> FloatArray:
    """Dispersion of ``[lo[k], hi[k]]`` (inclusive) for every k, via a sparse table.

    Level L of the table holds the extrema of the 2**L samples starting at each index; a range
    is covered by two (overlapping) blocks of the largest level that fits. Only one level is
    kept in memory at a time, answering the ranges whose size needs it.
    """
    result = np.empty(lo.size)
    if lo.size == 0:
        return result
    level = np.frexp((hi - lo + 1).astype(np.float64))[1].astype(np.int64) - 1
    x_max, x_min, y_max, y_min = ux, ux, uy, uy
    for current in range(int(level.max()) + 1):
        if current > 0:
            half = 1 << (current - 1)
            x_max = np.maximum(x_max[:-half], x_max[half:])
            x_min = np.minimum(x_min[:-half], x_min[half:])
            y_max = np.maximum(y_max[:-half], y_max[half:])
            y_min = np.minimum(y_min[:-half], y_min[half:])
        chosen = np.flatnonzero(level == current)
        if chosen.size == 0:
            continue
        a = lo[chosen]
        b = hi[chosen] - (1 << current) + 1
        result[chosen] = (np.maximum(x_max[a], x_max[b]) - np.minimum(x_min[a], x_min[b])) + (
            np.maximum(y_max[a], y_max[b]) - np.minimum(y_min[a], y_min[b])
        )
    return result


def _grow_fixations(
    ux: FloatArray,
    uy: FloatArray,
    passing: IntArray,
    window_end: IntArray,
    segment_end: IntArray,
    threshold: float,
) -> tuple[IntArray, IntArray]:
    """Run the I-DT scan over the starts whose initial window passes; one step per fixation."""
    starts: list[int] = []
    ends: list[int] = []
    k = 0
    while k < passing.size:
        first = int(passing[k])
        last = _grow_window(
            ux, uy, first, int(window_end[first]), int(segment_end[first]), threshold
        )
        starts.append(first)
        ends.append(last)
        k = int(np.searchsorted(passing, last + 1))
    return np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)


def _grow_window(
    ux: FloatArray, uy: FloatArray, first: int, last: int, stop: int, threshold: float
) -> int:
    """Last index of the longest window from ``first`` with dispersion ≤ threshold.

    Extends ``first..last`` (already within the threshold) in doubling chunks, so the work is
    proportional to the fixation's length.
    """
    extrema = [ux[first : last + 1].max(), ux[first : last + 1].min()]
    extrema += [uy[first : last + 1].max(), uy[first : last + 1].min()]
    chunk = max(32, last - first + 1)
    position = last + 1
    while position < stop:
        end = min(position + chunk, stop)
        x_max = np.maximum(np.maximum.accumulate(ux[position:end]), extrema[0])
        x_min = np.minimum(np.minimum.accumulate(ux[position:end]), extrema[1])
        y_max = np.maximum(np.maximum.accumulate(uy[position:end]), extrema[2])
        y_min = np.minimum(np.minimum.accumulate(uy[position:end]), extrema[3])
        over = np.flatnonzero((x_max - x_min) + (y_max - y_min) > threshold)
        if over.size:
            return position + int(over[0]) - 1
        extrema = [x_max[-1], x_min[-1], y_max[-1], y_min[-1]]
        position = end
        chunk *= 2
    return stop - 1


# ---------------------------------------------------------------------------------------------
# Shared internals
# ---------------------------------------------------------------------------------------------


def _searchsorted_in_parts(
    values: FloatArray,
    part_start: IntArray,
    query: FloatArray,
    query_part: IntArray,
    *,
    side: Literal["left", "right"],
) -> IntArray:
    """``np.searchsorted`` restricted to one part of ``values`` per query, for all at once.

    ``values`` is non-decreasing within each part (``part_start`` holds the parts' first
    indices). Returns, for each query, the first index of its part whose value is ≥ the query
    (``side="left"``) or > it (``"right"``), or the part's end. The parts are laid end to end
    on one increasing key for a single search; the few indices that rounding of that key may
    misplace are then corrected against the exact values.
    """
    n = values.size
    part_end = np.append(part_start[1:], n)
    part_of = np.repeat(np.arange(part_start.size), part_end - part_start)
    origin = values[part_start]
    span = values[part_end - 1] - origin
    base = np.concatenate([[0.0], np.cumsum(span + 1.0)[:-1]])
    key = values - origin[part_of] + base[part_of]
    relative = np.clip(query - origin[query_part], -0.5, span[query_part] + 0.5)
    approx = np.searchsorted(key, relative + base[query_part], side=side).astype(np.int64)
    lo, hi = part_start[query_part], part_end[query_part]
    found: IntArray = np.clip(approx, lo, hi)

    def reached(index: IntArray) -> BoolArray:
        at = values[np.minimum(index, n - 1)]
        hit: BoolArray = at >= query if side == "left" else at > query
        return hit

    while True:
        back = (found > lo) & reached(found - 1)
        if not back.any():
            break
        found[back] -= 1
    while True:
        ahead = (found < hi) & ~reached(found)
        if not ahead.any():
            break
        found[ahead] += 1
    return found


def _last_sample_length(
    stream: _Stream, offset_convention: str, sampling_rate: float | None
) -> FloatArray:
    """How long the last sample of a fixation is taken to last, per group (ms)."""
    if offset_convention == "last_sample":
        return np.zeros(stream.n_groups)
    if sampling_rate is not None:
        return np.full(stream.n_groups, 1000.0 / sampling_rate)
    inside = ~stream.segment_start
    inside[0] = False
    intervals = np.zeros(stream.size)
    intervals[1:] = np.diff(stream.time)
    medians = (
        pl.DataFrame({"group": stream.group[inside], "interval": intervals[inside]})
        .group_by("group")
        .agg(pl.col("interval").median())
    )
    length = np.zeros(stream.n_groups)
    length[medians["group"].to_numpy()] = medians["interval"].to_numpy()
    return length


def _fixation_table(
    stream: _Stream,
    starts: IntArray,
    ends: IntArray,
    min_duration: float,
    offset_convention: str,
    sampling_rate: float | None,
    by: Sequence[str],
) -> pl.DataFrame:
    onset = stream.time[starts]
    offset = (
        stream.time[ends]
        + _last_sample_length(stream, offset_convention, sampling_rate)[stream.group[starts]]
    )
    duration = offset - onset
    keep = duration >= min_duration
    starts, ends = starts[keep], ends[keep]
    count = ends - starts + 1
    table = pl.DataFrame(
        {
            "onset": onset[keep],
            "offset": offset[keep],
            "duration": duration[keep],
            "x": _sums(stream.x, starts, ends) / count,
            "y": _sums(stream.y, starts, ends) / count,
            "n_samples": count.astype(np.int64),
        },
        schema=_FIXATION_SCHEMA,
    )
    return _with_keys(_gather_keys(stream.table, by, stream.rows[starts]), table)


def _sums(values: FloatArray, starts: IntArray, ends: IntArray) -> FloatArray:
    """Sum of ``values[s : e + 1]`` for each run, exactly per run (no global cumsum drift)."""
    if starts.size == 0:
        return np.zeros(0)
    padded = np.append(values, 0.0)
    bounds = np.column_stack([starts, ends + 1]).ravel()
    summed: FloatArray = np.add.reduceat(padded, bounds)[0::2]
    return summed


def _gather_keys(table: pl.DataFrame, by: Sequence[str], rows: IntArray) -> pl.DataFrame:
    if not by:
        return pl.DataFrame()
    return table.select(pl.col(list(by)).gather(pl.Series(rows, dtype=pl.Int64)))


def _with_keys(keys: pl.DataFrame, table: pl.DataFrame) -> pl.DataFrame:
    if keys.width == 0:
        return table
    return pl.concat([keys, table], how="horizontal")


def _empty_fixations(samples: pl.DataFrame, by: Sequence[str]) -> pl.DataFrame:
    schema = {name: samples.schema[name] for name in by} | dict(_FIXATION_SCHEMA)
    return pl.DataFrame(schema=schema)


def _empty_resampled(samples: pl.DataFrame, by: Sequence[str]) -> pl.DataFrame:
    schema = {name: samples.schema[name] for name in by}
    schema |= {"time": pl.Float64(), "x": pl.Float64(), "y": pl.Float64(), "valid": pl.Boolean()}
    return pl.DataFrame(schema=schema)


def _check_grid_size(n_points: IntArray, first_rows: IntArray) -> None:
    # Guards against a time column in the wrong unit (s or ns read as ms), which would
    # otherwise ask numpy for terabytes.
    if int(n_points.sum()) > _MAX_GRID_POINTS:
        largest = int(np.argmax(n_points))
        raise InputError(
            f"the resampled grid would have {int(n_points.sum()):,} points "
            f"({int(n_points[largest]):,} in the group starting here)",
            row=int(first_rows[largest]) + 1,
            field="time",
            expected=f"at most {_MAX_GRID_POINTS:,} points: check that time is in ms",
        )


def _grid_sizes(first: FloatArray, last: FloatArray, step: float) -> IntArray:
    """Number of grid points ``first + k * step`` that do not pass ``last``, per group."""
    count = np.floor((last - first) / step).astype(np.int64)
    # Division can round across an integer; settle it on the grid times themselves.
    count += first + (count + 1) * step <= last
    count -= first + count * step > last
    return count + 1
