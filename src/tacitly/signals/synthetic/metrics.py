"""Scores for predicted reading measures: the CMCL 2021 shared-task metric.

The shared task scored the mean absolute error (MAE) of each of the five measures on its 0–100
scale and ranked systems by the mean of the five MAEs ("overall").

Examples
--------
>>> import polars as pl
>>> gold = pl.DataFrame({"text_id": [0, 0], "word_index": [0, 1], "nFix": [10.0, 20.0]})
>>> pred = pl.DataFrame({"text_id": [0, 0], "word_index": [1, 0], "nFix": [25.0, 12.0]})
>>> mae_table(pred, gold, measures=["nFix"])
{'nFix': 3.5, 'overall': 3.5}
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from tacitly.errors import InputError
from tacitly.signals.gaze.alignment import WORD_MEASURES

__all__ = ["KEYS", "mae_table"]

KEYS: tuple[str, ...] = ("text_id", "word_index")
"""Columns that identify a word in prediction and gold tables."""


def mae_table(
    pred: pl.DataFrame,
    gold: pl.DataFrame,
    *,
    measures: Sequence[str] = WORD_MEASURES,
) -> dict[str, float]:
    """Mean absolute error per measure and their mean (the CMCL 2021 ranking metric).

    Rows are matched on ``text_id`` and ``word_index``, so their order does not matter; every
    gold word must have exactly one prediction (extra predicted words are an error too).

    Parameters
    ----------
    pred:
        Predictions with ``text_id``, ``word_index`` and the measure columns.
    gold:
        Observed values with the same columns (e.g. from ``read_cmcl``).
    measures:
        Measures to score (default: nFix, FFD, GPT, TRT, fixProp).

    Returns
    -------
    dict[str, float]
        ``{measure: MAE, ..., "overall": mean of the MAEs}``.

    Raises
    ------
    InputError
        When a column is missing, a key is duplicated, the two tables do not hold the same
        words, or a value is missing.
    """
    if not measures:
        raise InputError("no measures to score", field="measures")
    for name, table in (("predictions", pred), ("gold", gold)):
        _check_table(table, name=name, measures=measures)
    if pred.height != gold.height:
        raise InputError(
            f"{pred.height} predicted words for {gold.height} gold words",
            source="predictions",
            expected="one prediction per gold word",
        )
    joined = gold.select(*KEYS, *measures).join(
        pred.select(*KEYS, *measures), on=list(KEYS), how="left", suffix="_pred"
    )
    missing = joined.get_column(f"{measures[0]}_pred").is_null()
    if missing.any():
        row = int(missing.arg_true()[0])
        raise InputError(
            f"no prediction for text_id={joined['text_id'][row]}, "
            f"word_index={joined['word_index'][row]}",
            source="predictions",
            expected="the same (text_id, word_index) pairs as the gold table",
        )
    errors = joined.select(
        (pl.col(f"{m}_pred").cast(pl.Float64) - pl.col(m).cast(pl.Float64)).abs().mean().alias(m)
        for m in measures
    ).row(0, named=True)
    scores = {m: float(errors[m]) for m in measures}
    scores["overall"] = sum(scores.values()) / len(measures)
    return scores


def _check_table(table: pl.DataFrame, *, name: str, measures: Sequence[str]) -> None:
    for column in (*KEYS, *measures):
        if column not in table.columns:
            raise InputError("missing column", source=name, field=column)
        nulls = table.get_column(column).is_null()
        if nulls.any():
            raise InputError(
                "missing value", source=name, row=int(nulls.arg_true()[0]) + 1, field=column
            )
    if table.select(pl.struct(*KEYS).is_duplicated().any()).item():
        raise InputError(
            "a (text_id, word_index) pair occurs more than once", source=name, field="word_index"
        )
