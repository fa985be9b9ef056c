"""The ``tacitly`` command: parse arguments, call the library, print results.

Nothing in the library imports this package.
"""

from __future__ import annotations

import sys

from rich.console import Console

from tacitly.cli.app import app
from tacitly.errors import InputError, ModelUnavailableError

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the console script; turns input errors into one clear line (exit 2)."""
    try:
        app()
    except (InputError, ModelUnavailableError) as error:
        Console(stderr=True).print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
