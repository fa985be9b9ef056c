"""Tests for word AOIs: building boxes, laying out text, mapping fixations onto boxes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import ImageFont

from tacitly.errors import InputError
from tacitly.signals.gaze.aois import (
    AOI_COLUMNS,
    aois_from_table,
    layout_text,
    load_font,
    map_fixations_to_aois,
)

# --------------------------------------------------------------------------------------------
# aois_from_table
# --------------------------------------------------------------------------------------------


def test_eyelink_report_with_edges_and_one_based_ids() -> None:
    report = pl.DataFrame(
        {
            "TRIAL": [2, 1, 1],
            "IA_ID": [1, 2, 1],
            "IA_LABEL": ["Wolf", "stops", "Robert"],
            "IA_LEFT": [100, 491, 358],
            "IA_RIGHT": [180, 662, 491],
            "IA_TOP": [154, 154, 154],
            "IA_BOTTOM": [264, 264, 264],
        }
    )
    aois = aois_from_table(
        report,
        aoi="IA_ID",
        first_index=1,
        text="IA_LABEL",
        left="IA_LEFT",
        top="IA_TOP",
        right="IA_RIGHT",
        bottom="IA_BOTTOM",
        by=["TRIAL"],
    )
    assert aois.columns == ["TRIAL", *AOI_COLUMNS]
    assert aois.rows() == [
        (1, 0, "Robert", 358.0, 154.0, 133.0, 110.0),
        (1, 1, "stops", 491.0, 154.0, 171.0, 110.0),
        (2, 0, "Wolf", 100.0, 154.0, 80.0, 110.0),
    ]
    assert aois.schema["aoi"] == pl.Int64
    assert aois.schema["width"] == pl.Float64


def test_browser_rects_as_row_dicts_are_numbered_per_group() -> None:
    rects = [
        {"page": "a", "word": "Hi", "x": 8.5, "y": 10, "w": 20.25, "h": 18},
        {"page": "a", "word": "there", "x": 33, "y": 10, "w": 44, "h": 18},
        {"page": "b", "word": "Bye", "x": 8, "y": 10, "w": 30, "h": 18},
    ]
    aois = aois_from_table(
        rects, aoi=None, text="word", left="x", top="y", width="w", height="h", by=["page"]
    )
    assert aois.rows() == [
        ("a", 0, "Hi", 8.5, 10.0, 20.25, 18.0),
        ("a", 1, "there", 33.0, 10.0, 44.0, 18.0),
        ("b", 0, "Bye", 8.0, 10.0, 30.0, 18.0),
    ]


def test_numbers_in_text_columns_are_read_and_text_may_be_absent() -> None:
    table = pl.DataFrame(
        {
            "aoi": ["0", "1"],
            "left": ["0", "10.5"],
            "top": ["0", "0"],
            "width": ["10", "5"],
            "height": ["20", "20"],
        }
    )
    aois = aois_from_table(table, text=None)
    assert aois["left"].to_list() == [0.0, 10.5]
    assert aois["text"].to_list() == [None, None]


BOXES = {"aoi": [0, 1, 2], "text": ["a", "b", "c"], "left": [0, 10, 20], "top": [0, 0, 0],
         "width": [10, 10, 10], "height": [20, 20, 20]}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "keywords", "row", "field", "words"),
    [
        pytest.param({}, {"left": "x"}, None, "x", "missing", id="missing-column"),
        pytest.param({"width": [10, -1, 10]}, {}, 2, "width", "negative", id="negative-width"),
        pytest.param({"height": [20, 20, -3]}, {}, 3, "height", "negative", id="negative-height"),
        pytest.param({"left": ["0", "ten", "20"]}, {}, 2, "left", "not a number", id="non-numeric"),
        pytest.param({"top": [0, None, 0]}, {}, 2, "top", "not a finite", id="null"),
        pytest.param({"top": [0, 0, float("inf")]}, {}, 3, "top", "not a finite", id="infinite"),
        pytest.param({"aoi": [0, 1, 1]}, {}, 3, "aoi", "repeats", id="duplicate-index"),
        pytest.param({"aoi": [0, 1.5, 2]}, {}, 2, "aoi", "whole number", id="fractional-index"),
        pytest.param({}, {"first_index": 1}, 1, "aoi", "below", id="index-below-first"),
        pytest.param(
            {"right": [10, 5, 30]},
            {"right": "right"},
            2,
            "right",
            "ends before",
            id="right-before-left",
        ),
        pytest.param({"flag": [True] * 3}, {"left": "flag"}, None, "flag", "type", id="boolean"),
        pytest.param({}, {"width": None}, None, "width", "neither", id="no-width-or-right"),
    ],
)
def test_bad_boxes_name_row_and_field(
    change: dict[str, list[object]],
    keywords: dict[str, object],
    row: int | None,
    field: str,
    words: str,
) -> None:
    table = pl.DataFrame({**BOXES, **change}, strict=False)
    with pytest.raises(InputError) as caught:
        aois_from_table(table, source="boxes.csv", **keywords)  # type: ignore[arg-type]
    assert caught.value.row == row
    assert caught.value.field == field
    assert words in caught.value.message


# --------------------------------------------------------------------------------------------
# layout_text
# --------------------------------------------------------------------------------------------

PASSAGE = (
    "Robert Myslajek stops dead. Between the two paw prints lies a line of feces, "
    'fresh—"Wolves were here," he says (quietly).\n'
    "Sightings are so rare that   even tracks are a thrill.\n\n"
    "A new paragraph\tstarts here, after\r\nan empty line."
)


@pytest.fixture(scope="module")
def font() -> ImageFont.FreeTypeFont:
    """Pillow's own default font, loaded independently of the module under test."""
    face = ImageFont.load_default(size=24)
    assert isinstance(face, ImageFont.FreeTypeFont)
    return face


