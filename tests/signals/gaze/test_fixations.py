"""Tests for tacitly.signals.gaze.fixations: hand-built sample streams with literal fixations."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest

from tacitly.errors import InputError
from tacitly.signals.gaze.fixations import (
    FIXATION_COLUMNS,
    ScreenGeometry,
    detect_fixations_idt,
    detect_fixations_ivt,
    resample,
)

# 1000 px wide and 50 cm wide at 50 cm: the eye is 1000 px from the screen.
GEOMETRY = ScreenGeometry(
    width_px=1000, height_px=800, width_cm=50.0, height_cm=40.0, distance_cm=50.0
)
LAB_SCREEN = ScreenGeometry(
    width_px=1280, height_px=1024, width_cm=38.0, height_cm=30.0, distance_cm=68.0
)


def _samples(
    x: list[float], *, y: list[float] | None = None, step: float = 10.0, **extra: list[object]
) -> pl.DataFrame:
    n = len(x)
    table = {
        "time": [step * i for i in range(n)],
        "x": [float(v) for v in x],
        "y": [50.0] * n if y is None else [float(v) for v in y],
    }
    return pl.DataFrame({**table, **extra})


def _ivt_px(samples: pl.DataFrame, **kwargs: object) -> pl.DataFrame:
    """I-VT at 1000 px/s (10 px per 10 ms sample) on point-to-point velocities."""
    options: dict[str, object] = {
        "velocity_threshold": 1000.0,
        "unit": "px",
        "velocity_method": "preceding",
        "min_duration": 20.0,
    }
    options.update(kwargs)
    return detect_fixations_ivt(samples, **options)  # type: ignore[arg-type]


def _assert_rows(got: list[tuple[object, ...]], expected: list[tuple[float, ...]]) -> None:
    """Rows equal, floats to 1e-12 relative (means like 608 / 6 are not exact decimals)."""
    assert [len(row) for row in got] == [len(row) for row in expected]
    flat_got = [value for row in got for value in row]
    assert flat_got == pytest.approx([value for row in expected for value in row], rel=1e-12)


def _events(fixations: pl.DataFrame) -> list[tuple[float, ...]]:
    return fixations.select("onset", "offset", "duration", "n_samples").rows()


# Two fixations (samples 1-4 near x=100, samples 7-11 near x=300) around a two-sample saccade.
# Sample 0 has no preceding sample, so no velocity, and is never a fixation sample.
TWO_FIXATIONS = [100, 101, 100, 101, 100, 200, 300, 300, 301, 300, 301, 300]


# --- I-VT -----------------------------------------------------------------------------------


def test_ivt_two_fixations_and_a_saccade() -> None:
    fixations = _ivt_px(_samples(TWO_FIXATIONS))
    assert fixations.columns == list(FIXATION_COLUMNS)
    assert fixations.rows() == [
        (10.0, 40.0, 30.0, 100.5, 50.0, 4),
        (70.0, 110.0, 40.0, 300.4, 50.0, 5),
    ]


def test_ivt_sample_end_convention_adds_one_sample_interval() -> None:
    fixations = _ivt_px(_samples(TWO_FIXATIONS), offset_convention="sample_end")
    assert _events(fixations) == [(10.0, 50.0, 40.0, 4), (70.0, 120.0, 50.0, 5)]


@pytest.mark.parametrize(
    ("min_duration", "expected"),
    [
        pytest.param(30.0, [(10.0, 40.0, 30.0, 4), (70.0, 110.0, 40.0, 5)], id="equal-is-kept"),
        pytest.param(31.0, [(70.0, 110.0, 40.0, 5)], id="shorter-dropped"),
        pytest.param(41.0, [], id="all-dropped"),
    ],
)
def test_ivt_min_duration(min_duration: float, expected: list[tuple[float, ...]]) -> None:
    assert _events(_ivt_px(_samples(TWO_FIXATIONS), min_duration=min_duration)) == expected


@pytest.mark.parametrize("method", ["smooth", "fivepoint", "neighbors", "preceding"])
def test_ivt_fixed_rate_velocities_equal_time_based_ones_on_regular_samples(method: str) -> None:
    samples = _samples(TWO_FIXATIONS * 3)
    by_time = _ivt_px(samples, velocity_method=method)
    by_rate = _ivt_px(samples, velocity_method=method, sampling_rate=100.0)
    assert by_time.equals(by_rate)


STEADY = [100, 101] * 12 + [100]  # 25 samples, t = 0..240 ms, all one fixation


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        # Invalid from t=80 to t=170: the valid neighbours are 110 ms apart > max_gap (75 ms).
        pytest.param(
            range(8, 18),
            [(10.0, 70.0, 60.0, 7, 704 / 7), (190.0, 240.0, 50.0, 6, 100.5)],
            id="long-invalid-run-splits",
        ),
        # One invalid sample leaves 20 ms between valid ones: bridged.
        pytest.param(range(8, 9), [(10.0, 240.0, 230.0, 23, 2312 / 23)], id="bridged"),
    ],
)
@pytest.mark.parametrize("how", ["valid-false", "nan-position"])
def test_ivt_invalid_samples(broken: range, expected: list[tuple[float, ...]], how: str) -> None:
    x: list[float] = [float(v) for v in STEADY]
    valid = [True] * len(x)
    for i in broken:
        if how == "valid-false":
            valid[i] = False
            x[i] = 999.0  # garbage that must not reach any mean
        else:
            x[i] = float("nan")
    fixations = _ivt_px(_samples(x, valid=valid))
    got = fixations.select("onset", "offset", "duration", "n_samples", "x").rows()
    _assert_rows(got, expected)


@pytest.mark.parametrize(
    ("max_gap", "expected"),
    [
        pytest.param(75.0, [(10.0, 30.0, 20.0, 3), (140.0, 160.0, 20.0, 3)], id="gap-splits"),
        pytest.param(150.0, [(10.0, 160.0, 150.0, 7)], id="gap-bridged"),
    ],
)
def test_ivt_time_gap_longer_than_max_gap_splits(
    max_gap: float, expected: list[tuple[float, ...]]
) -> None:
    samples = pl.DataFrame(
        {
            "time": [0.0, 10.0, 20.0, 30.0, 130.0, 140.0, 150.0, 160.0],
            "x": [100.0] * 8,
            "y": [50.0] * 8,
        }
    )
    assert _events(_ivt_px(samples, max_gap=max_gap)) == expected


@pytest.mark.parametrize(
    ("unit", "threshold", "n_fixations"),
    [
        # 2 px per 10 ms near the centre, 1000 px from the eye: 200 px/s, about 11.46 deg/s.
        pytest.param("deg", 20.0, 1, id="deg-20-is-slow"),
        pytest.param("deg", 11.0, 0, id="deg-11-is-fast"),
        pytest.param("px", 20.0, 0, id="px-20-is-fast"),
        pytest.param("px", 300.0, 1, id="px-300-is-slow"),
    ],
)
def test_ivt_threshold_in_degrees_or_pixels(unit: str, threshold: float, n_fixations: int) -> None:
    drift = _samples(list(range(490, 512, 2)), y=[400.0] * 11)
    fixations = detect_fixations_ivt(
        drift,
        velocity_threshold=threshold,
        unit=unit,  # type: ignore[arg-type]
        geometry=GEOMETRY,
        velocity_method="preceding",
        min_duration=50.0,
    )
    assert fixations.height == n_fixations
    if n_fixations:
        assert fixations.rows() == [(10.0, 100.0, 90.0, 501.0, 400.0, 10)]


def test_groups_are_detected_independently() -> None:
    # Without groups the two trials would join into one fixation from 10 to 90 ms.
    samples = pl.DataFrame(
        {
            "trial": [1] * 5 + [2] * 5,
            "time": [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0],
            "x": [100.0] * 5 + [101.0] * 5,
            "y": [50.0] * 10,
        }
    )
    assert _events(_ivt_px(samples)) == [(10.0, 90.0, 80.0, 9)]
    grouped = _ivt_px(samples, by=["trial"])
    assert grouped.columns == ["trial", *FIXATION_COLUMNS]
    assert grouped.select("trial", "onset", "offset", "x").rows() == [
        (1, 10.0, 40.0, 100.0),
        (2, 60.0, 90.0, 101.0),
    ]


def test_groups_with_scattered_rows_and_restarting_time() -> None:
    one = _samples(TWO_FIXATIONS)
    rows = []
    for reader, page in [("ann", 1), ("bob", 1), ("ann", 2)]:
        rows.append(one.with_columns(reader=pl.lit(reader), page=pl.lit(page)))
    table = pl.concat(rows)
    # Interleave the readers' rows; each group's own order stays intact.
    order = np.argsort(np.tile(np.arange(one.height), 3), kind="stable")
    scattered = table[order]
    fixations = _ivt_px(scattered, by=["reader", "page"])
    assert fixations.select("reader", "page", "onset", "offset").rows() == [
        ("ann", 1, 10.0, 40.0),
        ("ann", 1, 70.0, 110.0),
        ("bob", 1, 10.0, 40.0),
        ("bob", 1, 70.0, 110.0),
        ("ann", 2, 10.0, 40.0),
        ("ann", 2, 70.0, 110.0),
    ]


# --- I-DT -----------------------------------------------------------------------------------

# Fixation 1: samples 0-5, dispersion (103 - 100) + (51 - 50) = 4.
# Sample 6 is in flight; fixation 2: samples 7-12, dispersion 203 - 200 = 3; sample 13 leaves.
IDT_X = [100, 102, 101, 103, 100, 102, 150, 200, 201, 203, 200, 202, 201, 250]
IDT_Y = [50, 51, 50, 51, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50]
IDT_FIRST = (0.0, 50.0, 50.0, 608 / 6, 302 / 6, 6)
IDT_SECOND = (70.0, 120.0, 50.0, 1207 / 6, 50.0, 6)


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        pytest.param(5.0, [IDT_FIRST, IDT_SECOND], id="both"),
        pytest.param(4.0, [IDT_FIRST, IDT_SECOND], id="equal-threshold-is-inside"),
        pytest.param(3.5, [IDT_SECOND], id="first-too-dispersed"),
        pytest.param(2.5, [], id="none"),
    ],
)
def test_idt_on_hand_built_samples(threshold: float, expected: list[tuple[float, ...]]) -> None:
    fixations = detect_fixations_idt(
        _samples(IDT_X, y=IDT_Y), dispersion_threshold=threshold, unit="px", min_duration=40.0
    )
    assert fixations.columns == list(FIXATION_COLUMNS)
    _assert_rows(fixations.rows(), expected)


def test_idt_window_must_cover_min_duration() -> None:
    # 60 ms needs 7 samples; fixation 1 has only 6 and fixation 2 only 6.
    fixations = detect_fixations_idt(
        _samples(IDT_X, y=IDT_Y), dispersion_threshold=5.0, unit="px", min_duration=60.0
    )
    assert fixations.height == 0


def test_idt_sample_end_convention() -> None:
    fixations = detect_fixations_idt(
        _samples(IDT_X, y=IDT_Y),
        dispersion_threshold=5.0,
        unit="px",
        min_duration=50.0,
        offset_convention="sample_end",
    )
    assert _events(fixations) == [(0.0, 60.0, 60.0, 6), (70.0, 130.0, 60.0, 6)]


def test_idt_does_not_bridge_a_long_gap() -> None:
    valid = [True] * 14
    valid[3] = False  # leaves a 20 ms gap, bridged by the default max_gap
    fixations = detect_fixations_idt(
        _samples(IDT_X, y=IDT_Y, valid=valid),
        dispersion_threshold=5.0,
        unit="px",
        min_duration=40.0,
        max_gap=15.0,  # now even one missing sample splits
    )
    # Samples 0-2 are too short for a 40 ms window and 4-5 run into the saccade;
    # fixation 2 is untouched.
    assert _events(fixations) == [(70.0, 120.0, 50.0, 6)]


def test_idt_in_degrees_matches_pixels_near_the_centre() -> None:
    x = [v + 400 for v in IDT_X]
    y = [v + 350 for v in IDT_Y]
    px_per_deg = 1.0 / GEOMETRY.degrees_per_pixel()[0]
    in_px = detect_fixations_idt(
        _samples(x, y=y), dispersion_threshold=4.5, unit="px", min_duration=40.0
    )
    in_deg = detect_fixations_idt(
        _samples(x, y=y),
        dispersion_threshold=4.5 / px_per_deg,
        unit="deg",
        geometry=GEOMETRY,
        min_duration=40.0,
    )
    assert _events(in_deg) == _events(in_px) == [(0.0, 50.0, 50.0, 6), (70.0, 120.0, 50.0, 6)]


def test_idt_large_stream_matches_a_sample_by_sample_reference() -> None:
    rng = np.random.default_rng(3)
    samples = _synthetic_stream(6000, rng, noise=0.3)
    fast = detect_fixations_idt(samples, dispersion_threshold=4.0, unit="px", min_duration=50.0)
    valid = samples["valid"].to_numpy()
    x = samples["x"].to_numpy()[valid]
    y = samples["y"].to_numpy()[valid]
    t = samples["time"].to_numpy()[valid]
    assert fast.height > 10
    assert _events(fast) == _reference_idt(t, x, y, threshold=4.0, min_duration=50.0, gap=75.0)


def _reference_idt(
    t: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    *,
    threshold: float,
    min_duration: float,
    gap: float,
) -> list[tuple[float, ...]]:
    """Salvucci & Goldberg's I-DT written plainly, one sample at a time."""

    def dispersion(a: int, b: int) -> float:
        return float(np.ptp(x[a : b + 1]) + np.ptp(y[a : b + 1]))

    n = len(t)
    segment_end = np.empty(n, dtype=int)
    end = n
    for i in range(n - 1, -1, -1):
        segment_end[i] = end
        if i > 0 and t[i] - t[i - 1] > gap:
            end = i
    found = []
    i = 0
    while i < n:
        j = i
        while j < segment_end[i] and t[j] < t[i] + min_duration:
            j += 1
        if j == segment_end[i] or dispersion(i, j) > threshold:
            i += 1
            continue
        while j + 1 < segment_end[i] and dispersion(i, j + 1) <= threshold:
            j += 1
        found.append((float(t[i]), float(t[j]), float(t[j] - t[i]), j - i + 1))
        i = j + 1
    return found


