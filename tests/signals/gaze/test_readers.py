"""Tests for tacitly.signals.gaze.readers: tiny hand-written files, then the real samples."""

from __future__ import annotations

import io
import math
import tarfile
from pathlib import Path

import polars as pl
import pytest

from tacitly.errors import InputError
from tacitly.signals.gaze.readers import (
    check_fixation_aois,
    cmcl_texts,
    iter_ifllm_tasks,
    read_cmcl,
    read_eyelink_fixations,
    read_eyelink_ia,
    read_ifllm_queries,
    read_ifllm_trace,
    read_oasst_etc,
    read_oasst_etc_words,
    read_samples,
)


def edited(text: str, old: str, new: str) -> str:
    """``text`` with the first ``old`` replaced by ``new``; fails if ``old`` is not there."""
    assert old in text
    return text.replace(old, new, 1)


def write(folder: Path, name: str, text: str) -> Path:
    file = folder / name
    file.write_text(text, encoding="utf-8")
    return file


# --------------------------------------------------------------------------------------------
# read_samples
# --------------------------------------------------------------------------------------------


def test_read_samples_maps_columns_and_keeps_by(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "gaze.csv",
        "trial,ts,gx,gy,extra\nA,10,1.5,2.5,z\nA,12,3,4,z\nB,5,6,7,z\n",
    )
    samples = read_samples(file, time="ts", x="gx", y="gy", by=["trial"])
    assert samples.columns == ["trial", "time", "x", "y", "valid"]
    assert samples.schema["time"] == pl.Float64
    assert samples.rows() == [
        ("A", 10.0, 1.5, 2.5, True),
        ("A", 12.0, 3.0, 4.0, True),
        ("B", 5.0, 6.0, 7.0, True),
    ]


@pytest.mark.parametrize(
    ("unit", "raw", "expected_ms"),
    [
        pytest.param("s", "1.5", 1500.0, id="seconds"),
        pytest.param("ms", "1.5", 1.5, id="milliseconds"),
        pytest.param("us", "1500", 1.5, id="microseconds"),
        pytest.param("ns", "1500000", 1.5, id="nanoseconds"),
    ],
)
def test_read_samples_converts_time_units_to_ms(
    tmp_path: Path, unit: str, raw: str, expected_ms: float
) -> None:
    file = write(tmp_path, "gaze.csv", f"time,x,y\n0,1,1\n{raw},1,1\n")
    samples = read_samples(file, time_unit=unit)  # type: ignore[arg-type]
    assert samples["time"].to_list() == pytest.approx([0.0, expected_ms])


@pytest.mark.parametrize("suffix", [pytest.param(".tsv", id="tsv"), pytest.param(".txt", id="txt")])
def test_read_samples_reads_tab_separated_by_suffix(tmp_path: Path, suffix: str) -> None:
    file = write(tmp_path, f"gaze{suffix}", "time\tx\ty\n0\t1,5\t2\n")
    samples = read_samples(file, x="y", y="y")
    assert samples["x"].to_list() == [2.0]
    # The comma belongs to the cell, not to a separator: "1,5" is not a number.
    with pytest.raises(InputError, match=r'row 1, field "x": \'1,5\' is not a number'):
        read_samples(file)


def test_read_samples_takes_an_explicit_separator(tmp_path: Path) -> None:
    file = write(tmp_path, "gaze.dat", "time;x;y\n0;1;2\n")
    assert read_samples(file, separator=";").rows() == [(0.0, 1.0, 2.0, True)]


def test_read_samples_reads_parquet_with_nan_and_null(tmp_path: Path) -> None:
    file = tmp_path / "gaze.parquet"
    pl.DataFrame(
        {"t": [0, 1, 2, 3], "x": [1.0, math.nan, None, 4.0], "y": [1.0, 2.0, 3.0, math.inf]}
    ).write_parquet(file)
    samples = read_samples(file, time="t", time_unit="s")
    assert samples["time"].to_list() == [0.0, 1000.0, 2000.0, 3000.0]
    assert samples["x"].to_list() == [1.0, None, None, 4.0]
    assert samples["y"].to_list() == [1.0, 2.0, 3.0, None]
    assert samples["valid"].to_list() == [True, False, False, False]


def test_read_samples_keeps_missing_coordinates_as_invalid_rows(tmp_path: Path) -> None:
    file = write(tmp_path, "gaze.csv", "time,x,y\n0,1,1\n1,,1\n2,.,.\n3,NaN,2\n4,5,nan\n5,6,6\n")
    samples = read_samples(file)
    assert samples.height == 6
    assert samples["valid"].to_list() == [True, False, False, False, False, True]
    assert samples["x"].to_list() == [1.0, None, None, None, 5.0, 6.0]


