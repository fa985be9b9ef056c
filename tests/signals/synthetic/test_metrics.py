"""The CMCL 2021 metric: MAE per measure and their mean, matched on (text_id, word_index)."""

from __future__ import annotations

import polars as pl
import pytest

from tacitly.errors import InputError
from tacitly.signals.synthetic.metrics import mae_table


def _table(values: dict[str, list[float]], order: list[int] | None = None) -> pl.DataFrame:
    table = pl.DataFrame({"text_id": [0, 0, 1], "word_index": [0, 1, 0], **values})
    return table if order is None else table[order]


def test_mae_per_measure_and_overall_by_hand() -> None:
    gold = _table({"nFix": [10.0, 20.0, 30.0], "TRT": [1.0, 2.0, 3.0]})
    pred = _table({"nFix": [13.0, 20.0, 24.0], "TRT": [1.0, 2.5, 3.0]}, order=[2, 0, 1])
    scores = mae_table(pred, gold, measures=["nFix", "TRT"])
    # nFix: (3 + 0 + 6) / 3 = 3; TRT: (0 + 0.5 + 0) / 3 = 1/6; overall: (3 + 1/6) / 2.
    assert scores == pytest.approx({"nFix": 3.0, "TRT": 1 / 6, "overall": (3 + 1 / 6) / 2})


@pytest.mark.parametrize(
    ("pred", "message"),
    [
        pytest.param(_table({"nFix": [1.0, 2.0, 3.0]})[:2], "2 predicted words", id="missing"),
        pytest.param(
            _table({"nFix": [1.0, 2.0, 3.0]}).with_columns(word_index=pl.lit(0)),
            "more than once",
            id="duplicate",
        ),
        pytest.param(
            _table({"nFix": [1.0, 2.0, 3.0]}).with_columns(text_id=pl.lit(5)),
            "more than once|no prediction",
            id="other-words",
        ),
        pytest.param(_table({"FFD": [1.0, 2.0, 3.0]}), "missing column", id="no-column"),
        pytest.param(_table({"nFix": [1.0, None, 3.0]}), "missing value", id="null"),
    ],
)
def test_mismatched_tables_raise(pred: pl.DataFrame, message: str) -> None:
    gold = _table({"nFix": [1.0, 2.0, 3.0]})
    with pytest.raises(InputError, match=message):
        mae_table(pred, gold, measures=["nFix"])