# --- resampling -----------------------------------------------------------------------------

IRREGULAR = {
    "time": [0.0, 100.0, 180.0, 300.0, 400.0, 500.0],
    "x": [0.0, 100.0, 300.0, 300.0, 500.0, 400.0],
    "y": [10.0, 10.0, 20.0, 20.0, 20.0, 30.0],
}
GRID_TIME = [0.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0, 350.0, 400.0, 450.0, 500.0]
GRID_X = [0.0, 50.0, 100.0, 225.0, 300.0, 300.0, 300.0, 400.0, 500.0, 450.0, 400.0]
GRID_Y = [10.0, 10.0, 10.0, 16.25, 20.0, 20.0, 20.0, 20.0, 20.0, 25.0, 30.0]


def test_resample_irregular_10hz_stream_onto_20hz_grid() -> None:
    out = resample(pl.DataFrame(IRREGULAR), rate_hz=20.0)
    assert out.columns == ["time", "x", "y", "valid"]
    assert out["time"].to_list() == GRID_TIME
    assert out["x"].to_list() == GRID_X
    assert out["y"].to_list() == GRID_Y
    assert out["valid"].all()


@pytest.mark.parametrize(
    ("valid", "max_gap", "invalid_times"),
    [
        # Points between 180 and 400 ms have the invalid 300 ms sample as a neighbour.
        pytest.param([1, 1, 1, 0, 1, 1], 250.0, [200.0, 250.0, 300.0, 350.0], id="invalid"),
        # 180 -> 300 ms is 120 ms, longer than max_gap.
        pytest.param([1] * 6, 110.0, [200.0, 250.0], id="gap"),
    ],
)
def test_resample_validity(valid: list[int], max_gap: float, invalid_times: list[float]) -> None:
    samples = pl.DataFrame({**IRREGULAR, "valid": [bool(v) for v in valid]})
    out = resample(samples, rate_hz=20.0, max_gap=max_gap)
    bad = out.filter(~pl.col("valid"))
    assert bad["time"].to_list() == invalid_times
    assert bad["x"].null_count() == len(invalid_times)
    good = out.filter(pl.col("valid"))
    expected = {t: x for t, x in zip(GRID_TIME, GRID_X, strict=True) if t not in invalid_times}
    assert dict(zip(good["time"], good["x"], strict=True)) == expected


