"""Synthetic reading: raw gaze samples of simulated readers moving through word boxes.

The simulator exists for demos, benchmarks and tests that need realistic raw samples with a
known ground truth. It is a deliberately simple model of reading, not a cognitive model:

* readers go through the words left to right, line by line;
* short words are skipped more often (skip probability falls linearly from ``skip_rate`` for
  one-letter words to 0 for words of 8 or more letters);
* a word is re-fixated with probability ``refixation_rate``;
* after a word, with probability ``regression_rate``, the reader jumps back one to three words,
  fixates there, and then continues with the next unread word;
* fixation durations follow a gamma distribution (shape 6) with mean ``mean_fixation_ms``,
  never shorter than 100 ms (the usual minimum duration of fixation detection);
* landing positions lie between 20% and 60% of the word's width (the preferred viewing
  position), vertically on the line centre plus Gaussian jitter of 2 px;
* saccades take ``20 ms + 0.05 ms/px × amplitude`` and move linearly between fixations;
* every sample gets isotropic Gaussian measurement noise of ``noise_px``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from tacitly.errors import InputError

_REQUIRED_AOI_COLUMNS = ("aoi", "text", "left", "top", "width", "height")
_MIN_FIXATION_MS = 100.0


@dataclass(frozen=True)
class SimulatedReading:
    """Raw samples of simulated reading together with the fixations that generated them.

    Attributes
    ----------
    samples:
        ``reader``, ``time`` (ms), ``x``, ``y`` (px), ``valid``.
    fixations:
        Ground truth: ``reader``, ``onset``, ``offset``, ``duration`` (ms), ``x``, ``y``
        (intended landing point, before noise), ``aoi`` (the word aimed at). ``onset`` is the
        time of the fixation's first sample and ``offset`` = ``onset`` + number of samples ×
        sampling period (the end of its last sample), so ``duration`` is a whole number of
        sampling periods.
    """

    samples: pl.DataFrame
    fixations: pl.DataFrame


def simulate_reading(
    aois: pl.DataFrame,
    *,
    n_readers: int = 1,
    rate_hz: float = 1000.0,
    mean_fixation_ms: float = 220.0,
    skip_rate: float = 0.3,
    refixation_rate: float = 0.1,
    regression_rate: float = 0.1,
    noise_px: float = 0.2,
    seed: int = 0,
) -> SimulatedReading:
    """Simulate readers reading the words in ``aois`` and sample their gaze.

    Parameters
    ----------
    aois:
        Word boxes with columns ``aoi``, ``text``, ``left``, ``top``, ``width``, ``height``,
        in reading order (as returned by :func:`tacitly.signals.gaze.aois.layout_text`).
    n_readers:
        Number of independent readers; each gets its own ``reader`` id (default: 1).
    rate_hz:
        Sampling rate of the simulated tracker (default: 1000.0).
    mean_fixation_ms:
        Mean fixation duration (default: 220.0).
    skip_rate:
        Skip probability of a one-letter word (default: 0.3).
    refixation_rate:
        Probability of a second fixation on the same word (default: 0.1).
    regression_rate:
        Probability of a regression after each word (default: 0.1).
    noise_px:
        Standard deviation of the measurement noise in pixels (default: 0.2).
    seed:
        Seed of the random generator; the same seed gives the same samples (default: 0).

    Returns
    -------
    SimulatedReading
        The samples and the ground-truth fixations.

    Examples
    --------
    >>> from tacitly.signals.gaze.aois import layout_text
    >>> sim = simulate_reading(layout_text("A short example text."), seed=1)
    >>> sim.samples.columns
    ['reader', 'time', 'x', 'y', 'valid']
    """
    _check_aois(aois)
    _check_parameters(
        n_readers=n_readers,
        rate_hz=rate_hz,
        mean_fixation_ms=mean_fixation_ms,
        probabilities={
            "skip_rate": skip_rate,
            "refixation_rate": refixation_rate,
            "regression_rate": regression_rate,
        },
        noise_px=noise_px,
    )
    rng = np.random.default_rng(seed)
    boxes = aois.sort("aoi")
    fixation_tables = []
    sample_tables = []
    for reader in range(n_readers):
        targets = _scanpath(boxes, rng, skip_rate, refixation_rate, regression_rate)
        fixations = _place_fixations(boxes, targets, rng, mean_fixation_ms)
        samples, fixations = _sample_gaze(fixations, rng, rate_hz, noise_px)
        fixation_tables.append(fixations.with_columns(reader=pl.lit(reader, pl.Int64)))
        sample_tables.append(samples.with_columns(reader=pl.lit(reader, pl.Int64)))
    samples = pl.concat(sample_tables).select("reader", "time", "x", "y", "valid")
    fixations = pl.concat(fixation_tables).select(
        "reader", "onset", "offset", "duration", "x", "y", "aoi"
    )
    return SimulatedReading(samples=samples, fixations=fixations)


def _check_aois(aois: pl.DataFrame) -> None:
    missing = [c for c in _REQUIRED_AOI_COLUMNS if c not in aois.columns]
    if missing:
        raise InputError(
            f"AOI table lacks columns {missing}",
            field=missing[0],
            expected=f"columns {list(_REQUIRED_AOI_COLUMNS)}",
        )
    if aois.height == 0:
        raise InputError("AOI table is empty", expected="at least one word box")
    if aois["aoi"].is_duplicated().any():
        raise InputError(
            "AOI table has repeated aoi values", field="aoi", expected="the words of one text"
        )
    for name in ("left", "top", "width", "height"):
        column = aois[name]
        if not column.dtype.is_numeric():
            raise InputError(f"holds {column.dtype}, not numbers", field=name, expected="pixels")
        values = column.cast(pl.Float64).fill_null(np.nan).to_numpy()
        bad = ~np.isfinite(values)
        if name in ("width", "height"):
            bad |= values <= 0
        if bad.any():
            raise InputError(
                f"value {values[bad][0]} is not usable",
                row=int(np.argmax(bad)) + 1,
                field=name,
                expected="a finite number of pixels"
                + (", > 0" if name in ("width", "height") else ""),
            )


def _check_parameters(
    *,
    n_readers: int,
    rate_hz: float,
    mean_fixation_ms: float,
    probabilities: dict[str, float],
    noise_px: float,
) -> None:
    if n_readers < 1:
        raise InputError("n_readers must be at least 1", field="n_readers", expected="≥ 1")
    if not (np.isfinite(rate_hz) and rate_hz > 0):
        raise InputError("rate_hz must be positive", field="rate_hz", expected="> 0")
    if not (np.isfinite(mean_fixation_ms) and mean_fixation_ms > 0):
        raise InputError(
            "mean_fixation_ms must be positive", field="mean_fixation_ms", expected="> 0 ms"
        )
    for name, value in probabilities.items():
        if not 0.0 <= value <= 1.0:
            raise InputError(f"{name} must be a probability", field=name, expected="0 to 1")
    if not (np.isfinite(noise_px) and noise_px >= 0):
        raise InputError("noise_px must not be negative", field="noise_px", expected="≥ 0 px")


def _scanpath(
    boxes: pl.DataFrame,
    rng: np.random.Generator,
    skip_rate: float,
    refixation_rate: float,
    regression_rate: float,
) -> list[int]:
    """Indices of the words fixated, in temporal order."""
    # len_chars is unsigned: 8 - length must not wrap around for words longer than 8.
    lengths = boxes["text"].str.len_chars().cast(pl.Float64).to_numpy()
    skip_probability = skip_rate * np.clip((8 - lengths) / 7, 0.0, 1.0)
    n_words = boxes.height
    targets: list[int] = []
    for word in range(n_words):
        if word > 0 and rng.random() < skip_probability[word]:
            continue
        targets.append(word)
        if rng.random() < refixation_rate:
            targets.append(word)
        if word > 0 and rng.random() < regression_rate:
            targets.append(max(0, word - int(rng.integers(1, 4))))
    return targets


def _place_fixations(
    boxes: pl.DataFrame, targets: list[int], rng: np.random.Generator, mean_ms: float
) -> pl.DataFrame:
    index = np.asarray(targets, dtype=np.int64)
    left = boxes["left"].to_numpy()[index]
    width = boxes["width"].to_numpy()[index]
    centre_y = (boxes["top"].to_numpy() + boxes["height"].to_numpy() / 2)[index]
    shape = 6.0
    durations = np.maximum(_MIN_FIXATION_MS, rng.gamma(shape, mean_ms / shape, size=index.size))
    return pl.DataFrame(
        {
            "aoi": boxes["aoi"].to_numpy()[index],
            "x": left + width * rng.uniform(0.2, 0.6, size=index.size),
            "y": centre_y + rng.normal(0.0, 2.0, size=index.size),
            "planned_duration": durations,
        }
    )


def _sample_gaze(
    fixations: pl.DataFrame, rng: np.random.Generator, rate_hz: float, noise_px: float
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Turn planned fixations into a continuous sample stream with saccades in between."""
    period = 1000.0 / rate_hz
    fx = fixations["x"].to_numpy()
    fy = fixations["y"].to_numpy()
    # Rounding to whole samples must not undercut the minimum at rates that do not divide it
    # (at 45 Hz, 100 ms is 4.5 periods and would round to 89 ms).
    shortest = np.ceil(_MIN_FIXATION_MS / period - 1e-9)
    planned_counts = np.round(fixations["planned_duration"].to_numpy() / period)
    fix_counts = np.maximum(shortest, planned_counts).astype(np.int64)
    amplitude = np.hypot(np.diff(fx), np.diff(fy))
    sac_counts = np.maximum(2, np.round((20.0 + 0.05 * amplitude) / period)).astype(np.int64)
    sac_counts = np.append(sac_counts, 0)

    # Interleave fixation and saccade segments: segment 2k is fixation k, 2k+1 the saccade after.
    seg_counts = np.column_stack([fix_counts, sac_counts]).ravel()
    start_x = np.column_stack([fx, fx]).ravel()
    start_y = np.column_stack([fy, fy]).ravel()
    end_x = np.column_stack([fx, np.append(fx[1:], fx[-1])]).ravel()
    end_y = np.column_stack([fy, np.append(fy[1:], fy[-1])]).ravel()
    seg_of_sample = np.repeat(np.arange(seg_counts.size), seg_counts)
    seg_start = np.cumsum(seg_counts) - seg_counts
    within = np.arange(seg_of_sample.size) - seg_start[seg_of_sample]
    # Saccade samples move from the fixation towards the next one, excluding both end points.
    fraction = (within + 1) / (seg_counts[seg_of_sample] + 1)
    fraction[seg_of_sample % 2 == 0] = 0.0
    x = start_x[seg_of_sample] + (end_x - start_x)[seg_of_sample] * fraction
    y = start_y[seg_of_sample] + (end_y - start_y)[seg_of_sample] * fraction
    n = x.size
    x = x + rng.normal(0.0, noise_px, size=n)
    y = y + rng.normal(0.0, noise_px, size=n)
    time = np.arange(n, dtype=np.float64) * period

    onset = time[seg_start[0::2]]
    offset = onset + fix_counts * period
    samples = pl.DataFrame({"time": time, "x": x, "y": y, "valid": np.ones(n, dtype=bool)})
    truth = pl.DataFrame(
        {
            "onset": onset,
            "offset": offset,
            "duration": offset - onset,
            "x": fx,
            "y": fy,
            "aoi": fixations["aoi"],
        }
    )
    return samples, truth