def test_default_font_is_pillows_embedded_aileron() -> None:
    face = load_font(size=30)
    assert face.getname() == ("Aileron", "Regular")
    assert face.size == 30


def test_layout_has_one_box_per_word_with_exact_offsets() -> None:
    aois = layout_text(PASSAGE, max_width=600)
    assert aois["text"].to_list() == PASSAGE.split()
    assert aois["aoi"].to_list() == list(range(len(PASSAGE.split())))
    for word, start, end in aois.select("text", "char_start", "char_end").iter_rows():
        assert PASSAGE[start:end] == word


def test_widths_are_the_fonts_advances(font: ImageFont.FreeTypeFont) -> None:
    aois = layout_text(PASSAGE, max_width=600)
    assert aois["width"].to_list() == [font.getlength(word) for word in aois["text"]]
    assert set(aois["height"].to_list()) == {36.0}


def test_words_follow_each_other_one_space_apart(font: ImageFont.FreeTypeFont) -> None:
    aois = layout_text(PASSAGE, max_width=600)
    space = font.getlength(" ")
    for _, line in aois.group_by("line", maintain_order=True):
        ends = (line["left"] + line["width"]).to_list()
        assert line["left"].to_list()[1:] == [end + space for end in ends[:-1]]
        assert line["left"][0] == 40.0


def test_reading_order_is_left_to_right_then_top_to_bottom() -> None:
    aois = layout_text(PASSAGE, max_width=600)
    positions = list(zip(aois["top"], aois["left"], strict=True))
    assert positions == sorted(positions)
    assert aois["top"].to_list() == [40.0 + 36.0 * line for line in aois["line"]]


@pytest.mark.parametrize("max_width", [pytest.param(w, id=f"{w}px") for w in (150, 400, 900)])
def test_wrapping_is_greedy_and_respects_max_width(
    max_width: int, font: ImageFont.FreeTypeFont
) -> None:
    aois = layout_text(PASSAGE, max_width=max_width, margin_left=10)
    limit = 10 + max_width
    ends = aois["left"] + aois["width"]
    starts_line = (aois["line"] != aois["line"].shift(1)).fill_null(True)
    # Only a word wider than the column itself may cross the limit, alone on its line.
    overflowing = ends > limit
    assert (starts_line & (aois["width"] > max_width)).filter(overflowing).all()
    # Greedy: a line that starts without a line break in the text starts with a word that would
    # not have fitted after the previous one.
    gap_before = [
        PASSAGE[end:start]
        for end, start in zip(
            aois["char_end"].shift(1).fill_null(0), aois["char_start"], strict=True
        )
    ]
    soft_break = (
        starts_line & pl.Series(["\n" not in gap for gap in gap_before]) & (aois["aoi"] > 0)
    )
    would_end = ends.shift(1) + font.getlength(" ") + aois["width"]
    assert (would_end.filter(soft_break) > limit).all()
    assert soft_break.sum() >= (1 if max_width < 900 else 0)
    assert (~starts_line & ~overflowing).sum() > 0


