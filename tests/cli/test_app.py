"""Tests for the ``tacitly`` application: its help, its error handling, ``models`` and ``demo``.

Commands run in-process through :class:`typer.testing.CliRunner`; the console-script behaviour
(an input error becomes one line on stderr and exit code 2) is checked through
:func:`tacitly.cli.main` and once through the installed ``tacitly`` script.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tacitly.cli import demo as cli_demo
from tacitly.cli import gaze as cli_gaze
from tacitly.cli import main
from tacitly.cli.app import app

runner = CliRunner(env={"COLUMNS": "100", "TERMINAL_WIDTH": "100"})

SCRIPT = Path(sys.executable).parent / "tacitly"


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Print as on a 100-column terminal, whatever COLUMNS says, so that lines do not wrap."""
    for module in (cli_gaze, cli_demo):
        monkeypatch.setattr(module, "console", Console(width=100))


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int | str | None, str, str]:
    """Run the console-script entry point in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["tacitly", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


# ------------------------------------------------------------------------------------------
# Help


def _commands_panel(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "Commands" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("╰"))
    return [line.strip("│ ") for line in lines[start + 1 : end]]


def test_help_lists_each_group_on_one_line() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    rows = _commands_panel(result.output)
    assert sorted(row.split()[0] for row in rows) == [
        "behavior",
        "collect",
        "demo",
        "flr",
        "gaze",
        "models",
        "rm",
        "score",
    ]
    described = {row.split()[0]: row.split(maxsplit=1)[1] for row in rows}
    assert described["gaze"].startswith("Eye tracking")
    assert described["models"].startswith("List the embedded backbones")
    assert described["demo"].startswith("Run the main job")
    assert described["rm"].startswith("Reward models")
    assert described["flr"].startswith("Follow-up likelihood reward")
    assert described["score"].startswith("Score a JSON Lines file")


def test_no_arguments_shows_help() -> None:
    result = runner.invoke(app, [])
    assert "Commands" in result.output
    assert "gaze" in result.output


@pytest.mark.parametrize("command", ["fixations", "measures", "align", "train", "predict"])
def test_gaze_help_lists_its_commands(command: str) -> None:
    result = runner.invoke(app, ["gaze", "--help"])
    assert result.exit_code == 0
    assert command in {row.split()[0] for row in _commands_panel(result.output)}


# ------------------------------------------------------------------------------------------
# Input errors: one line on stderr, exit code 2


def test_missing_file_is_one_line_and_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(monkeypatch, capsys, "gaze", "fixations", "missing.csv")
    assert code == 2
    assert out == ""
    assert err.splitlines() == ["error: missing.csv: no such file"]


def test_invalid_parameter_is_one_line_and_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(monkeypatch, capsys, "demo", "--readers", "0", "--no-tokens")
    assert code == 2
    assert err.splitlines() == [
        'error: field "n_readers": n_readers must be at least 1 (expected ≥ 1)'
    ]


def test_long_error_stays_on_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Deep inside a folder the message is longer than any terminal; it must still not wrap.
    deep = tmp_path.joinpath(*(["a_rather_long_folder_name"] * 6))
    code, _, err = run_main(
        monkeypatch, capsys, "gaze", "measures", str(deep / "fix.csv"), "--text", "Hi."
    )
    assert code == 2
    assert len(err.splitlines()) == 1
    assert str(deep / "fix.csv") in err


def test_usage_error_keeps_clicks_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(monkeypatch, capsys, "gaze", "fixations", "--method", "xyz")
    assert code == 2
    assert "Invalid value" in err


@pytest.mark.skipif(not SCRIPT.is_file(), reason="the tacitly console script is not installed")
def test_console_script_reports_input_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(SCRIPT), "gaze", "fixations", "missing.csv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == ["error: missing.csv: no such file"]


# ------------------------------------------------------------------------------------------
# models


def test_models_json_output_lists_the_embedded_backbones() -> None:
    result = runner.invoke(app, ["models", "--json-output"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == ["SmolLM2-135M-Instruct", "all-MiniLM-L6-v2"]
    assert [row["role"] for row in rows] == ["lm", "encoder"]
    for row in rows:
        assert {"package", "installed", "licence", "cached", "cache_path"} <= row.keys()
        assert isinstance(row["installed"], bool)


def test_models_table_names_every_backbone() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "SmolLM2-135M-Instruct" in result.output
    assert "all-MiniLM-L6-v2" in result.output


# ------------------------------------------------------------------------------------------
# demo


def test_demo_without_tokens_prints_the_word_table() -> None:
    result = runner.invoke(app, ["demo", "--no-tokens", "--no-reward", "--readers", "2"])
    assert result.exit_code == 0, result.output
    words = " ".join(result.output.split())
    assert "2 simulated readers" in words
    assert "→ 47 words" in words
    assert "Reading measures per word" in result.output
    # The table lists every word of the example answer, the last one included.
    assert "ambiguous" in result.output
    assert "hard." in result.output
    assert "Token features" not in result.output


def test_demo_is_reproducible_with_a_seed() -> None:
    def table(seed: str) -> list[str]:
        result = runner.invoke(
            app, ["demo", "--no-tokens", "--no-reward", "--readers", "2", "--seed", seed]
        )
        assert result.exit_code == 0, result.output
        return [line for line in result.output.splitlines() if not line.startswith("done in")]

    assert table("3") == table("3")
    assert table("3") != table("4")


@pytest.mark.slow
def test_demo_aligns_onto_the_smollm2_tokens() -> None:
    # Uses the default user cache: the first run on a machine converts SmolLM2 (~20 s).
    pytest.importorskip("transformers")
    result = runner.invoke(app, ["demo", "--readers", "2", "--no-reward"])
    assert result.exit_code == 0, result.output
    assert "Token features in the chat-templated conversation" in result.output
    assert "template and user tokens carry 0" in " ".join(result.output.split())
    assert "template" in result.output
    assert "' back'" in result.output


@pytest.mark.slow
def test_demo_trains_baseline_and_gazeconcat_reward_models(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["demo", "--readers", "2", "--no-tokens", "--epochs", "1", "--output-dir", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Baseline vs GazeConcat" in text
    for mode in ("baseline", "concat"):
        metrics = json.loads((tmp_path / mode / "metrics.json").read_text())
        assert metrics["completed"] is True
        assert 0.0 <= metrics["test_accuracy"] <= 1.0
        assert (tmp_path / mode / "best").is_dir()
