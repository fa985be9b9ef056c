"""What the browser may send: the recorder's batches, ratings, calibration results.

Every payload is a pydantic model that forbids unknown fields, so nothing the study did not ask
for (in particular no image or video data) can be stored, and every limit is a named constant
that the server's error messages quote.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_LAYOUT_BOXES",
    "MAX_LAYOUT_BYTES",
    "MAX_SAMPLES_PER_BATCH",
    "MAX_TEXT",
    "MAX_WORD_TEXT",
    "SAMPLE_KINDS",
    "Batch",
    "BatchAck",
    "Calibration",
    "Layout",
    "LayoutAck",
    "NewQuestion",
    "NewSession",
    "Rating",
    "Sample",
    "SessionCreated",
    "TaskView",
    "WordBox",
]

MAX_BATCH_BYTES = 1_000_000
"""Largest request body the server reads, in bytes (a 60 Hz second is about 10 kB)."""
MAX_SAMPLES_PER_BATCH = 2_000
"""Most samples in one batch."""
MAX_TEXT = 4_000
"""Longest question a participant may type, in characters."""
MAX_LAYOUT_BOXES = 20_000
"""Most word boxes in one answer's layout (a wrapped word has one box per line)."""
MAX_LAYOUT_BYTES = 4_000_000
"""Largest layout body, in bytes (20,000 boxes of ordinary words take about 2.5 MB)."""
MAX_WORD_TEXT = 100
"""Longest text of one word box, in characters; a longer word is cut (``char_end`` is not)."""
MAX_PX = 1_000_000.0
"""Largest coordinate or size in a layout, in px, either sign."""
MAX_OFFSET = 2**31 - 1
"""Largest word number or character offset (a database integer)."""

SampleKind = Literal[
    "mouse", "gaze", "scroll", "click", "focus", "blur", "visibility", "resize", "rating"
]
SAMPLE_KINDS: tuple[str, ...] = get_args(SampleKind)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=MAX_TEXT)


class Sample(_Strict):
    """One recorded event.

    ``x``, ``y`` are page pixels; ``response`` is the answer under the point (1 left, 2 right,
    0 none) and ``x_rel``, ``y_rel`` the point relative to that answer's box, ``char_index``
    the character under it (``caretPositionFromPoint``) and ``text_window`` the ±10 characters
    around it, as in the IFllm layout.
    """

    kind: SampleKind
    t: float = Field(ge=0, description="page timer, ms (performance.now())")
    epoch_ms: int = Field(ge=0, description="wall clock, ms since 1970 (Date.now())")
    x: float | None = None
    y: float | None = None
    response: Literal[0, 1, 2] = 0
    x_rel: float | None = None
    y_rel: float | None = None
    char_index: int | None = Field(default=None, ge=0)
    text_window: str | None = Field(default=None, max_length=64)
    camera_valid: bool | None = None
    value: str | None = Field(
        default=None, max_length=200, description="scroll offset, key of a rating, visibility…"
    )


class Batch(_Strict):
    """A numbered batch of samples; ``seq`` counts 0, 1, 2, … per session."""

    seq: int = Field(ge=0)
    task_id: int | None = None
    samples: list[Sample] = Field(max_length=MAX_SAMPLES_PER_BATCH)


class BatchAck(BaseModel):
    """The reply to a stored batch: sent only after the commit."""

    seq: int
    stored: int
    duplicate: bool
    next_seq: int


class NewSession(_Strict):
    """Consent given: ``consent`` must be true; ``participant`` is an optional outside id."""

    consent: bool
    participant: str | None = Field(default=None, max_length=128)
    screen_width: int | None = Field(default=None, ge=0, le=100_000)
    screen_height: int | None = Field(default=None, ge=0, le=100_000)
    user_agent: str | None = Field(default=None, max_length=512)


class SessionCreated(BaseModel):
    session_id: str
    participant_id: str
    token: str
    calibration: bool
    webgazer: bool


class Calibration(_Strict):
    """The precision check after calibration, as a share of samples near the target (0–1)."""

    precision: float = Field(ge=0.0, le=1.0)
    points: int = Field(ge=0, le=100)


class NewQuestion(_Strict):
    question: str = Field(min_length=1, max_length=MAX_TEXT)


class Rating(_Strict):
    """Both answers rated 1–5 and a preference: 1 (left) or 2 (right)."""

    likert_1: int = Field(ge=1, le=5)
    likert_2: int = Field(ge=1, le=5)
    preference: Literal[1, 2]


class TaskView(BaseModel):
    """What the task page shows; ``ask`` means the participant types the question first."""

    done: bool = False
    ask: bool = False
    task_id: int | None = None
    position: int = 0
    total: int = 0
    question: str | None = None
    response_1: str | None = None
    response_2: str | None = None


Px = Annotated[float, Field(ge=-MAX_PX, le=MAX_PX, allow_inf_nan=False)]
Size = Annotated[float, Field(ge=0.0, le=MAX_PX, allow_inf_nan=False)]


class WordBox(_Strict):
    """One rectangle of a word as ``Range.getClientRects()`` gives it, in px relative to the
    origin of ``x_rel``/``y_rel`` (the answer box's top-left corner with its text scrolled to the
    top), so a sample's relative point and the boxes share one frame whatever the scrolling.

    ``index`` numbers the words of the answer (runs of non-space characters) from 0; a word
    that wraps over lines has one box per line, all with its ``index``, each with the part of
    the word (``text``, ``char_start``, ``char_end``) on that line. Character offsets are code
    points into the answer, as ``char_index`` counts them; ``text`` is cut at
    :data:`MAX_WORD_TEXT` characters.
    """

    index: int = Field(ge=0, le=MAX_OFFSET)
    text: str = Field(min_length=1, max_length=MAX_WORD_TEXT)
    char_start: int = Field(ge=0, le=MAX_OFFSET)
    char_end: int = Field(ge=1, le=MAX_OFFSET)
    left: Px
    top: Px
    width: Size
    height: Size

    @model_validator(mode="after")
    def _characters_in_order(self) -> WordBox:
        if self.char_end <= self.char_start:
            raise ValueError(f"char_end {self.char_end} is not after char_start {self.char_start}")
        return self


class Layout(_Strict):
    """The word boxes of one answer (``response`` 1 left, 2 right) as laid out now.

    Sent when a task's answers are shown and again whenever their layout changes (a resize);
    ``epoch_ms`` is when the browser measured it, on the clock of the samples. ``width`` and
    ``height`` are the answer box's outer size in px (its text may scroll inside it). Boxes come
    in reading order: ``index`` never decreases and no box starts before the previous one ends.
    """

    response: Literal[1, 2]
    epoch_ms: int = Field(ge=0, description="wall clock when measured, ms since 1970")
    width: Size
    height: Size
    words: list[WordBox] = Field(max_length=MAX_LAYOUT_BOXES)

    @model_validator(mode="after")
    def _boxes_in_reading_order(self) -> Layout:
        for number, (before, box) in enumerate(zip(self.words, self.words[1:], strict=False)):
            if box.index < before.index or box.char_start < before.char_end:
                raise ValueError(
                    f"box {number + 1} (word {box.index}, characters {box.char_start}-"
                    f"{box.char_end}) comes before box {number} (word {before.index}, "
                    f"characters {before.char_start}-{before.char_end}); boxes go in reading order"
                )
        return self


class LayoutAck(BaseModel):
    """The reply to a stored layout: its ``version`` (1, 2, … per task and answer) and whether
    it repeated the latest version (then nothing new was stored)."""

    task_id: int
    response: int
    version: int
    boxes: int
    duplicate: bool