def test_line_breaks_and_paragraphs() -> None:
    aois = layout_text("One two\nthree\n\nfour\r\n five")
    assert aois.select("text", "line").rows() == [
        ("One", 0),
        ("two", 0),
        ("three", 1),
        ("four", 3),
        ("five", 4),
    ]


def test_a_word_wider_than_the_column_gets_its_own_line() -> None:
    aois = layout_text("a " + "m" * 30 + " b", max_width=100)
    assert aois["line"].to_list() == [0, 1, 2]
    assert aois["width"][1] > 100


def test_literal_boxes_with_the_documented_defaults() -> None:
    aois = layout_text("Robert stops dead.", text_id="t1")
    # Aileron 24 px advances: Robert 75, stops 60, dead. 61, space 5.
    assert aois.rows() == [
        ("t1", 0, "Robert", 40.0, 40.0, 75.0, 36.0, 0, 0, 6),
        ("t1", 1, "stops", 120.0, 40.0, 60.0, 36.0, 0, 7, 12),
        ("t1", 2, "dead.", 185.0, 40.0, 61.0, 36.0, 0, 13, 18),
    ]


def test_a_font_file_or_font_object_can_replace_the_default(
    tmp_path: Path, font: ImageFont.FreeTypeFont
) -> None:
    assert isinstance(font.path, io.BytesIO)
    font_file = tmp_path / "aileron.ttf"
    font_file.write_bytes(font.path.getvalue())
    from_file = layout_text(PASSAGE, font=font_file, font_size=18)
    from_object = layout_text(PASSAGE, font=font, font_size=18)
    default = layout_text(PASSAGE, font_size=18)
    assert from_file.equals(default)
    assert from_object.equals(default)


def test_empty_text_gives_an_empty_table() -> None:
    aois = layout_text("  \n ")
    assert aois.height == 0
    assert aois.columns == [*AOI_COLUMNS, "line", "char_start", "char_end"]


