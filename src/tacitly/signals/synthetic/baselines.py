"""The two reference points every eye-tracking predictor is reported against.

* :class:`MeanBaseline` predicts each measure's training mean for every word;
* :class:`LinearBaseline` fits one least-squares line per measure on word length and log
  frequency (Zipf scale), the two strongest single predictors of reading times.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from tacitly.signals.gaze.alignment import WORD_MEASURES
from tacitly.signals.synthetic.features import check_texts, word_features

__all__ = ["LinearBaseline", "MeanBaseline"]

_LINEAR_FEATURES = ("length", "log_freq")


def _prediction_table(
    texts: Sequence[Sequence[str]], values: dict[str, np.ndarray]
) -> pl.DataFrame:
    words = check_texts(texts)
    keys = pl.DataFrame(
        {
            "text_id": [i for i, text in enumerate(words) for _ in text],
            "word_index": [j for text in words for j in range(len(text))],
            "word": [word for text in words for word in text],
        },
        schema={"text_id": pl.Int64, "word_index": pl.Int64, "word": pl.String},
    )
    return keys.with_columns(
        **{name: pl.Series(np.clip(column, 0.0, 100.0)) for name, column in values.items()}
    )


class MeanBaseline:
    """Predict the training mean of each measure for every word.

    Examples
    --------
    >>> table = pl.DataFrame({"text_id": [0, 0], "word_index": [0, 1], "word": ["a", "b"],
    ...     "nFix": [1.0, 3.0], "FFD": [2.0, 2.0], "GPT": [1.0, 1.0], "TRT": [4.0, 6.0],
    ...     "fixProp": [50.0, 70.0]})
    >>> MeanBaseline().fit(table).predict([["x"]])["TRT"].to_list()
    [5.0]
    """

    def __init__(self, measures: Sequence[str] = WORD_MEASURES) -> None:
        self.measures = tuple(measures)
        self.means: dict[str, float] = {}

    def fit(self, train: pl.DataFrame) -> MeanBaseline:
        """Remember the mean of each measure in ``train`` (a CMCL-style word table)."""
        self.means = {name: float(train[name].mean()) for name in self.measures}  # type: ignore[arg-type]
        return self

    def predict(self, texts: Sequence[Sequence[str]]) -> pl.DataFrame:
        """The training means, one row per word of ``texts``."""
        n_words = sum(len(text) for text in check_texts(texts))
        return _prediction_table(
            texts, {name: np.full(n_words, value) for name, value in self.means.items()}
        )


class LinearBaseline:
    """Least squares on word length and log frequency, one line per measure.

    Examples
    --------
    >>> table = pl.DataFrame({"text_id": [0, 0, 0], "word_index": [0, 1, 2],
    ...     "word": ["a", "house", "extraordinarily"], "nFix": [5.0, 15.0, 40.0],
    ...     "FFD": [2.0, 3.0, 4.0], "GPT": [3.0, 5.0, 9.0], "TRT": [2.0, 5.0, 12.0],
    ...     "fixProp": [30.0, 70.0, 100.0]})
    >>> model = LinearBaseline().fit(table)
    >>> float(model.predict([["extraordinarily"]])["TRT"][0]) > 10
    True
    """

    def __init__(self, measures: Sequence[str] = WORD_MEASURES) -> None:
        self.measures = tuple(measures)
        self.coefficients: dict[str, np.ndarray] = {}

    @staticmethod
    def _design(texts: Sequence[Sequence[str]]) -> np.ndarray:
        features = word_features(texts, neighbours=0).select(_LINEAR_FEATURES)
        columns = features.cast(pl.Float64).to_numpy()
        return np.column_stack([np.ones(len(columns)), columns])

    def fit(self, train: pl.DataFrame) -> LinearBaseline:
        """Fit on a CMCL-style word table (``text_id, word_index, word`` and the measures)."""
        ordered = train.sort("text_id", "word_index")
        texts = [
            group["word"].to_list() for _, group in ordered.group_by("text_id", maintain_order=True)
        ]
        design = self._design(texts)
        for name in self.measures:
            target = ordered[name].cast(pl.Float64).to_numpy()
            self.coefficients[name], *_ = np.linalg.lstsq(design, target, rcond=None)
        return self

    def predict(self, texts: Sequence[Sequence[str]]) -> pl.DataFrame:
        """Predicted measures, one row per word of ``texts``, clipped to [0, 100]."""
        design = self._design(texts)
        return _prediction_table(
            texts, {name: design @ weights for name, weights in self.coefficients.items()}
        )
