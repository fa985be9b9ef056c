"""Reading and writing the CLI's tables (CSV, TSV or Parquet, chosen by the file suffix)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

from tacitly.errors import InputError

_TEXT_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
_PARQUET = (".parquet", ".pq")


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
    """Print the first rows of ``table`` as a rich table, floats rounded to ``digits``."""
    shown = Table(title=title, title_justify="left", header_style="bold")
    for column in table.columns:
        numeric = table.schema[column].is_numeric()
        shown.add_column(column, justify="right" if numeric else "left")
    for row in table.head(max_rows).iter_rows():
        shown.add_row(*(_cell(value, digits) for value in row))
    console.print(shown)
    if table.height > max_rows:
        console.print(f"… {table.height - max_rows:,} more rows")


def _cell(value: object, digits: int) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)
