"""Reading and writing the CLI's tables (CSV, TSV or Parquet, chosen by the file suffix)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table

from tacitly.errors import InputError

_TEXT_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
_PARQUET = (".parquet", ".pq")
_SQUEEZED = 8
console = Console()


def read_table(path: Path) -> pl.DataFrame:
    """Read a table the CLI was given, with a clear error for a missing or unreadable file."""
    if not path.is_file():
        raise InputError("file not found", source=path, expected="an existing CSV/TSV/Parquet file")
    suffix = path.suffix.lower()
    try:
        if suffix in _PARQUET:
            return pl.read_parquet(path)
        if suffix in _TEXT_SEPARATORS:
            return pl.read_csv(path, separator=_TEXT_SEPARATORS[suffix], infer_schema_length=10000)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise InputError(f"could not be read as a table: {error}", source=path) from error
    raise InputError(
        f"unknown file type {suffix!r}", source=path, expected=".csv, .tsv, .txt or .parquet"
    )


def write_table(table: pl.DataFrame, path: Path) -> None:
    """Write ``table`` to ``path`` in the format its suffix names."""
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in _PARQUET:
        table.write_parquet(path)
    elif suffix in _TEXT_SEPARATORS:
        table.write_csv(path, separator=_TEXT_SEPARATORS[suffix])
    else:
        raise InputError(
            f"unknown output type {suffix!r}", source=path, expected=".csv, .tsv or .parquet"
        )


def print_table(
    console: Console, table: pl.DataFrame, *, title: str, max_rows: int = 20, digits: int = 1
) -> None:
    """Print the first rows of ``table`` as a rich table, floats rounded to ``digits``.

    Only the leading columns that fit the console's width are shown, and the others are named
    below the table: squeezing a wide table (the 18 reading measures) into a terminal would cut
    every header and value down to "…".
    """
    cells = [[_cell(value, digits) for value in row] for row in table.head(max_rows).iter_rows()]
    fitting = _columns_that_fit(table.columns, cells, width=console.width)
    shown = Table(title=title, title_justify="left", header_style="bold")
    for column in table.columns[:fitting]:
        numeric = table.schema[column].is_numeric()
        shown.add_column(column, justify="right" if numeric else "left")
    for row in cells:
        shown.add_row(*row[:fitting])
    console.print(shown)
    if table.height > max_rows:
        console.print(f"… {table.height - max_rows:,} more rows")
    if fitting < table.width:
        hidden = ", ".join(table.columns[fitting:])
        console.print(f"… {table.width - fitting} more columns (write them with -o): {hidden}")


def _columns_that_fit(names: list[str], cells: list[list[str]], *, width: int) -> int:
    """How many leading columns fit in ``width`` characters.

    Columns count at their natural width but at most ``_SQUEEZED`` characters: rich shortens
    long headers and texts to make them fit, which keeps them recognisable.
    """
    used = 1  # the table's left border
    for index, name in enumerate(names):
        natural = max([len(name), *(len(row[index]) for row in cells)])
        used += min(natural, _SQUEEZED) + 3  # one space of padding either side and a border
        if used > width:
            return max(1, index)
    return len(names)


def _cell(value: object, digits: int) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_accuracy_report(report: Mapping[str, Any], *, title: str) -> None:
    """Print :func:`tacitly.evaluate.accuracy_report`'s output: subsets, then overall."""
    table = Table(title=f"pairwise accuracy · {title}", title_justify="left", header_style="bold")
    table.add_column("subset")
    table.add_column("n", justify="right")
    table.add_column("accuracy", justify="right")
    for name, accuracy in report["subsets"].items():
        table.add_row(name, f"{report['subset_n'][name]:,}", f"{accuracy:.3f}")
    lower, upper = report["ci95"]
    table.add_section()
    table.add_row(
        "[bold]overall[/]",
        f"{report['n']:,}",
        f"{report['accuracy']:.3f} [{lower:.3f}, {upper:.3f}]",
    )
    console.print(table)
    console.print("a tie counts as wrong (RewardBench's rule)", highlight=False)