@pytest.mark.parametrize(
    ("keywords", "field"),
    [
        pytest.param({"font_size": 0}, "font_size", id="font-size"),
        pytest.param({"line_height": -1}, "line_height", id="line-height"),
        pytest.param({"max_width": 0}, "max_width", id="max-width"),
        pytest.param({"font": "/no/such/font.ttf"}, "font", id="font-file"),
    ],
)
def test_bad_layout_settings(keywords: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as caught:
        layout_text("text", **keywords)  # type: ignore[arg-type]
    assert caught.value.field == field


# --------------------------------------------------------------------------------------------
# map_fixations_to_aois: literal cases
# --------------------------------------------------------------------------------------------

# Two lines of 20 px: "aa" [0, 10) and "bb" [10, 30) touch; "cc" [34, 44) after a 4 px gap;
# "dd" [0, 10) on the line below [20, 40); "ee" [60, 80) overlaps "ff" [70, 100) on line one,
# where "ff" comes first in AOI order.
WORDS = pl.DataFrame(
    {
        "aoi": [0, 1, 2, 3, 5, 4],
        "text": ["aa", "bb", "cc", "dd", "ee", "ff"],
        "left": [0.0, 10.0, 34.0, 0.0, 60.0, 70.0],
        "top": [0.0, 0.0, 0.0, 20.0, 0.0, 0.0],
        "width": [10.0, 20.0, 10.0, 10.0, 20.0, 30.0],
        "height": [20.0, 20.0, 20.0, 20.0, 20.0, 20.0],
    }
)


@pytest.mark.parametrize(
    ("x", "y", "margin", "overlap", "expected"),
    [
        pytest.param(5, 10, 0, "first", "aa", id="inside"),
        pytest.param(0, 0, 0, "first", "aa", id="top-left-corner-belongs"),
        pytest.param(10, 10, 0, "first", "bb", id="shared-border-goes-right"),
        pytest.param(9.999, 10, 0, "first", "aa", id="just-left-of-border"),
        pytest.param(30, 10, 0, "first", None, id="right-edge-is-outside"),
        pytest.param(5, 20, 0, "first", "dd", id="line-border-goes-down"),
        pytest.param(5, 40, 0, "first", None, id="bottom-edge-is-outside"),
        pytest.param(-0.5, 10, 0, "first", None, id="left-of-text"),
        pytest.param(31, 10, 0, "first", None, id="gap"),
        pytest.param(31, 10, 2, "first", "bb", id="gap-within-margin-nearest-left"),
        pytest.param(33, 10, 2, "first", "cc", id="gap-within-margin-nearest-right"),
        pytest.param(32, 10, 2.5, "first", "bb", id="gap-middle-tie-lowest-aoi"),
        pytest.param(32, 10, 2, "first", "cc", id="expanded-right-edge-is-exclusive"),
        pytest.param(32, 10, 1.5, "first", None, id="gap-beyond-margin"),
        pytest.param(15, 21, 2, "first", "bb", id="inside-beats-margin"),
        pytest.param(15, 41, 2, "first", None, id="below-line-two-is-empty"),
        pytest.param(5, 41, 2, "first", "dd", id="below-text-within-margin"),
        pytest.param(31, 21, 2, "first", "bb", id="diagonal-corner-of-expanded-box"),
        pytest.param(-2, -2, 2, "first", "aa", id="expanded-corner-belongs"),
        pytest.param(-2.5, 0, 2, "first", None, id="beyond-expanded-edge"),
        pytest.param(75, 10, 0, "first", "ff", id="overlap-lowest-aoi-wins"),
        pytest.param(75, 10, 0, "nearest", "ee", id="overlap-nearest-centre-wins"),
        pytest.param(85, 10, 0, "nearest", "ff", id="overlap-nearest-centre-other"),
        pytest.param(65, 10, 0, "nearest", "ee", id="nearest-outside-overlap"),
    ],
)
def test_fixation_lands_on_the_documented_box(
    x: float, y: float, margin: float, overlap: str, expected: str | None
) -> None:
    fixations = pl.DataFrame({"x": [float(x)], "y": [float(y)]})
    mapped = map_fixations_to_aois(fixations, WORDS, margin=margin, overlap=overlap)  # type: ignore[arg-type]
    assert mapped["text"].to_list() == [expected]
    index = dict(zip(WORDS["text"], WORDS["aoi"], strict=True))
    assert mapped["aoi"].to_list() == [None if expected is None else index[expected]]


def test_fixations_only_match_their_own_groups_boxes() -> None:
    aois = pl.DataFrame(
        {
            "trial": [1, 1, 2],
            "reader": ["r", "r", "r"],
            "aoi": [0, 1, 0],
            "text": ["one", "two", "other"],
            "left": [0.0, 50.0, 0.0],
            "top": [0.0, 0.0, 0.0],
            "width": [50.0, 50.0, 100.0],
            "height": [30.0, 30.0, 30.0],
        }
    )
    fixations = pl.DataFrame(
        {
            "onset": [0.0, 100.0, 200.0, 300.0, 400.0, 500.0],
            "trial": [2, 1, 1, 3, 2, 1],
            "reader": ["r", "r", "s", "r", "r", "r"],
            "x": [60.0, 60.0, 10.0, 10.0, None, 10.0],
            "y": [10.0, 10.0, 10.0, 10.0, 10.0, float("nan")],
        }
    )
    mapped = map_fixations_to_aois(fixations, aois, by=["trial", "reader"])
    assert mapped.columns == [*fixations.columns, "aoi", "text"]
    assert mapped.drop("aoi", "text").equals(fixations)
    assert mapped["text"].to_list() == ["other", "two", None, None, None, None]
    assert mapped["aoi"].to_list() == [0, 1, None, None, None, None]
    assert mapped.schema["aoi"] == pl.Int64


def test_no_aois_at_all_gives_nulls() -> None:
    empty = WORDS.clear()
    mapped = map_fixations_to_aois(pl.DataFrame({"x": [1.0], "y": [1.0]}), empty)
    assert mapped["aoi"].to_list() == [None]


@pytest.mark.parametrize(
    ("fixations", "aois", "keywords", "field"),
    [
        pytest.param({"x": [1.0]}, WORDS, {}, "y", id="missing-y"),
        pytest.param({"x": [1.0], "y": [1.0], "aoi": [3]}, WORDS, {}, "aoi", id="aoi-exists"),
        pytest.param({"x": [1.0], "y": [1.0]}, WORDS.drop("left"), {}, "left", id="no-left"),
        pytest.param({"x": [1.0], "y": [1.0]}, WORDS, {"margin": -1}, "margin", id="margin"),
        pytest.param({"x": [1.0], "y": [1.0]}, WORDS, {"overlap": "last"}, "overlap", id="overlap"),
        pytest.param({"x": ["left"], "y": [1.0]}, WORDS, {}, "x", id="non-numeric-x"),
        pytest.param(
            {"x": [1.0], "y": [1.0], "trial": ["1"]},
            WORDS.with_columns(trial=pl.lit(1)),
            {"by": ["trial"]},
            "trial",
            id="group-types-differ",
        ),
    ],
)
def test_bad_mapping_inputs(
    fixations: dict[str, list[object]],
    aois: pl.DataFrame,
    keywords: dict[str, object],
    field: str,
) -> None:
    with pytest.raises(InputError) as caught:
        map_fixations_to_aois(pl.DataFrame(fixations), aois, **keywords)  # type: ignore[arg-type]
    assert caught.value.field == field


# --------------------------------------------------------------------------------------------
# map_fixations_to_aois: against a plain loop over every box
# --------------------------------------------------------------------------------------------


def _reference(
    fixations: pl.DataFrame, aois: pl.DataFrame, margin: float, overlap: str
) -> list[int | None]:
    """The documented policy, written out box by box."""
    found: list[int | None] = []
    for group, x, y in fixations.select("g", "x", "y").iter_rows():
        best: tuple[bool, float, int] | None = None
        for g, aoi, left, top, width, height in aois.select(
            "g", "aoi", "left", "top", "width", "height"
        ).iter_rows():
            right, bottom = left + width, top + height
            in_expanded = (
                left - margin <= x < right + margin and top - margin <= y < bottom + margin
            )
            if g != group or not in_expanded:
                continue
            inside = left <= x < right and top <= y < bottom
            if inside:
                centre = np.hypot(x - (left + right) / 2, y - (top + bottom) / 2)
                score = float(centre) if overlap == "nearest" else 0.0
            else:
                score = float(
                    np.hypot(max(left - x, x - right, 0.0), max(top - y, y - bottom, 0.0))
                )
            key = (not inside, score, aoi)
            if best is None or key < best:
                best = key
        found.append(None if best is None else best[2])
    return found


box = st.tuples(
    st.integers(0, 1),  # group
    st.integers(0, 40),  # left
    st.integers(0, 40),  # top
    st.integers(0, 15),  # width
    st.integers(0, 15),  # height
)
point = st.tuples(st.integers(-1, 2), st.integers(-5, 60), st.integers(-5, 60))


@settings(max_examples=200, deadline=None)
@given(
    boxes=st.lists(box, min_size=0, max_size=12),
    points=st.lists(point, min_size=1, max_size=30),
    margin=st.sampled_from([0.0, 0.5, 2.0, 5.0]),
    overlap=st.sampled_from(["first", "nearest"]),
    order=st.randoms(use_true_random=False),
)
def test_vectorised_mapping_matches_a_plain_loop(
    boxes: list[tuple[int, int, int, int, int]],
    points: list[tuple[int, int, int]],
    margin: float,
    overlap: str,
    order: object,
) -> None:
    aoi = list(range(len(boxes)))
    order.shuffle(aoi)  # type: ignore[attr-defined]
    aois = pl.DataFrame(
        {
            "g": [b[0] for b in boxes],
            "aoi": aoi,
            "left": [float(b[1]) for b in boxes],
            "top": [float(b[2]) for b in boxes],
            "width": [float(b[3]) for b in boxes],
            "height": [float(b[4]) for b in boxes],
        },
        schema={"g": pl.Int64, "aoi": pl.Int64, "left": pl.Float64, "top": pl.Float64,
                "width": pl.Float64, "height": pl.Float64},
    )  # fmt: skip
    fixations = pl.DataFrame(
        {"g": [p[0] for p in points], "x": [p[1] / 2 for p in points],
         "y": [p[2] / 2 for p in points]}
    )  # fmt: skip
    mapped = map_fixations_to_aois(fixations, aois, by=["g"], margin=margin, overlap=overlap)  # type: ignore[arg-type]
    assert mapped["aoi"].to_list() == _reference(fixations, aois, margin, overlap)


def test_many_groups_and_fixations_against_layout() -> None:
    words = layout_text(PASSAGE, max_width=500, margin_left=0, margin_top=0)
    aois = pl.concat([words.with_columns(trial=pl.lit(t)) for t in range(50)])
    rng = np.random.default_rng(3)
    n = 20_000
    fixations = pl.DataFrame(
        {
            "trial": rng.integers(0, 60, n),
            "x": rng.uniform(-10, 520, n).round(1),
            "y": rng.uniform(-10, 400, n).round(1),
        }
    )
    mapped = map_fixations_to_aois(fixations, aois, by=["trial"])
    # Brute force per fixation, vectorised over the words of one (identical) layout.
    x, y = fixations["x"].to_numpy()[:, None], fixations["y"].to_numpy()[:, None]
    left, top = words["left"].to_numpy(), words["top"].to_numpy()
    inside = (left <= x) & (x < left + words["width"].to_numpy())
    inside &= (top <= y) & (y < top + words["height"].to_numpy())
    expected = np.where(inside.any(axis=1), inside.argmax(axis=1), -1)
    expected[fixations["trial"].to_numpy() >= 50] = -1
    assert mapped["aoi"].fill_null(-1).to_list() == expected.tolist()
    assert 0.2 < (expected >= 0).mean() < 0.9


# --------------------------------------------------------------------------------------------
# map_fixations_to_aois: EyeLink's own assignment in the OneStop sample
# --------------------------------------------------------------------------------------------


def test_reproduces_eyelink_interest_area_assignment(onestop_dir: Path) -> None:
    by = ["participant_id", "TRIAL_INDEX"]
    report = pl.read_csv(onestop_dir / "ia.csv", infer_schema_length=10_000)
    aois = aois_from_table(
        report,
        aoi="IA_ID",
        text="IA_LABEL",
        left="IA_LEFT",
        top="IA_TOP",
        right="IA_RIGHT",
        bottom="IA_BOTTOM",
        by=by,
        source="ia.csv",
    )
    fixations = pl.read_csv(onestop_dir / "fixations.csv", null_values=".").select(
        *by,
        "CURRENT_FIX_INTEREST_AREA_ID",
        "CURRENT_FIX_INTEREST_AREA_LABEL",
        x=pl.col("CURRENT_FIX_X").cast(pl.Float64),
        y=pl.col("CURRENT_FIX_Y").cast(pl.Float64),
    )
    mapped = map_fixations_to_aois(fixations, aois, by=by)

    # OneStop's ia.csv numbers interest areas from 0 (IA_ID 0 is "Robert"), while Data Viewer's
    # CURRENT_FIX_INTEREST_AREA_ID counts from 1 as EyeLink does, and "." means no area.
    eyelink_id = mapped["aoi"] + 1
    agrees = eyelink_id.eq_missing(mapped["CURRENT_FIX_INTEREST_AREA_ID"])
    assert mapped.height == 3209
    assert agrees.all()  # 3209 of 3209: 100%
    assert mapped["text"].eq_missing(mapped["CURRENT_FIX_INTEREST_AREA_LABEL"]).all()
    assert mapped["aoi"].null_count() == 1  # (355, 336) lies outside every area of its trial

    # The border convention matters: with closed boxes 30 fixations would lie in two boxes at
    # once (24 on the edge between two words of a line, 6 on the edge between two lines), and
    # Data Viewer gives each to the box on the right or below (edges left/top inclusive,
    # right/bottom exclusive), as we do.
    boxes = aois.select(*by, "left", "top", right=pl.col("left") + pl.col("width"),
                        bottom=pl.col("top") + pl.col("height"))  # fmt: skip
    on_edges = (
        mapped.with_row_index("fixation")
        .join(boxes, on=by)
        .filter(pl.col("x").is_between("left", "right"), pl.col("y").is_between("top", "bottom"))
        .group_by("fixation")
        .agg(
            boxes=pl.len(),
            between_words=(pl.col("x") == pl.col("left")).any(),
        )
        .filter(pl.col("boxes") > 1)
    )
    assert on_edges.height == 30
    assert on_edges["between_words"].sum() == 24


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"font_size": float("nan")}, "font_size", id="nan-font-size"),
        pytest.param({"font_size": float("inf")}, "font_size", id="inf-font-size"),
        pytest.param({"line_height": float("nan")}, "line_height", id="nan-line-height"),
    ],
)
def test_layout_text_rejects_sizes_that_are_not_finite(
    kwargs: dict[str, float], field: str
) -> None:
    with pytest.raises(InputError, match=rf"field \"{field}\""):
        layout_text("a b", **kwargs)  # type: ignore[arg-type]