def test_read_samples_combines_a_valid_column_with_present_coordinates(tmp_path: Path) -> None:
    file = write(tmp_path, "gaze.csv", "time,x,y,ok\n0,1,1,1\n1,1,1,0\n2,,1,true\n3,2,2,False\n")
    samples = read_samples(file, valid="ok")
    assert samples["valid"].to_list() == [True, False, False, False]


def test_read_samples_allows_time_to_restart_in_a_new_group(tmp_path: Path) -> None:
    file = write(tmp_path, "gaze.csv", "trial,time,x,y\n1,5,0,0\n1,6,0,0\n2,0,0,0\n2,0,0,0\n")
    assert read_samples(file, by=["trial"])["time"].to_list() == [5.0, 6.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        pytest.param(
            "time,x\n0,1\n",
            {},
            r"gaze\.csv, field \"y\": missing column\(s\) 'y'; the file has 'time', 'x'",
            id="missing-column",
        ),
        pytest.param(
            "time,x,y\n0,1,1\n1,abc,1\n",
            {},
            r"gaze\.csv, row 2, field \"x\": 'abc' is not a number",
            id="non-numeric-x",
        ),
        pytest.param(
            "time,x,y\n0,1,1\n1e,1,1\n",
            {},
            r"gaze\.csv, row 2, field \"time\": '1e' is not a number",
            id="non-numeric-time",
        ),
        pytest.param(
            "time,x,y\n0,1,1\n,1,1\n",
            {},
            r"gaze\.csv, row 2, field \"time\": value is missing",
            id="missing-time",
        ),
        pytest.param(
            "time,x,y\n0,1,1\n2,1,1\n1,1,1\n",
            {},
            r"gaze\.csv, row 3, field \"time\": time goes backwards: 1\.0 after 2\.0",
            id="time-backwards",
        ),
        pytest.param(
            "g,time,x,y\na,0,1,1\nb,9,1,1\na,3,1,1\nb,4,1,1\n",
            {"by": ["g"]},
            r"row 4, field \"time\": time goes backwards within g='b': 4\.0 after 9\.0",
            id="time-backwards-in-group",
        ),
        pytest.param(
            "time,x,y,ok\n0,1,1,maybe\n",
            {"valid": "ok"},
            r"row 1, field \"ok\": 'maybe' is not a true/false value",
            id="bad-valid",
        ),
        pytest.param("time,x,y\n", {}, r"gaze\.csv: the file has a header but no", id="no-rows"),
        pytest.param("", {}, r"gaze\.csv: the file is empty", id="empty-file"),
        pytest.param(
            "time,x,y\n0,1,1\n", {"time_unit": "min"}, r"unknown time unit 'min'", id="bad-unit"
        ),
        pytest.param(
            "time,x,y\n0,1,1\n", {"by": ["x"]}, r"clash with output column names", id="by-clash"
        ),
    ],
)
def test_read_samples_rejects_bad_input(
    tmp_path: Path, text: str, kwargs: dict[str, object], message: str
) -> None:
    file = write(tmp_path, "gaze.csv", text)
    with pytest.raises(InputError, match=message):
        read_samples(file, **kwargs)  # type: ignore[arg-type]


def test_read_samples_names_missing_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.csv: no such file"):
        read_samples(tmp_path / "nope.csv")
    with pytest.raises(InputError, match=r"cannot tell the format from the suffix \"\.dat\""):
        read_samples(write(tmp_path, "gaze.dat", "time,x,y\n0,1,1\n"))


# --------------------------------------------------------------------------------------------
# EyeLink Data Viewer reports
# --------------------------------------------------------------------------------------------

FIXATION_HEADER = (
    "RECORDING_SESSION_LABEL,TRIAL_INDEX,CURRENT_FIX_INDEX,CURRENT_FIX_START,CURRENT_FIX_END,"
    "CURRENT_FIX_DURATION,CURRENT_FIX_X,CURRENT_FIX_Y,CURRENT_FIX_INTEREST_AREA_ID,"
    "CURRENT_FIX_INTEREST_AREA_LABEL,EYE_TRACKED\n"
)
FIXATIONS = FIXATION_HEADER + (
    "s1,1,1,100,299,200,50.5,80,1,The,Right\n"
    "s1,1,2,320,499,180,400,80,.,.,Right\n"
    "s1,1,3,520,700,181,90,81,2,cat,Right\n"
    "s1,2,1,10,59,50,30,30,1,Dogs,Right\n"
)
IA_REPORT = (
    "RECORDING_SESSION_LABEL\tTRIAL_INDEX\tIA_ID\tIA_LABEL\tIA_LEFT\tIA_TOP\tIA_RIGHT\t"
    "IA_BOTTOM\tIA_DWELL_TIME\tIA_SKIP\tIA_REGRESSION_IN\tTRIAL_FIXATION_COUNT\n"
    "s1\t1\t1\tThe\t10\t20\t60\t100\t200\t0\t.\t3\n"
    "s1\t1\t2\tcat\t60\t20\t120\t100\t181\t0\t1\t3\n"
    "s1\t2\t1\tDogs\t0\t0\t50\t40\t50\t0\t0\t1\n"
)


