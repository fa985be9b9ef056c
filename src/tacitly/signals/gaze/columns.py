"""Column-name arguments shared by the gaze functions."""

from __future__ import annotations

from collections.abc import Sequence

from tacitly.errors import InputError


def group_columns(by: str | Sequence[str], *, field: str = "by") -> tuple[str, ...]:
    """The grouping columns as a tuple; a single name may be given as a plain string.

    Parameters
    ----------
    by:
        One column name or a sequence of names.
    field:
        The argument's name, for the error message (default: "by").

    Returns
    -------
    tuple[str, ...]
        The names, in order.

    Raises
    ------
    InputError
        When a name is not a string.

    Examples
    --------
    >>> group_columns("trial")
    ('trial',)
    >>> group_columns(["reader", "trial"])
    ('reader', 'trial')
    """
    names = (by,) if isinstance(by, str) else tuple(by)
    for name in names:
        if not isinstance(name, str):
            raise InputError(
                f"column names must be strings, got {name!r}", field=field, expected="str"
            )
    return names
