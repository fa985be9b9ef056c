"""Benchmark: raw gaze samples → I-VT fixations → word AOIs → reading measures.

Runs the same eye-tracking pipeline through tacitly and through pymovements 0.28 on the same
input, checks that both find the same fixations and the same total reading time per word, and
prints one JSON line::

    {"ratio": ..., "tacitly_s": ..., "reference_s": ..., "peak_mb": ..., "same_fixations": ...,
     "same_trt": ..., ...}

``ratio`` is pymovements' time divided by tacitly's (the target is ≥ 20).

Input (built before any timing)
    A ~300-word paragraph of pseudo-words (deterministic, see :func:`paragraph`) laid out with
    :func:`~tacitly.signals.gaze.layout_text` on a 1280 × 1024 px screen, and synthetic readers
    from :func:`~tacitly.signals.gaze.simulate_reading` at 1000 Hz (left-to-right reading with
    skips, refixations and regressions, 0.2 px noise). Readers are added until there are at least
    ``--samples`` samples, then the table is cut to exactly that many rows (the last reader
    stops mid-text). Both pipelines start from this one in-memory polars DataFrame
    (``reader``, ``time`` in ms, ``x``, ``y`` in px) and the same word AOI table.

Pipelines (each timed end to end with ``time.perf_counter``; tacitly's time is the median of
``--repeat`` runs, 5 by default, the first of them cold, since at about 0.1 s one run is at the
mercy of a busy machine; pymovements runs once, as it takes seconds)
    tacitly: ``detect_fixations_ivt`` → ``map_fixations_to_aois`` → ``reading_measures``.
    pymovements: ``Gaze(...)`` → ``pix2deg()`` → ``pos2vel("fivepoint")`` → ``detect("ivt")``
    → ``compute_event_properties("location" in px)`` → ``Events.map_to_aois(TextStimulus)`` →
    ``measure.reading.compute_reading_measures``.
    Both use a 20 °/s threshold on the five-point velocity in degrees of visual angle, 100 ms
    minimum duration, the same screen geometry, and the same AOI boxes (left/top inclusive,
    right/bottom exclusive in both libraries).

Checks
    ``same_fixations``: equal counts and equal (reader, onset, offset) for every fixation
    (tolerance 1e-6 ms). ``same_trt``: for every (reader, word), tacitly's ``TRT`` equals
    pymovements' ``TFT`` (tolerance 1e-6 ms). Disagreements are described on stderr.

Memory
    ``peak_mb`` / ``reference_peak_mb``: how far the process's peak resident set size (Linux
    ``VmHWM``, reset through ``/proc/self/clear_refs`` before each pipeline) rose above its
    resident size just before that pipeline, in MiB. Memory the allocators kept from earlier
    steps and reuse is not counted, so this is a lower bound of what the pipeline needs on top of
    its inputs. Where ``VmHWM`` cannot be reset (not Linux), both report the process's
    ``ru_maxrss`` instead, and ``peak_method`` says so. ``rss_peak_mb`` is the whole process's
    peak (``ru_maxrss``).

Usage::

    .venv/bin/python benchmarks/gaze_pipeline.py                  # 1 000 000 samples
    .venv/bin/python benchmarks/gaze_pipeline.py --samples 100000 --repeat 1 --seed 1
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import polars as pl
import pymovements as pm
from pymovements.measure.reading import compute_reading_measures

from tacitly.signals.gaze import (
    ScreenGeometry,
    detect_fixations_ivt,
    layout_text,
    map_fixations_to_aois,
    reading_measures,
    simulate_reading,
)

T = TypeVar("T")

SCREEN = ScreenGeometry(
    width_px=1280, height_px=1024, width_cm=38.0, height_cm=30.0, distance_cm=68.0
)
RATE_HZ = 1000.0
VELOCITY_THRESHOLD = 20.0  # degrees of visual angle per second
MIN_DURATION = 100.0  # ms
# pymovements' default; at 1000 Hz point-to-point differences of tracker noise exceed 20 °/s.
VELOCITY_METHOD = "fivepoint"
TOLERANCE = 1e-6
N_WORDS = 300
TEXT_SEED = 2024

_FUNCTION_WORDS = (
    "a I the of and to in is it that was for on as with he be at by this had not are but from "
    "or have an they which one you were her all she there would their we him been has when who "
    "will more no if out so said what up its about into than them can only other new some could"
)
_SYLLABLES = (
    "ba be bi bo bu ca ce ci co da de di do fa fe fi fo ga ge gi go ha he hi ho la le li lo lu "
    "ma me mi mo mu na ne ni no pa pe pi po ra re ri ro ru sa se si so ta te ti to tu va ve vi "
    "vo za ze str pl tr gr br cl sh th ch nd nt rs st ck ng"
)
FUNCTION_WORDS = _FUNCTION_WORDS.split()
SYLLABLES = _SYLLABLES.split()


# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------


def paragraph(n_words: int = N_WORDS, *, seed: int = TEXT_SEED) -> str:
    """A deterministic paragraph of ``n_words`` words: English function words and pseudo-words.

    About 45% of the words are short function words (so readers skip some), the rest are made of
    one to five syllables (2 to 15 letters); sentences of 8 to 20 words start with a capital
    letter and end with a full stop, with the odd comma in between.
    """
    rng = np.random.default_rng(seed)
    words: list[str] = []
    sentence_left = 0
    for _ in range(n_words):
        if rng.random() < 0.45:
            word = str(rng.choice(FUNCTION_WORDS))
        else:
            n_syllables = int(rng.choice([1, 2, 2, 3, 3, 3, 4, 4, 5]))
            word = "".join(str(s) for s in rng.choice(SYLLABLES, size=n_syllables))
        if sentence_left == 0:
            word = word[0].upper() + word[1:]
            sentence_left = int(rng.integers(8, 21))
        sentence_left -= 1
        if sentence_left == 0:
            word += "."
        elif rng.random() < 0.06:
            word += ","
        words.append(word)
    if not words[-1].endswith("."):
        words[-1] = words[-1].rstrip(",") + "."
    return " ".join(words)


@dataclass(frozen=True)
class Inputs:
    """What both pipelines get: samples, word boxes, and the simulator's truth for reference."""

    samples: pl.DataFrame
    aois: pl.DataFrame
    n_readers: int
    n_true_fixations: int