def test_resample_groups_get_their_own_grids() -> None:
    samples = pl.DataFrame(
        {
            "trial": ["a", "a", "a", "b", "b"],
            "time": [0.0, 40.0, 100.0, 7.0, 57.0],
            "x": [0.0, 40.0, 100.0, 10.0, 20.0],
            "y": [0.0] * 5,
        }
    )
    out = resample(samples, rate_hz=50.0, by=["trial"])
    assert out.select("trial", "time", "x").rows() == [
        ("a", 0.0, 0.0),
        ("a", 20.0, 20.0),
        ("a", 40.0, 40.0),
        ("a", 60.0, 60.0),
        ("a", 80.0, 80.0),
        ("a", 100.0, 100.0),
        ("b", 7.0, 10.0),
        ("b", 27.0, 14.0),
        ("b", 47.0, 18.0),
    ]


def test_resample_then_idt_on_a_webcam_stream() -> None:
    # 10 Hz with jitter: 400 ms near (200, 300), then 400 ms near (600, 300).
    time = [0.0, 95.0, 210.0, 300.0, 398.0, 500.0, 610.0, 700.0, 790.0, 905.0]
    x = [200.0, 201.0, 199.0, 200.0, 400.0, 600.0, 601.0, 599.0, 600.0, 600.0]
    out = resample(pl.DataFrame({"time": time, "x": x, "y": [300.0] * 10}), rate_hz=30.0)
    fixations = detect_fixations_idt(out, dispersion_threshold=10.0, unit="px", min_duration=200.0)
    assert fixations.height == 2
    assert fixations["x"].to_list() == pytest.approx([200.0, 600.0], abs=1.0)