def test_read_eyelink_fixations_maps_columns(tmp_path: Path) -> None:
    fixations = read_eyelink_fixations(write(tmp_path, "fix.csv", FIXATIONS))
    assert fixations.columns == [
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
    ]
    assert fixations.row(0) == ("s1", "1", 0, 100.0, 299.0, 200.0, 50.5, 80.0, 0, "The")
    assert fixations["aoi"].to_list() == [0, None, 1, 0]
    assert fixations["aoi_text"].to_list() == ["The", None, "cat", "Dogs"]
    assert fixations["fixation_index"].to_list() == [0, 1, 2, 0]


def test_read_eyelink_fixations_with_chosen_columns_and_id_base(tmp_path: Path) -> None:
    file = write(tmp_path, "fix.csv", FIXATIONS.replace(",1,The,", ",0,The,"))
    fixations = read_eyelink_fixations(file, reader="EYE_TRACKED", trial="TRIAL_INDEX", id_base=0)
    assert fixations["reader"].to_list() == ["Right"] * 4
    assert fixations["aoi"].to_list() == [0, None, 2, 1]


def test_read_eyelink_ia_reads_tab_separated_xls(tmp_path: Path) -> None:
    aois = read_eyelink_ia(write(tmp_path, "ia.xls", IA_REPORT))
    assert aois.select(
        "reader", "trial", "aoi", "text", "left", "top", "width", "height"
    ).rows() == [
        ("s1", "1", 0, "The", 10.0, 20.0, 50.0, 80.0),
        ("s1", "1", 1, "cat", 60.0, 20.0, 60.0, 80.0),
        ("s1", "2", 0, "Dogs", 0.0, 0.0, 50.0, 40.0),
    ]
    assert aois["IA_DWELL_TIME"].to_list() == [200, 181, 50]
    assert aois["IA_REGRESSION_IN"].to_list() == [None, 1, 0]
    assert aois["TRIAL_FIXATION_COUNT"].to_list() == [3, 3, 1]


def test_read_eyelink_ia_keeps_whole_numbers_beyond_int64_as_floats(tmp_path: Path) -> None:
    file = write(tmp_path, "ia.txt", edited(IA_REPORT, "\t200\t0\t", "\t1e30\t0\t"))
    dwell = read_eyelink_ia(file)["IA_DWELL_TIME"]
    assert dwell.dtype == pl.Float64
    assert dwell.to_list() == [1e30, 181.0, 50.0]


@pytest.mark.parametrize(
    ("ids", "id_base", "expected"),
    [
        pytest.param(("1", "2"), None, [0, 1], id="inferred-from-1"),
        pytest.param(("0", "1"), None, [0, 1], id="inferred-from-0"),
        pytest.param(("1", "2"), 0, [1, 2], id="explicit-0"),
    ],
)
def test_read_eyelink_ia_id_base(
    tmp_path: Path, ids: tuple[str, str], id_base: int | None, expected: list[int]
) -> None:
    text = (
        "RECORDING_SESSION_LABEL,TRIAL_INDEX,IA_ID,IA_LABEL,IA_LEFT,IA_TOP,IA_RIGHT,IA_BOTTOM\n"
        f"s,1,{ids[0]},a,0,0,10,10\ns,1,{ids[1]},b,10,0,20,10\n"
    )
    aois = read_eyelink_ia(write(tmp_path, "ia.csv", text), id_base=id_base)
    assert aois["aoi"].to_list() == expected


def test_check_fixation_aois_accepts_matching_reports(tmp_path: Path) -> None:
    fixations = read_eyelink_fixations(write(tmp_path, "fix.csv", FIXATIONS))
    aois = read_eyelink_ia(write(tmp_path, "ia.tsv", IA_REPORT))
    check_fixation_aois(fixations, aois, source="fix.csv")


def test_check_fixation_aois_rejects_an_unknown_id(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "fix.csv",
        FIXATIONS.replace("s1,1,3,520,700,181,90,81,2,", "s1,1,3,520,700,181,90,81,7,"),
    )
    fixations = read_eyelink_fixations(file)
    aois = read_eyelink_ia(write(tmp_path, "ia.tsv", IA_REPORT))
    with pytest.raises(
        InputError,
        match=(
            r"fix\.csv, row 3, field \"aoi\": fixation refers to AOI 6, which reader='s1', "
            r"trial='1' does not have \(expected one of its 2 AOIs, 0 to 1\)"
        ),
    ):
        check_fixation_aois(fixations, aois, source=file)


