"""Errors that tell the user which input was wrong and what was expected.

Every reader and every public function that validates user data raises :class:`InputError`
rather than letting a deep ``KeyError`` or a polars exception escape, so that the CLI can
print one clear line instead of a traceback.
"""

from __future__ import annotations

from os import PathLike


class InputError(ValueError):
    """Bad user input: names the source, the row or field, and what was expected.

    Parameters
    ----------
    message:
        What is wrong, in plain words.
    source:
        The file (or other named input) the problem was found in (default: None).
    row:
        1-based data row number in ``source`` where the problem is, if it is about one row
        (default: None).
    field:
        The column or field name concerned (default: None).
    expected:
        What would have been accepted (default: None).

    Examples
    --------
    >>> str(InputError("time goes backwards", source="s.csv", row=12, field="time"))
    's.csv, row 12, field "time": time goes backwards'
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | PathLike[str] | None = None,
        row: int | None = None,
        field: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.message = message
        self.source = None if source is None else str(source)
        self.row = row
        self.field = field
        self.expected = expected
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.source is not None:
            where.append(self.source)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field is not None:
            where.append(f'field "{self.field}"')
        text = (", ".join(where) + ": " if where else "") + self.message
        if self.expected is not None:
            text += f" (expected {self.expected})"
        return text


class ModelUnavailableError(RuntimeError):
    """A model was asked for that is neither installed, cached, nor downloadable here."""