def make_inputs(n_samples: int, *, seed: int) -> Inputs:
    """Simulate enough readers for ``n_samples`` samples and cut the table to exactly that."""
    aois = layout_text(paragraph())
    bottom = float(np.max(aois["top"].to_numpy() + aois["height"].to_numpy()))
    assert bottom <= SCREEN.height_px, "the paragraph does not fit on the screen"
    n_readers = 1
    while True:
        sim = simulate_reading(aois, n_readers=n_readers, rate_hz=RATE_HZ, seed=seed)
        if sim.samples.height >= n_samples:
            break
        per_reader = sim.samples.height / n_readers
        n_readers = max(n_readers + 1, int(np.ceil(1.05 * n_samples / per_reader)))
    samples = sim.samples.head(n_samples).select("reader", "time", "x", "y")
    last_time = samples.group_by("reader").agg(pl.col("time").max().alias("last"))
    truth = sim.fixations.join(last_time, on="reader").filter(pl.col("offset") <= pl.col("last"))
    return Inputs(
        samples=samples,
        aois=aois,
        n_readers=int(samples["reader"].n_unique()),
        n_true_fixations=truth.height,
    )


# --------------------------------------------------------------------------------------------
# The two pipelines
# --------------------------------------------------------------------------------------------


@dataclass
class Result:
    """Fixations (``reader``, ``onset``, ``offset``, ``x``, ``y``, ``aoi``) and per-word TRT."""

    fixations: pl.DataFrame
    trt: pl.DataFrame
    stages: dict[str, float]


