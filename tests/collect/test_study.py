"""Study files: defaults, relative paths, and a clear error for every kind of bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tacitly.collect.study import default_study, load_study
from tacitly.errors import InputError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    study = default_study()
    assert (study.tasks, study.ask, study.questions) == (3, False, [])
    assert study.generator.kind == "file" and study.generator.path is None
    assert not study.calibration.enabled
    assert (study.calibration.points, study.calibration.clicks) == (9, 5)
    assert study.calibration.threshold == 0.7
    assert study.recorder.pointer_hz == 60.0


def test_a_full_file_and_paths_relative_to_it(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "title: Pick one\n"
        "tasks: 2\n"
        "questions:\n  - Why is the sky blue?\n  - What is rain?\n"
        "generator: {kind: file, path: pairs.jsonl}\n"
        "calibration: {enabled: true, threshold: 0.8}\n"
        "recorder: {pointer_hz: 30, batch_ms: 500}\n",
    )
    study = load_study(path)
    assert study.title == "Pick one" and study.tasks == 2
    assert study.questions == ["Why is the sky blue?", "What is rain?"]
    assert study.generator.path == str(tmp_path / "pairs.jsonl")
    assert study.calibration.enabled and study.calibration.threshold == 0.8
    assert (study.recorder.pointer_hz, study.recorder.batch_ms) == (30, 500)


def test_an_empty_file_is_the_default_study(tmp_path: Path) -> None:
    assert load_study(_write(tmp_path, "")) == default_study()


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        pytest.param("tasks: 0\n", "tasks", "greater than or equal to 1", id="tasks-zero"),
        pytest.param("colour: red\n", "colour", "Extra inputs", id="unknown-key"),
        pytest.param(
            "calibration: {threshold: 1.5}\n",
            "calibration.threshold",
            "less than or equal to 1",
            id="threshold",
        ),
        pytest.param(
            "generator: {kind: openai}\n", "generator", "needs url and model", id="openai-url"
        ),
        pytest.param("generator: {kind: magic}\n", "generator.kind", "'file'", id="kind"),
        pytest.param(
            "tasks: 3\nquestions:\n  - only one?\n", None, "1 questions for 3 tasks", id="too-few"
        ),
    ],
)
def test_bad_fields_are_named(tmp_path: Path, text: str, field: str | None, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputError, match=message) as caught:
        load_study(path)
    assert caught.value.source == str(path)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("tasks: [1\n", "not valid YAML", id="yaml"),
        pytest.param("- a\n- b\n", "top level is a list", id="list"),
    ],
)
def test_files_that_are_not_a_study(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_study(_write(tmp_path, text))


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such study file"):
        load_study(tmp_path / "nope.yaml")