# --- screen geometry ------------------------------------------------------------------------


def test_pixels_to_degrees_by_hand() -> None:
    # The centre of a 1000 px screen is pixel 499.5; 1000 px further on is 45 degrees.
    x, y = GEOMETRY.pixels_to_degrees([499.5, 1499.5, -500.5], [399.5, 399.5, 1399.5])
    assert x.tolist() == pytest.approx([0.0, 45.0, -45.0], abs=1e-12)
    assert y.tolist() == pytest.approx([0.0, 0.0, 45.0], abs=1e-12)


def test_degrees_per_pixel_is_one_pixel_at_the_centre() -> None:
    per_pixel_x, per_pixel_y = LAB_SCREEN.degrees_per_pixel()
    centre_x, centre_y = (1280 - 1) / 2, (1024 - 1) / 2
    x, y = LAB_SCREEN.pixels_to_degrees(
        [centre_x - 0.5, centre_x + 0.5], [centre_y - 0.5, centre_y + 0.5]
    )
    assert x[1] - x[0] == pytest.approx(per_pixel_x, rel=1e-12)
    assert y[1] - y[0] == pytest.approx(per_pixel_y, rel=1e-12)


def test_screen_geometry_rejects_non_positive_sizes() -> None:
    with pytest.raises(InputError, match="distance_cm"):
        ScreenGeometry(width_px=10, height_px=10, width_cm=1.0, height_cm=1.0, distance_cm=0.0)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["time", "x", "y", "trial"])
