"""A study's configuration: a YAML file, checked field by field.

Example ``study.yaml``::

    title: Which answer helps more?
    tasks: 3                     # questions per participant
    ask: false                   # true: the participant types each question
    questions:                   # asked in this order (ask: false)
      - How do vaccines train the immune system?
    generator:
      kind: file                 # file | smollm2 | openai
      path: pairs.jsonl          # file: one {"question", "response_1", "response_2"} per line
    calibration:
      enabled: true              # webcam calibration before the tasks (needs WebGazer)
      threshold: 0.7             # recalibrate below this precision
    recorder:
      pointer_hz: 60             # pointer samples per second, at most
      batch_ms: 1000             # upload interval

With no file, :func:`default_study` serves the embedded demo pairs (written by the tacitly
developers) without calibration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tacitly.errors import InputError

__all__ = [
    "CalibrationConfig",
    "GeneratorConfig",
    "LimitsConfig",
    "RecorderConfig",
    "StudyConfig",
    "default_study",
    "load_study",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GeneratorConfig(_Section):
    """Where the two answers come from.

    ``file``: pre-generated pairs (JSONL with ``question``, ``response_1``, ``response_2`` and
    optional ``source_1``, ``source_2``; no path: the embedded demo pairs). ``smollm2``: the
    embedded SmolLM2-135M-Instruct samples two answers. ``openai``: any OpenAI-compatible chat
    endpoint at ``url`` with ``model``, the key read from the environment variable
    ``api_key_env`` (never from the file).
    """

    kind: Literal["file", "smollm2", "openai"] = "file"
    path: str | None = None
    url: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_new_tokens: int = Field(default=256, ge=1, le=8192)
    temperature: float = Field(default=0.9, ge=0.0, le=2.0)
    seed: int = 0

    @model_validator(mode="after")
    def _needs(self) -> GeneratorConfig:
        if self.kind == "openai" and (not self.url or not self.model):
            raise ValueError("generator kind 'openai' needs url and model")
        return self


class CalibrationConfig(_Section):
    """Webcam calibration: ``points`` targets clicked ``clicks`` times each, then a precision
    check; below ``threshold`` the participant calibrates again (at most ``attempts`` times)."""

    enabled: bool = False
    points: int = Field(default=9, ge=1, le=25)
    clicks: int = Field(default=5, ge=1, le=20)
    threshold: float = Field(default=0.7, ge=0.0, le=1.0)
    attempts: int = Field(default=3, ge=1, le=10)


class RecorderConfig(_Section):
    """Browser-side sampling and upload."""

    pointer_hz: float = Field(default=60.0, gt=0, le=1000)
    batch_ms: int = Field(default=1000, ge=100, le=60_000)
    webgazer: bool = True


class LimitsConfig(_Section):
    """Per-session rate limit: a token bucket of ``burst`` requests refilled at
    ``requests_per_s``."""

    requests_per_s: float = Field(default=20.0, gt=0)
    burst: int = Field(default=40, ge=1)


class StudyConfig(_Section):
    """A whole study (see the module docstring for the YAML form)."""

    title: str = "Which answer is better?"
    consent_text: str | None = None
    tasks: int = Field(default=3, ge=1, le=1000)
    ask: bool = False
    questions: list[str] = Field(default_factory=list)
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    recorder: RecorderConfig = Field(default_factory=RecorderConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)

    @model_validator(mode="after")
    def _questions_for_fixed_studies(self) -> StudyConfig:
        if not self.ask and self.questions and len(self.questions) < self.tasks:
            raise ValueError(
                f"{len(self.questions)} questions for {self.tasks} tasks: give at least "
                "`tasks` questions, or none (the generator's own, e.g. a pairs file)"
            )
        return self


def default_study() -> StudyConfig:
    """The embedded demo study: three questions from the demo pairs, no calibration."""
    return StudyConfig()


def load_study(path: str | Path) -> StudyConfig:
    """Read and check a study YAML file.

    Raises
    ------
    InputError
        Naming the file and the first wrong field, when the file is missing, is not YAML, or
        does not fit :class:`StudyConfig`.
    """
    import yaml

    file = Path(path)
    if not file.is_file():
        raise InputError("no such study file", source=str(file), expected="a YAML file")
    try:
        data: Any = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise InputError(f"not valid YAML: {error}", source=str(file)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(
            f"the top level is a {type(data).__name__}", source=str(file), expected="a mapping"
        )
    try:
        study = StudyConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or None
        raise InputError(first["msg"], source=str(file), field=where) from None
    if study.generator.path is not None and not Path(study.generator.path).is_absolute():
        # Paths in the file are relative to the file, not to wherever serve was started.
        study.generator.path = str((file.parent / study.generator.path).resolve())
    return study