class Stopwatch:
    """Split times of consecutive stages."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = round(now - self._last, 4)
        self._last = now


def run_tacitly(samples: pl.DataFrame, aois: pl.DataFrame) -> Result:
    """tacitly: fixations, word of each fixation, reading measures per reader and word."""
    watch = Stopwatch()
    fixations = detect_fixations_ivt(
        samples,
        velocity_threshold=VELOCITY_THRESHOLD,
        unit="deg",
        geometry=SCREEN,
        min_duration=MIN_DURATION,
        velocity_method=VELOCITY_METHOD,
        sampling_rate=RATE_HZ,
        # Between one and two sample intervals: what pymovements' null velocities amount to.
        max_gap=1.5 * 1000.0 / RATE_HZ,
        by=["reader"],
    )
    watch.lap("detect")
    fixations = map_fixations_to_aois(fixations, aois)
    watch.lap("aois")
    measures = reading_measures(fixations, aois=aois, by=["reader"])
    watch.lap("measures")
    return Result(
        fixations=fixations.select("reader", "onset", "offset", "x", "y", "aoi"),
        trt=measures.select("reader", pl.col("word_index").alias("aoi"), "TRT"),
        stages=watch.stages,
    )


def run_pymovements(samples: pl.DataFrame, aois: pl.DataFrame) -> Result:
    """pymovements 0.28, the way its documentation chains these steps."""
    watch = Stopwatch()
    experiment = pm.Experiment(
        screen_width_px=SCREEN.width_px,
        screen_height_px=SCREEN.height_px,
        screen_width_cm=SCREEN.width_cm,
        screen_height_cm=SCREEN.height_cm,
        distance_cm=SCREEN.distance_cm,
        origin="upper left",
        sampling_rate=RATE_HZ,
    )
    gaze = pm.Gaze(
        samples=samples,
        experiment=experiment,
        trial_columns=["reader"],
        time_column="time",
        time_unit="ms",
        pixel_columns=["x", "y"],
    )
    gaze.pix2deg()
    gaze.pos2vel(method=VELOCITY_METHOD)
    watch.lap("gaze_velocity")
    gaze.detect("ivt", velocity_threshold=VELOCITY_THRESHOLD, minimum_duration=MIN_DURATION)
    watch.lap("detect")
    gaze.compute_event_properties(("location", {"position_column": "pixel"}))
    watch.lap("location")
    stimulus = pm.stimulus.TextStimulus(
        aois.select(
            word_idx=pl.col("aoi"),
            word=pl.col("text"),
            left="left",
            top="top",
            width="width",
            height="height",
        ),
        aoi_column="word",
        start_x_column="left",
        start_y_column="top",
        width_column="width",
        height_column="height",
    )
    gaze.events.map_to_aois(stimulus, verbose=False)
    watch.lap("aois")
    fixations = gaze.events.frame.filter(pl.col("name") == "fixation")
    with warnings.catch_warnings():
        # One AOI table for all readers is exactly what we mean; pymovements warns about it.
        warnings.filterwarnings("ignore", message="aois has no 'reader' column")
        measures = compute_reading_measures(
            fixations, stimulus.aois.select("word_idx", "word"), group_columns=["reader"]
        )
    watch.lap("measures")
    return Result(
        fixations=fixations.select(
            "reader",
            pl.col("onset").cast(pl.Float64),
            pl.col("offset").cast(pl.Float64),
            pl.col("location_x").alias("x"),
            pl.col("location_y").alias("y"),
            pl.col("word_idx").alias("aoi"),
        ),
        trt=measures.select(
            "reader", pl.col("word_index").alias("aoi"), pl.col("TFT").cast(pl.Float64)
        ),
        stages=watch.stages,
    )


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_mb(field: str) -> float:
    match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    assert match is not None, f"{field} missing from {_STATUS}"
    return int(match.group(1)) / 1024


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ≥ 4.0); False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _ru_maxrss_mb() -> float:
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, kB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def measured(run: Callable[[], T]) -> tuple[T, float, float, str]:
    """Run once; return its result, seconds, peak memory in MiB, and how memory was measured."""
    gc.collect()
    if _reset_peak_rss():
        before = _status_mb("VmRSS")
        start = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - start
        return result, seconds, _status_mb("VmHWM") - before, "vmhwm_delta"
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    return result, seconds, _ru_maxrss_mb(), "ru_maxrss"


# --------------------------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------------------------


def compare_fixations(ours: pl.DataFrame, theirs: pl.DataFrame) -> dict[str, Any]:
    """Same (reader, onset, offset) for every fixation? Plus position and word agreement."""
    a = ours.sort("reader", "onset")
    b = theirs.sort("reader", "onset")
    report: dict[str, Any] = {"same_fixations": False}
    if a.height != b.height:
        _explain_fixation_mismatch(a, b)
        return report
    same_reader = bool((a["reader"] == b["reader"]).all())
    times_close = all(_max_abs_diff(a[c], b[c]) <= TOLERANCE for c in ("onset", "offset"))
    report["same_fixations"] = same_reader and times_close
    if not report["same_fixations"]:
        _explain_fixation_mismatch(a, b)
        return report
    report["max_position_diff_px"] = max(_max_abs_diff(a[c], b[c]) for c in ("x", "y"))
    same_aoi = a["aoi"].eq_missing(b["aoi"].cast(pl.Int64))
    report["same_aois"] = bool(same_aoi.all())
    if not report["same_aois"]:
        print(
            f"{int((~same_aoi).sum())} fixations get different words; first ones:\n"
            f"{pl.concat([a, b.select(aoi_ref='aoi')], how='horizontal').filter(~same_aoi)}",
            file=sys.stderr,
        )
    return report


def _max_abs_diff(a: pl.Series, b: pl.Series) -> float:
    diff = np.abs(a.to_numpy().astype(np.float64) - b.to_numpy().astype(np.float64))
    return float(diff.max()) if diff.size else 0.0


def _explain_fixation_mismatch(a: pl.DataFrame, b: pl.DataFrame) -> None:
    keyed = ["reader", "onset", "offset"]
    only_ours = a.join(b, on=keyed, how="anti")
    only_theirs = b.join(a, on=keyed, how="anti")
    print(
        f"fixations differ: tacitly {a.height}, pymovements {b.height}; "
        f"{only_ours.height} only in tacitly, e.g.\n{only_ours.head(5)}\n"
        f"{only_theirs.height} only in pymovements, e.g.\n{only_theirs.head(5)}",
        file=sys.stderr,
    )


def compare_trt(ours: pl.DataFrame, theirs: pl.DataFrame) -> bool:
    """tacitly's TRT equals pymovements' TFT for every (reader, word)?"""
    joined = ours.join(
        theirs.with_columns(pl.col("aoi").cast(pl.Int64)),
        on=["reader", "aoi"],
        how="full",
        coalesce=True,
    )
    bad = joined.filter(
        pl.col("TRT").is_null()
        | pl.col("TFT").is_null()
        | ((pl.col("TRT") - pl.col("TFT")).abs() > TOLERANCE)
    )
    if bad.height:
        print(
            f"TRT differs for {bad.height} of {joined.height} (reader, word) pairs:\n"
            f"{bad.head(10)}",
            file=sys.stderr,
        )
    return bad.height == 0 and ours.height == theirs.height


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--samples", type=int, default=1_000_000, help="raw samples (default: 1000000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="simulator seed (default: 0)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="runs of the tacitly pipeline; the median time is reported (default: 5)",
    )
    args = parser.parse_args(argv)
    if args.samples < 10_000 or args.repeat < 1:
        parser.error("--samples must be at least 10000 and --repeat at least 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    inputs = make_inputs(args.samples, seed=args.seed)
    samples, aois = inputs.samples, inputs.aois

    tacitly_runs = [measured(lambda: run_tacitly(samples, aois)) for _ in range(args.repeat)]
    ours = tacitly_runs[-1][0]
    tacitly_s = statistics.median(run[1] for run in tacitly_runs)
    peak_mb = max(run[2] for run in tacitly_runs)
    theirs, reference_s, reference_peak_mb, peak_method = measured(
        lambda: run_pymovements(samples, aois)
    )

    fixation_report = compare_fixations(ours.fixations, theirs.fixations)
    report = {
        "ratio": round(reference_s / tacitly_s, 1),
        "tacitly_s": round(tacitly_s, 4),
        "reference_s": round(reference_s, 3),
        "peak_mb": round(peak_mb, 1),
        "same_fixations": fixation_report.pop("same_fixations"),
        "same_trt": compare_trt(ours.trt, theirs.trt),
        # pymovements' per-event location step scans all samples once per fixation (quadratic);
        # this ratio leaves it out, to show what the rest of the pipeline gains.
        "ratio_without_reference_location": round(
            (reference_s - theirs.stages["location"]) / tacitly_s, 1
        ),
        "reference_peak_mb": round(reference_peak_mb, 1),
        "peak_method": peak_method,
        "rss_peak_mb": round(_ru_maxrss_mb(), 1),
        **fixation_report,
        "n_samples": samples.height,
        "n_readers": inputs.n_readers,
        "n_words": aois.height,
        "n_fixations": ours.fixations.height,
        "n_fixations_reference": theirs.fixations.height,
        "n_fixations_simulated": inputs.n_true_fixations,
        "repeat": args.repeat,
        "tacitly_runs_s": [round(run[1], 4) for run in tacitly_runs],
        "seed": args.seed,
        "tacitly_stages_s": ours.stages,
        "reference_stages_s": theirs.stages,
        "versions": {"pymovements": pm.__version__, "polars": pl.__version__},
        "total_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