@pytest.mark.parametrize(
    "detect",
    [
        pytest.param(lambda s, by: _ivt_px(s, by=by), id="ivt"),
        pytest.param(
            lambda s, by: detect_fixations_idt(s, unit="px", dispersion_threshold=5.0, by=by),
            id="idt",
        ),
        pytest.param(lambda s, by: resample(s, by=by), id="resample"),
    ],
)
def test_missing_column_is_named(missing: str, detect: object) -> None:
    samples = _samples(TWO_FIXATIONS, trial=[1] * len(TWO_FIXATIONS)).drop(missing)
    with pytest.raises(InputError, match=f'"{missing}"') as caught:
        detect(samples, ["trial"])  # type: ignore[operator]
    assert caught.value.field == missing


def test_time_going_backwards_names_the_row() -> None:
    samples = pl.DataFrame(
        {
            "trial": [1, 1, 1, 2, 2, 2],
            "time": [0.0, 10.0, 20.0, 0.0, 10.0, 5.0],  # restarting per trial is fine
            "x": [1.0] * 6,
            "y": [1.0] * 6,
        }
    )
    with pytest.raises(InputError, match="backwards") as caught:
        _ivt_px(samples, by=["trial"])
    assert caught.value.row == 6
    assert caught.value.field == "time"
    with pytest.raises(InputError) as caught:
        _ivt_px(samples)  # without groups the restart at row 4 is the error
    assert caught.value.row == 4