def test_check_fixation_aois_rejects_mismatched_labels(tmp_path: Path) -> None:
    fixations = read_eyelink_fixations(write(tmp_path, "fix.csv", FIXATIONS))
    aois = read_eyelink_ia(write(tmp_path, "ia.tsv", IA_REPORT.replace("\tcat\t", "\tdog\t")))
    with pytest.raises(
        InputError,
        match=(
            r"fix\.csv, row 3, field \"aoi\": fixation's AOI label 'cat' differs from the text "
            r"'dog' of AOI 1 in the AOI table \(expected the same numbering in both reports"
        ),
    ):
        check_fixation_aois(fixations, aois, source="fix.csv")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        pytest.param(
            ",CURRENT_FIX_X,",
            ",X,",
            r"fix\.csv, field \"CURRENT_FIX_X\": missing column\(s\) 'CURRENT_FIX_X'",
            id="missing-column",
        ),
        pytest.param(
            "s1,1,3,520,",
            "s1,1,3,5x0,",
            r"row 3, field \"CURRENT_FIX_START\": '5x0'",
            id="bad-onset",
        ),
        pytest.param(
            "s1,1,3,520,700,181,",
            "s1,1,3,520,700,.,",
            r"row 3, .*DURATION\": value is missing",
            id="missing-duration",
        ),
        pytest.param(
            ",1,The,",
            ",0,The,",
            r"row 1, .*: interest-area id 0 is below id_base=1",
            id="id-below-base",
        ),
        pytest.param(
            "s1,1,3,520,",
            "s1,1,3,20,",
            r"row 3, field \"onset\": onset goes backwards within",
            id="onset-backwards",
        ),
        pytest.param(
            "RECORDING_SESSION_LABEL,",
            "SESSION,",
            r"no reader column found.*expected 'participant_id' or 'RECORDING_SESSION_LABEL'",
            id="no-reader-column",
        ),
    ],
)
def test_read_eyelink_fixations_rejects_bad_input(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        read_eyelink_fixations(write(tmp_path, "fix.csv", edited(FIXATIONS, old, new)))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        pytest.param(
            "\t2\tcat\t", "\t1\tcat\t", r"row 2, field \"IA_ID\": duplicate entry", id="duplicate"
        ),
        pytest.param(
            "\t60\t20\t120\t",
            "\t60\t20\t50\t",
            r"row 2, field \"IA_RIGHT\": .*width is negative",
            id="negative-width",
        ),
        pytest.param(
            "\tcat\t60\t",
            "\tcat\tsixty\t",
            r"row 2, field \"IA_LEFT\": 'sixty' is not a number",
            id="bad-left",
        ),
        pytest.param(
            "IA_LABEL\t", "LABEL\t", r"missing column\(s\) 'IA_LABEL'", id="missing-label"
        ),
        pytest.param(
            "\tcat\t60\t",
            "\tcat\t-inf\t",
            r"row 2, field \"IA_LEFT\": IA_LEFT is infinite",
            id="infinite-left",
        ),
    ],
)
def test_read_eyelink_ia_rejects_bad_input(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        read_eyelink_ia(write(tmp_path, "ia.txt", edited(IA_REPORT, old, new)))


def test_onestop_fixation_ids_are_one_based_and_ia_ids_zero_based(onestop_dir: Path) -> None:
    raw_fixations = pl.read_csv(onestop_dir / "fixations.csv", infer_schema=False)
    raw_ia = pl.read_csv(onestop_dir / "ia.csv", infer_schema=False)
    first = raw_fixations.row(0, named=True)
    robert = raw_ia.filter(
        pl.col("unique_trial_id") == first["unique_trial_id"], pl.col("IA_LABEL") == "Robert"
    )
    assert (first["CURRENT_FIX_INTEREST_AREA_ID"], first["CURRENT_FIX_INTEREST_AREA_LABEL"]) == (
        "1",
        "Robert",
    )
    assert robert["IA_ID"].to_list() == ["0"]
    fixations = read_eyelink_fixations(onestop_dir / "fixations.csv")
    aois = read_eyelink_ia(onestop_dir / "ia.csv")
    assert fixations["aoi"][0] == 0
    assert aois.filter(pl.col("trial") == first["unique_trial_id"])["text"][0] == "Robert"


def test_onestop_fixations_agree_with_the_ia_report(onestop_dir: Path) -> None:
    fixations = read_eyelink_fixations(onestop_dir / "fixations.csv")
    aois = read_eyelink_ia(onestop_dir / "ia.csv")
    check_fixation_aois(fixations, aois, source=onestop_dir / "fixations.csv")

    counts = fixations.group_by("reader", "trial").len()
    expected = aois.group_by("reader", "trial").agg(pl.col("TRIAL_FIXATION_COUNT").first())
    paired = counts.join(expected, on=["reader", "trial"], how="full", coalesce=True)
    assert paired.height == 24
    assert (paired["len"] == paired["TRIAL_FIXATION_COUNT"]).all()

    placed = fixations.join(aois, on=["reader", "trial", "aoi"], how="inner")
    assert placed.height == fixations["aoi"].count() == 3208
    assert (placed["aoi_text"] == placed["text"]).all()
    inside = placed.filter(
        pl.col("x").is_between(pl.col("left"), pl.col("left") + pl.col("width")),
        pl.col("y").is_between(pl.col("top"), pl.col("top") + pl.col("height")),
    )
    assert inside.height == placed.height

    # Every fixation's count matches IA_FIXATION_COUNT of its AOI.
    per_aoi = placed.group_by("reader", "trial", "aoi").agg(
        pl.len().alias("n"), pl.col("IA_FIXATION_COUNT").first()
    )
    assert (per_aoi["n"] == per_aoi["IA_FIXATION_COUNT"]).all()


def test_onestop_wrong_id_base_is_caught(onestop_dir: Path) -> None:
    # Taking the fixation report's ids as 0-based shifts every fixation by one word.
    fixations = read_eyelink_fixations(onestop_dir / "fixations.csv", id_base=0)
    aois = read_eyelink_ia(onestop_dir / "ia.csv")
    with pytest.raises(InputError, match=r"fixations\.csv, row \d+, field \"aoi\""):
        check_fixation_aois(fixations, aois, source=onestop_dir / "fixations.csv")


def test_onestop_parquet_and_csv_read_the_same(onestop_dir: Path) -> None:
    from_csv = read_eyelink_fixations(onestop_dir / "fixations.csv")
    from_parquet = read_eyelink_fixations(onestop_dir / "fixations.parquet")
    assert from_parquet.equals(from_csv)


def test_onestop_raw_gaze_reads_as_samples(onestop_dir: Path) -> None:
    samples = read_samples(
        onestop_dir / "raw_gaze.csv", time="timestamp_ms", by=["participant_id", "unique_trial_id"]
    )
    assert samples.height == 2233
    assert samples["valid"].all()
    assert samples.row(0) == ("l37_1129", "l37_1129_2_2_2_Adv", 7742.0, 390.6, 210.0, True)


# --------------------------------------------------------------------------------------------
# CMCL 2021
# --------------------------------------------------------------------------------------------

CMCL = (
    "sentence_id,word_id,word,nFix,FFD,GPT,TRT,fixProp\n"
    "1,0,Hi.<EOS>,1,2,3,4,50\n"
    "0,1,world.<EOS>,12,3.5,6,7,90.5\n"
    "0,0,Hello,10,3,4,5,80\n"
)


def test_read_cmcl_maps_columns_and_strips_eos(tmp_path: Path) -> None:
    table = read_cmcl(write(tmp_path, "train.csv", CMCL))
    assert table.columns == [
        "text_id",
        "word_index",
        "word",
        "nFix",
        "FFD",
        "GPT",
        "TRT",
        "fixProp",
    ]
    assert table.row(1) == (0, 1, "world.", 12.0, 3.5, 6.0, 7.0, 90.5)
    kept = read_cmcl(write(tmp_path, "train.csv", CMCL), strip_eos=False)
    assert kept["word"].to_list() == ["Hi.<EOS>", "world.<EOS>", "Hello"]


def test_cmcl_texts_orders_texts_and_words(tmp_path: Path) -> None:
    table = read_cmcl(write(tmp_path, "train.csv", CMCL))
    assert cmcl_texts(table) == [(0, ["Hello", "world."]), (1, ["Hi."])]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        pytest.param(
            ",TRT,", ",TOT,", r"train\.csv, field \"TRT\": missing column", id="missing-column"
        ),
        pytest.param(
            "0,0,Hello,10,", "0,0,Hello,inf,", r"row 3, field \"nFix\": nFix is infinite", id="inf"
        ),
        pytest.param(
            "3.5,6",
            "3.5x,6",
            r"train\.csv, row 2, field \"FFD\": '3\.5x' is not a number",
            id="bad-number",
        ),
        pytest.param("3.5,6", ",6", r"row 2, field \"FFD\": value is missing", id="missing-value"),
        pytest.param("4,50", "-4,50", r"row 1, field \"TRT\": negative value -4\.0", id="negative"),
        pytest.param(
            "0,0,Hello", "0,1,Hello", r"row 3, field \"word_id\": duplicate entry", id="duplicate"
        ),
        pytest.param(
            "0,0,Hello",
            "0,0.5,Hello",
            r"row 3, field \"word_id\": '0\.5' is not a whole",
            id="fractional-id",
        ),
    ],
)
def test_read_cmcl_rejects_bad_input(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_cmcl(write(tmp_path, "train.csv", edited(CMCL, old, new)))


def test_cmcl_train_has_all_words_and_texts(shared_data: Path) -> None:
    table = read_cmcl(shared_data / "cmcl2021" / "train.csv")
    texts = cmcl_texts(table)
    assert table.height == 11_731
    assert len(texts) == 600
    assert texts[0][1][:4] == ["Carlucci", "was", "deputy", "defense"]
    assert not table["word"].str.contains("<EOS>").any()


# --------------------------------------------------------------------------------------------
# IFllm
# --------------------------------------------------------------------------------------------

# Lines in the styles found in the real files: an unquoted window, a quoted one with a comma,
# a window whose own quote is not doubled, one whose quote is doubled, one with a stray quote
# at the end of the line, and the (-1, -1) "outside this response" sentinel.
REL_LINES = (
    "10.5,20,abc,3,1000.5,1,1700000000000\n"
    '11,21,"hip-hop, EDM",4,1066.2,1,1700000000066\n'
    '12,22,"" of players",5,1132,0,1700000000132\n'
    '13,23,"gir""",6,1200,1,1700000000200\n'
    '14,24,"with "",7,1266,1,1700000000266"\n'
    "-1,-1,,,1332,1,1700000000332\n"
)


def test_read_ifllm_trace_parses_relative_files_with_their_quirks(tmp_path: Path) -> None:
    trace = read_ifllm_trace(write(tmp_path, "rel_mouse_right.csv", REL_LINES))
    assert trace.columns == [
        "time",
        "x",
        "y",
        "valid",
        "epoch_ms",
        "char_index",
        "text_window",
        "response",
    ]
    assert trace["text_window"].to_list() == [
        "abc",
        "hip-hop, EDM",
        '" of players',
        'gir"',
        'with "',
        None,
    ]
    assert trace["x"].to_list() == [10.5, 11.0, 12.0, 13.0, 14.0, None]
    assert trace["valid"].to_list() == [True, True, False, True, True, True]
    assert trace["char_index"].to_list() == [3, 4, 5, 6, 7, None]
    assert trace["epoch_ms"][4] == 1_700_000_000_266
    assert trace["response"].unique().to_list() == [2]


def test_read_ifllm_trace_reads_six_column_files_without_camera_flag(tmp_path: Path) -> None:
    file = write(
        tmp_path, "rel_gaze.csv", "5,6,hey,1,2753.7,1757445219915\n-1,-1,,,2857.5,1757445220018\n"
    )
    trace = read_ifllm_trace(file)
    assert trace.select("time", "x", "valid", "char_index", "response").rows() == [
        (2753.7, 5.0, None, 1, 1),
        (2857.5, None, None, None, 1),
    ]


def test_read_ifllm_trace_drops_repeated_rows_of_absolute_files(tmp_path: Path) -> None:
    text = "1,2,10.5,100\n3,4,20,200\n1,2,10.5,100\n3,4,20,200\n5,6,30,300\n"
    file = write(tmp_path, "abs_gaze.csv", text)
    trace = read_ifllm_trace(file)
    assert trace.rows() == [
        (10.5, 1.0, 2.0, True, 100),
        (20.0, 3.0, 4.0, True, 200),
        (30.0, 5.0, 6.0, True, 300),
    ]
    assert read_ifllm_trace(file, drop_duplicates=False).height == 5


@pytest.mark.parametrize(
    ("name", "width"),
    [pytest.param("abs_mouse.csv", 5, id="abs"), pytest.param("rel_gaze_one.csv", 8, id="rel")],
)
def test_read_ifllm_trace_gives_an_empty_table_for_an_empty_file(
    tmp_path: Path, name: str, width: int
) -> None:
    trace = read_ifllm_trace(write(tmp_path, name, ""))
    assert trace.shape == (0, width)
    assert trace.schema["epoch_ms"] == pl.Int64


@pytest.mark.parametrize(
    ("name", "text", "kind", "message"),
    [
        pytest.param(
            "gaze.csv",
            "1,2,3,4\n",
            None,
            r"gaze\.csv: unknown IFllm trace kind 'gaze'",
            id="unknown-kind",
        ),
        pytest.param(
            "abs_gaze.csv",
            "1,2,3,4\n1,2,3\n",
            None,
            r"abs_gaze\.csv, row 2: cannot split the line into 4 fields",
            id="ragged",
        ),
        pytest.param(
            "abs_gaze.csv",
            "1,2,3,4\n1,y,3,4\n",
            None,
            r"row 2, field \"y\": 'y' is not a number",
            id="bad-number",
        ),
        pytest.param(
            "trace.csv",
            "1,2,w,x,2,1,3\n",
            "rel_gaze_one",
            r"trace\.csv, row 1, field \"char_index\": 'x' is not",
            id="explicit-kind",
        ),
    ],
)
def test_read_ifllm_trace_rejects_bad_input(
    tmp_path: Path, name: str, text: str, kind: str | None, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        read_ifllm_trace(write(tmp_path, name, text), kind=kind)


def make_task_folder(root: Path) -> None:
    for worker, task in (("worker_b", "10"), ("worker_a", "9"), ("worker_a", "10")):
        folder = root / "user_behavior" / worker / task
        folder.mkdir(parents=True)
        write(folder, "abs_mouse.csv", f"1,2,{task},100\n")
        write(folder, "rel_mouse_left.csv", "-1,-1,,,5,1,100\n")
        write(folder, "notes.csv", "not a trace\n")


def test_iter_ifllm_tasks_walks_a_folder_in_order(tmp_path: Path) -> None:
    make_task_folder(tmp_path)
    tasks = [(w, t, sorted(k)) for w, t, k in iter_ifllm_tasks(tmp_path)]
    assert tasks == [
        ("worker_a", "9", ["abs_mouse", "rel_mouse_left"]),
        ("worker_a", "10", ["abs_mouse", "rel_mouse_left"]),
        ("worker_b", "10", ["abs_mouse", "rel_mouse_left"]),
    ]
    only_abs = list(iter_ifllm_tasks(tmp_path / "user_behavior", kinds=["abs_mouse"]))
    assert [sorted(k) for _, _, k in only_abs] == [["abs_mouse"]] * 3
    assert only_abs[0][2]["abs_mouse"]["time"].to_list() == [9.0]


def add_member(archive: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def test_iter_ifllm_tasks_reads_an_archive_without_extracting(tmp_path: Path) -> None:
    file = tmp_path / "user_behavior.tar.gz"
    with tarfile.open(file, "w:gz") as archive:
        add_member(archive, "user_behavior/worker_a/3/abs_gaze.csv", "1,2,3,4\n1,2,3,4\n")
        add_member(archive, "user_behavior/worker_a/3/rel_gaze_two.csv", "")
        add_member(archive, "user_behavior/worker_b/4/abs_mouse.csv", "5,6,7,8\n")
    tasks = list(iter_ifllm_tasks(tmp_path))
    assert [(w, t, sorted(k)) for w, t, k in tasks] == [
        ("worker_a", "3", ["abs_gaze", "rel_gaze_two"]),
        ("worker_b", "4", ["abs_mouse"]),
    ]
    assert tasks[0][2]["abs_gaze"].height == 1
    assert tasks[0][2]["rel_gaze_two"].height == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["user_behavior.tar.gz"]


def test_iter_ifllm_tasks_rejects_an_interleaved_archive(tmp_path: Path) -> None:
    file = tmp_path / "traces.tar"
    with tarfile.open(file, "w") as archive:
        add_member(archive, "user_behavior/w/1/abs_gaze.csv", "1,2,3,4\n")
        add_member(archive, "user_behavior/w/2/abs_gaze.csv", "1,2,3,4\n")
        add_member(archive, "user_behavior/w/1/abs_mouse.csv", "1,2,3,4\n")
    with pytest.raises(InputError, match=r"traces\.tar: the archive lists files of task 1 of w"):
        list(iter_ifllm_tasks(file))


def test_iter_ifllm_tasks_rejects_an_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"unknown IFllm trace kind\(s\) \['eeg'\]"):
        list(iter_ifllm_tasks(tmp_path, kinds=["eeg"]))


QUERIES = (
    "query_ID,user_id,task_id,user_query,llm_response_1,llm_response_2,llm_name_1,llm_name_2,"
    "likert_1,likert_2,preference,adjustment,query_timestamp\n"
    '2,w1,4,"what, why","- a\n- ""b""",,m1,,4.0,,0.0,1,2025-04-23 22:32:38\n'
    "3,w1,4,q,r1,r2,m1,m2,3.0,5.0,2.0,0,2025-04-23 22:33:28\n"
    "5,w2,7,q,r1,r2,m1,m2,,,,0,2025-04-24 08:00:00\n"
)


def test_read_ifllm_queries_types_columns(tmp_path: Path) -> None:
    queries = read_ifllm_queries(write(tmp_path, "query_logs_table.csv", QUERIES))
    assert queries.height == 3
    assert queries["preference"].to_list() == [0.0, 2.0, None]
    assert queries["pairwise"].to_list() == [False, True, True]
    assert queries["llm_response_1"][0] == '- a\n- "b"'
    assert queries["task_id"].dtype == pl.Int64
    assert queries["query_timestamp"][1].isoformat() == "2025-04-23T22:33:28+00:00"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        pytest.param(
            ",preference,", ",pref,", r"field \"preference\": missing column", id="missing-column"
        ),
        pytest.param(
            ",2.0,0,",
            ",3.0,0,",
            r"row 2, field \"preference\": preference 3\.0 is not 0, 1 or 2",
            id="bad-preference",
        ),
        pytest.param(
            "2025-04-24 08:00:00",
            "yesterday",
            r"row 3, field \"query_timestamp\": 'yesterday'",
            id="bad-timestamp",
        ),
        pytest.param(
            "5,w2,7,",
            "5,w2,seven,",
            r"row 3, field \"task_id\": 'seven' is not a number",
            id="bad-task",
        ),
    ],
)
def test_read_ifllm_queries_rejects_bad_input(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        read_ifllm_queries(write(tmp_path, "query_logs_table.csv", edited(QUERIES, old, new)))


def test_ifllm_archive_has_a_task_with_all_six_traces(shared_data: Path) -> None:
    six = {
        "abs_gaze",
        "abs_mouse",
        "rel_gaze_one",
        "rel_gaze_two",
        "rel_mouse_left",
        "rel_mouse_right",
    }
    archive = shared_data / "ifllm" / "user_behavior.tar.gz"
    worker, task, traces = next((w, t, k) for w, t, k in iter_ifllm_tasks(archive) if six <= set(k))
    assert worker.startswith("worker_") and task.isdigit()
    heights = {kind: trace.height for kind, trace in traces.items()}
    # Once its repeated blocks are dropped, abs_gaze has one row per frame like every other file.
    assert len(set(heights.values())) == 1 and heights["abs_gaze"] > 0
    assert traces["rel_gaze_two"]["response"].unique().to_list() == [2]
    assert traces["abs_gaze"]["valid"].all()


def test_ifllm_query_log_reads(shared_data: Path) -> None:
    queries = read_ifllm_queries(shared_data / "ifllm" / "query_logs_table.csv")
    assert queries.height == 1211
    pairwise = queries.filter(pl.col("pairwise"))
    assert pairwise.height == 568
    assert set(pairwise["preference"].drop_nulls().unique().to_list()) == {1.0, 2.0}


# --------------------------------------------------------------------------------------------
# OASST-ETC word files

_OASST_HEADER = (
    "number;fix_duration;first_fix_duration;fix_number;fix_duration_n;"
    "first_fix_duration_n;fix_number_n;text\n"
)


def _oasst_file(folder: Path, name: str, rows: str) -> Path:
    file = folder / name
    file.write_text(_OASST_HEADER + rows)
    return file


def test_oasst_etc_words_are_read_in_milliseconds(tmp_path: Path) -> None:
    file = _oasst_file(
        tmp_path,
        "word_cor_image_fixations_12.2.csv",
        "0;0.5;0.2;2.0;0.625;0.5;0.5;Paris\n1;0.3;0.2;2.0;0.375;0.5;0.5;is\n",
    )
    table = read_oasst_etc_words(file)
    assert table.select("trial", "prompt_id", "response", "word_index", "word").rows() == [
        ("12.2", 12, 2, 0, "Paris"),
        ("12.2", 12, 2, 1, "is"),
    ]
    assert table["TRT"].to_list() == [500.0, 300.0]
    assert table["FFD"].to_list() == [200.0, 200.0]
    assert table["nFix"].to_list() == [2.0, 2.0]
    assert table["TRT_n"].to_list() == [0.625, 0.375]


def test_oasst_etc_blank_slots_are_dropped_and_read_ones_reported(tmp_path: Path) -> None:
    file = _oasst_file(
        tmp_path,
        "word_cor_image_fixations_1.1.csv",
        "0;0.5;0.2;2.0;0.5;0.5;0.5;Hi\n1;0.0;0.0;0.0;0.0;0.0;0.0;\n2;0.4;0.2;1.0;0.5;0.5;0.5;\n",
    )
    with pytest.warns(UserWarning, match="rows 3 have no word text"):
        table = read_oasst_etc_words(file)
    assert table["word"].to_list() == ["Hi"]


@pytest.mark.parametrize(
    ("name", "rows", "message"),
    [
        pytest.param("word_cor_image_fixations_x.csv", "0;1;1;1;1;1;1;a\n", "file name", id="name"),
        pytest.param(
            "word_cor_image_fixations_1.1.csv", "0;-1;1;1;1;1;1;a\n", "negative", id="negative"
        ),
        pytest.param(
            "word_cor_image_fixations_1.1.csv", "0;abc;1;1;1;1;1;a\n", "fix_duration", id="text"
        ),
    ],
)
def test_oasst_etc_bad_files_name_the_problem(
    tmp_path: Path, name: str, rows: str, message: str
) -> None:
    file = _oasst_file(tmp_path, name, rows)
    with pytest.raises(InputError, match=message) as error:
        read_oasst_etc_words(file)
    assert str(file) in str(error.value)


def test_oasst_etc_folder_without_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no word_cor_image_fixations_"):
        read_oasst_etc(tmp_path)


def test_oasst_etc_corpus_reads_whole(shared_data: Path) -> None:
    with pytest.warns(UserWarning):
        table = read_oasst_etc(shared_data / "oasst_etc" / "gaze_features_real")
    # 20,884 word rows in 371 files, less the 12 slots without text.
    assert table.height == 20_872
    assert table["trial"].n_unique() == 371
    assert sorted(table["set"].unique().to_list()) == list(range(1, 9))
