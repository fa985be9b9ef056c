"""``tacitly gaze``: raw samples → fixations → reading measures → token features."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.console import Console

from tacitly.cli.tables import print_table, read_table, write_table
from tacitly.errors import InputError
from tacitly.signals.gaze import (
    CMCL_FEATURES,
    ScreenGeometry,
    aggregate_readers,
    aois_from_table,
    check_fixation_aois,
    detect_fixations_idt,
    detect_fixations_ivt,
    layout_text,
    map_fixations_to_aois,
    read_eyelink_fixations,
    read_eyelink_ia,
    read_samples,
    reading_measures,
    resample,
    rescale_to_cmcl,
    words_to_tokens,
)

gaze_app = typer.Typer(
    help="Eye tracking: fixations, measures, token alignment, predicted gaze.",
    no_args_is_help=True,
)
console = Console()


class Method(StrEnum):
    ivt = "ivt"
    idt = "idt"


class Unit(StrEnum):
    deg = "deg"
    px = "px"


class TimeUnit(StrEnum):
    s = "s"
    ms = "ms"
    us = "us"
    ns = "ns"


class SpreadMode(StrEnum):
    SPLIT = "split"
    FIRST = "first"
    MAX = "max"


def _pair(text: str, *, option: str) -> tuple[float, float]:
    parts = text.lower().split("x")
    try:
        first, second = (float(part) for part in parts)
    except ValueError:
        raise InputError(
            f"cannot read {text!r}", field=option, expected="WIDTHxHEIGHT, e.g. 1280x1024"
        ) from None
    return first, second


def _geometry(
    screen_px: str | None, screen_cm: str | None, distance_cm: float | None
) -> ScreenGeometry | None:
    given = [screen_px is not None, screen_cm is not None, distance_cm is not None]
    if not any(given):
        return None
    if not all(given):
        raise InputError(
            "screen geometry is incomplete",
            field="--screen-px/--screen-cm/--distance-cm",
            expected="all three options together",
        )
    assert screen_px is not None and screen_cm is not None and distance_cm is not None
    width_px, height_px = _pair(screen_px, option="--screen-px")
    width_cm, height_cm = _pair(screen_cm, option="--screen-cm")
    return ScreenGeometry(
        width_px=round(width_px),
        height_px=round(height_px),
        width_cm=width_cm,
        height_cm=height_cm,
        distance_cm=distance_cm,
    )


def _threshold_and_unit(
    method: Method, threshold: float | None, unit: Unit | None, geometry: ScreenGeometry | None
) -> tuple[float, Unit]:
    # Pixel speeds and spreads depend on the screen and viewing distance, so the textbook
    # defaults (20 °/s, 1°) exist only in degrees; 20 px/s would silently find no fixation.
    chosen = unit if unit is not None else (Unit.px if geometry is None else Unit.deg)
    if threshold is not None:
        return threshold, chosen
    if chosen is Unit.px:
        raise InputError(
            "a pixel threshold has no default (it depends on the screen and viewing distance)",
            field="--threshold",
            expected="--threshold in px/s (I-VT) or px (I-DT), or the screen geometry "
            "(--screen-px, --screen-cm, --distance-cm) to use the defaults 20 °/s and 1°",
        )
    return (20.0 if method is Method.ivt else 1.0), chosen


def _output(table: pl.DataFrame, output: Path | None, *, title: str) -> None:
    if output is None:
        print_table(console, table, title=title)
    else:
        write_table(table, output)
        console.print(f"wrote {table.height:,} rows to {output}")


@gaze_app.command("fixations")
def fixations_command(
    samples: Annotated[Path, typer.Argument(help="Raw samples: CSV, TSV or Parquet.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write the fixation table.")
    ] = None,
    method: Annotated[Method, typer.Option(help="I-VT (velocity) or I-DT (dispersion).")] = (
        Method.ivt
    ),
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Velocity (unit/s) or dispersion (unit) threshold "
            "[default: 20 °/s or 1° in deg; required in px]."
        ),
    ] = None,
    unit: Annotated[
        Unit | None,
        typer.Option(
            help="Threshold unit; deg needs the screen [default: deg with the screen, else px]."
        ),
    ] = None,
    screen_px: Annotated[
        str | None, typer.Option(help="Screen resolution WIDTHxHEIGHT in pixels.")
    ] = None,
    screen_cm: Annotated[str | None, typer.Option(help="Screen size WIDTHxHEIGHT in cm.")] = None,
    distance_cm: Annotated[float | None, typer.Option(help="Eye-to-screen distance in cm.")] = None,
    min_duration: Annotated[float, typer.Option(help="Shortest fixation kept (ms).")] = 100.0,
    max_gap: Annotated[
        float, typer.Option(help="Longer gaps between valid samples split a fixation (ms).")
    ] = 75.0,
    resample_hz: Annotated[
        float | None,
        typer.Option("--resample", help="Resample irregular streams to this rate (Hz) first."),
    ] = None,
    time: Annotated[str, typer.Option(help="Timestamp column.")] = "time",
    x: Annotated[str, typer.Option(help="Horizontal position column (px).")] = "x",
    y: Annotated[str, typer.Option(help="Vertical position column (px).")] = "y",
    valid: Annotated[str | None, typer.Option(help="Validity column (optional).")] = None,
    time_unit: Annotated[TimeUnit, typer.Option(help="Unit of the timestamps.")] = TimeUnit.ms,
    by: Annotated[
        list[str] | None, typer.Option(help="Group column (trial, reader); repeatable.")
    ] = None,
) -> None:
    """Detect fixations in raw gaze samples."""
    groups = list(by or [])
    table = read_samples(
        samples, time=time, x=x, y=y, valid=valid, time_unit=time_unit.value, by=groups
    )
    geometry = _geometry(screen_px, screen_cm, distance_cm)
    limit, chosen_unit = _threshold_and_unit(method, threshold, unit, geometry)
    if resample_hz is not None:
        table = resample(table, rate_hz=resample_hz, by=groups)
    if method is Method.ivt:
        found = detect_fixations_ivt(
            table,
            velocity_threshold=limit,
            unit=chosen_unit.value,
            geometry=geometry,
            min_duration=min_duration,
            max_gap=max_gap,
            by=groups,
        )
    else:
        found = detect_fixations_idt(
            table,
            dispersion_threshold=limit,
            unit=chosen_unit.value,
            geometry=geometry,
            min_duration=min_duration,
            max_gap=max_gap,
            by=groups,
        )
    mean = float(found["duration"].to_numpy().mean()) if found.height else 0.0
    console.print(
        f"{table.height:,} samples ({int(table['valid'].sum()):,} valid) → {found.height:,} "
        f"fixations, mean duration {mean:.0f} ms"
    )
    _output(found, output, title="fixations")


def _word_boxes(aois: Path | None, text: str | None, eyelink: bool) -> pl.DataFrame | None:
    if aois is not None and text is not None:
        raise InputError("give either --aois or --text, not both", field="--aois/--text")
    if text is not None:
        return layout_text(text)
    if aois is None:
        return None
    if eyelink:
        return read_eyelink_ia(aois)
    return aois_from_table(read_table(aois), source=str(aois))


@gaze_app.command("measures")
def measures_command(
    fixations: Annotated[
        Path, typer.Argument(help="Fixation table (with x, y or an aoi column), or --eyelink.")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write the measures.")
    ] = None,
    aois: Annotated[
        Path | None, typer.Option(help="Word boxes (aoi, text, left, top, width, height).")
    ] = None,
    text: Annotated[
        str | None, typer.Option(help="The text read; word boxes laid out with the default font.")
    ] = None,
    eyelink: Annotated[
        bool, typer.Option(help="Inputs are EyeLink Data Viewer fixation and IA reports.")
    ] = False,
    by: Annotated[list[str] | None, typer.Option(help="Reader/trial column; repeatable.")] = None,
    aggregate: Annotated[
        bool,
        typer.Option(
            help="Average over readers (adds fixProp): rows that differ only in the reader "
            "column are one word."
        ),
    ] = False,
    cmcl_scale: Annotated[
        bool, typer.Option(help="Rescale averaged measures to the CMCL 0–100 scale.")
    ] = False,
    margin: Annotated[float, typer.Option(help="Grow word boxes by this many px.")] = 0.0,
) -> None:
    """Compute word reading measures (nFix, FFD, FPRT, GPT, TRT, …) from fixations."""
    boxes = _word_boxes(aois, text, eyelink)
    if boxes is None:
        raise InputError(
            "no word boxes given", field="--aois/--text", expected="--aois FILE or --text TEXT"
        )
    if eyelink:
        table = read_eyelink_fixations(fixations)
        groups = list(by or ["reader", "trial"])
    else:
        table = read_table(fixations)
        groups = list(by or [])
    trial_groups = [column for column in groups if column in boxes.columns]
    if "aoi" not in table.columns:
        table = map_fixations_to_aois(table, boxes, by=trial_groups, margin=margin)
    elif eyelink and text is None:
        # The two reports may number interest areas from different bases; a mismatch would
        # otherwise put every fixation on the neighbouring word without a sign.
        check_fixation_aois(table, boxes, source=fixations, by=trial_groups)
    measures = reading_measures(table, aois=boxes, by=groups, source=str(fixations))
    if aggregate or cmcl_scale:
        # Boxes may be per reader (EyeLink reports), but averaging over readers must not
        # group by the reader.
        text_groups = [column for column in trial_groups if column != "reader"]
        measures = aggregate_readers(measures, by=text_groups)
        if cmcl_scale:
            measures = rescale_to_cmcl(measures)
    fixated = measures.filter(pl.col("nFix") > 0).height
    console.print(f"{measures.height:,} word rows, {fixated:,} fixated")
    _output(measures, output, title="reading measures")


def _feature_columns(table: pl.DataFrame, features: str | None, *, source: Path) -> list[str]:
    if features is None:
        columns = [name for name in CMCL_FEATURES if name in table.columns]
    else:
        columns = [name.strip() for name in features.split(",") if name.strip()]
    missing = [name for name in columns if name not in table.columns]
    if missing or not columns:
        raise InputError(
            f"feature columns {missing} are missing" if missing else "no feature columns",
            source=source,
            field=missing[0] if missing else "--features",
            expected=f"columns among {table.columns}",
        )
    return columns


@gaze_app.command("align")
def align_command(
    measures: Annotated[Path, typer.Argument(help="Word measures, one row per word in order.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write token features.")
    ] = None,
    text: Annotated[str | None, typer.Option(help="The text the measures belong to.")] = None,
    text_file: Annotated[
        Path | None, typer.Option(help="Read the text from this UTF-8 file.")
    ] = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(help="Tokenizer: HF id or folder [default: the embedded SmolLM2]."),
    ] = None,
    mode: Annotated[
        SpreadMode, typer.Option(help="split (sum kept), first sub-token, or max.")
    ] = SpreadMode.SPLIT,
    features: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated feature columns "
            f"[default: those of {','.join(CMCL_FEATURES)} in the table]."
        ),
    ] = None,
) -> None:
    """Put word-level values onto the tokens of a tokenizer."""
    from tacitly.backbones import load_tokenizer

    if (text is None) == (text_file is None):
        raise InputError("give exactly one of --text and --text-file", field="--text")
    if text_file is not None:
        if not text_file.is_file():
            raise InputError("file not found", source=text_file)
        text = text_file.read_text(encoding="utf-8")
    assert text is not None
    table = read_table(measures)
    columns = _feature_columns(table, features, source=measures)
    tok = load_tokenizer(tokenizer)
    try:
        aligned = words_to_tokens(text, table, tok, mode=mode.value, features=columns)
    except InputError as error:
        if error.source != "values":
            raise
        # The library can only call the table "values"; the user knows it by its file name.
        raise InputError(
            error.message,
            source=measures,
            row=error.row,
            field=error.field,
            expected=error.expected,
        ) from None
    ids = aligned.input_ids.tolist()
    result = pl.DataFrame(
        {
            "token_index": list(range(len(ids))),
            "token_id": ids,
            "token": tok.convert_ids_to_tokens(ids),
        }
    ).with_columns(pl.DataFrame(aligned.values, schema=columns, orient="row").get_columns())
    console.print(f"{table.height:,} words → {result.height:,} tokens ({mode.value})")
    _output(result, output, title="token features")