def test_degrees_need_a_geometry() -> None:
    with pytest.raises(InputError, match="geometry") as caught:
        detect_fixations_ivt(_samples(TWO_FIXATIONS), unit="deg")
    assert caught.value.field == "geometry"
    with pytest.raises(InputError, match="geometry"):
        detect_fixations_idt(_samples(TWO_FIXATIONS))


@pytest.mark.parametrize(
    ("option", "value"),
    [
        pytest.param("velocity_method", "savitzky_golay", id="method"),
        pytest.param("velocity_threshold", 0.0, id="threshold"),
        pytest.param("min_duration", -1.0, id="min-duration"),
        pytest.param("max_gap", 0.0, id="max-gap"),
        pytest.param("offset_convention", "middle", id="convention"),
    ],
)
def test_bad_options_are_named(option: str, value: object) -> None:
    with pytest.raises(InputError) as caught:
        _ivt_px(_samples(TWO_FIXATIONS), **{option: value})
    assert caught.value.field == option


def test_non_numeric_time_is_rejected() -> None:
    samples = _samples(TWO_FIXATIONS).with_columns(pl.col("time").cast(pl.String))
    with pytest.raises(InputError, match="time"):
        _ivt_px(samples)


@pytest.mark.parametrize(
    "detect",
    [
        pytest.param(_ivt_px, id="ivt"),
        pytest.param(
            lambda s, **kw: detect_fixations_idt(s, unit="px", **kw),  # type: ignore[arg-type]
            id="idt",
        ),
    ],
)
def test_empty_or_all_invalid_input_gives_an_empty_table(detect: object) -> None:
    empty = pl.DataFrame(
        schema={"reader": pl.String, "time": pl.Float64, "x": pl.Float64, "y": pl.Float64}
    )
    all_invalid = pl.DataFrame(
        {"reader": ["r"] * 3, "time": [0.0, 1.0, 2.0], "x": [1.0] * 3, "y": [1.0] * 3}
    ).with_columns(valid=pl.lit(False))
    for samples in (empty, all_invalid):
        out = detect(samples, by=["reader"])  # type: ignore[operator]
        assert out.height == 0
        assert out.schema == pl.Schema(
            {
                "reader": pl.String,
                "onset": pl.Float64,
                "offset": pl.Float64,
                "duration": pl.Float64,
                "x": pl.Float64,
                "y": pl.Float64,
                "n_samples": pl.Int64,
            }
        )


