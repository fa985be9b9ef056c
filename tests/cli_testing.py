"""Running a Typer app in-process in CLI tests: calls that must succeed or stop with an InputError.

Importable from every test folder because pyproject.toml sets ``pythonpath = ["tests"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer
from click.testing import Result
from typer.testing import CliRunner

from tacitly.errors import InputError


class CliCaller:
    """Runs ``app`` with ``prefix`` followed by the given arguments (each passed through ``str``).

    Parameters
    ----------
    app
        The Typer application to run.
    runner
        The runner, e.g. with a terminal width in its ``env`` (default: a plain ``CliRunner()``).
    prefix
        Arguments put before every call's own, e.g. a sub-command name (default: none).
    """

    def __init__(
        self, app: typer.Typer, *, runner: CliRunner | None = None, prefix: Sequence[str] = ()
    ) -> None:
        self.app = app
        self.runner = runner if runner is not None else CliRunner()
        self.prefix = list(prefix)

    def _run(self, args: Sequence[str | Path]) -> Result:
        return self.runner.invoke(self.app, [*self.prefix, *(str(arg) for arg in args)])

    def result(self, *args: str | Path) -> Result:
        """Run with ``args``; it must succeed. A Python exception is re-raised as it was."""
        result = self._run(args)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == 0, result.output
        return result

    def output(self, *args: str | Path) -> str:
        """Run with ``args``; it must succeed. Returns what it printed."""
        return self.result(*args).output

    def input_error(self, *args: str | Path) -> InputError:
        """Run with ``args``; it must stop with an InputError, which is returned."""
        result = self._run(args)
        assert isinstance(result.exception, InputError), result.output
        return result.exception
