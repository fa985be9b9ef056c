"""What the browser may send: the recorder's batches, ratings, calibration results.

Every payload is a pydantic model that forbids unknown fields, so nothing the study did not ask
for (in particular no image or video data) can be stored, and every limit is a named constant
that the server's error messages quote.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_SAMPLES_PER_BATCH",
    "MAX_TEXT",
    "SAMPLE_KINDS",
    "Batch",
    "BatchAck",
    "Calibration",
    "NewQuestion",
    "NewSession",
    "Rating",
    "Sample",
    "SessionCreated",
    "TaskView",
]

MAX_BATCH_BYTES = 1_000_000
"""Largest request body the server reads, in bytes (a 60 Hz second is about 10 kB)."""
MAX_SAMPLES_PER_BATCH = 2_000
"""Most samples in one batch."""
MAX_TEXT = 4_000
"""Longest question a participant may type, in characters."""

SampleKind = Literal[
    "mouse", "gaze", "scroll", "click", "focus", "blur", "visibility", "resize", "rating"
]
SAMPLE_KINDS: tuple[str, ...] = (
    "mouse",
    "gaze",
    "scroll",
    "click",
    "focus",
    "blur",
    "visibility",
    "resize",
    "rating",
)


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