def test_resample_of_empty_input() -> None:
    empty = pl.DataFrame(schema={"time": pl.Float64, "x": pl.Float64, "y": pl.Float64})
    assert resample(empty).columns == ["time", "x", "y", "valid"]


# --- peer checks against pymovements 0.28 ---------------------------------------------------


def _synthetic_stream(n: int, rng: np.random.Generator, *, noise: float) -> pl.DataFrame:
    """1000 Hz reading-like gaze: noisy fixations, linear saccades, and NaN dropouts."""
    xs, ys = [], []
    cx, cy = 640.0, 512.0
    while sum(map(len, xs)) < n:
        length = int(rng.integers(20, 400))
        xs.append(cx + rng.normal(0.0, noise, length))
        ys.append(cy + rng.normal(0.0, noise, length))
        nx, ny = rng.uniform(100, 1180), rng.uniform(100, 900)
        steps = np.arange(1, int(rng.integers(3, 40)) + 1) / 40
        xs.append(cx + (nx - cx) * np.minimum(steps, 1.0))
        ys.append(cy + (ny - cy) * np.minimum(steps, 1.0))
        cx, cy = nx, ny
    x = np.concatenate(xs)[:n]
    y = np.concatenate(ys)[:n]
    for start in rng.integers(0, n - 200, n // 1500):
        x[start : start + int(rng.integers(1, 150))] = np.nan
    y[np.isnan(x)] = np.nan
    return pl.DataFrame(
        {"time": np.arange(n, dtype=np.float64), "x": x, "y": y, "valid": ~np.isnan(x)}
    )


def test_pixels_to_degrees_matches_pymovements_pix2deg() -> None:
    pm_numpy = pytest.importorskip("pymovements.transforms.numpy")
    rng = np.random.default_rng(0)
    points = rng.uniform(-300, 1600, size=(500, 2))
    theirs = pm_numpy.pix2deg(
        points,
        screen_px=(1280, 1024),
        screen_cm=(38.0, 30.0),
        distance_cm=68.0,
        origin="upper left",
    )
    x, y = LAB_SCREEN.pixels_to_degrees(points[:, 0], points[:, 1])
    np.testing.assert_allclose(x, theirs[:, 0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(y, theirs[:, 1], rtol=0, atol=1e-9)


@pytest.mark.parametrize("method", ["preceding", "neighbors", "smooth"])
def test_ivt_matches_pymovements_ivt_exactly(method: str) -> None:
    pm = pytest.importorskip("pymovements")
    samples = _synthetic_stream(20_000, np.random.default_rng(7), noise=0.05)
    gaze = pm.Gaze(
        samples=samples.select("time", "x", "y"),
        experiment=pm.Experiment(1280, 1024, 38.0, 30.0, 68.0, "upper left", 1000.0),
        pixel_columns=["x", "y"],
        time_column="time",
        time_unit="ms",
    )
    gaze.pix2deg()
    gaze.pos2vel(method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gaze.detect("ivt", minimum_duration=100, velocity_threshold=20.0)
    theirs = gaze.events.frame.select("onset", "offset", "duration").cast(pl.Float64)
    ours = detect_fixations_ivt(
        samples,
        velocity_threshold=20.0,
        geometry=LAB_SCREEN,
        min_duration=100.0,
        velocity_method=method,  # type: ignore[arg-type]
        sampling_rate=1000.0,
        max_gap=1.5,
    )
    assert theirs.height > 30
    assert ours.select("onset", "offset", "duration").equals(theirs)


def test_resample_refuses_a_grid_too_large_for_memory() -> None:
    # A time column in ns read as ms: 10^12 grid points would need terabytes.
    samples = pl.DataFrame({"time": [0.0, 1e12], "x": [1.0, 1.0], "y": [1.0, 1.0]})
    with pytest.raises(InputError, match=r"row 1, field \"time\": the resampled grid would have"):
        resample(samples, rate_hz=1000.0)
