"""Version 1 of synthetic gaze: gradient boosting on psycholinguistic word features.

:class:`PsycholinguisticGazeModel` predicts the five CMCL 2021 reading measures (``nFix``,
``FFD``, ``GPT``, ``TRT``, ``fixProp``, on the task's 0–100 scale) of every word of any text
from the features of :func:`tacitly.signals.synthetic.features.word_features`: word length,
frequency, position, optionally surprisal under a causal LM, and the same for the neighbouring
words. One LightGBM regressor per measure.

Policies
--------
Early stopping
    With ``valid=`` the number of boosting rounds of each measure is chosen on ``valid``
    (which then no longer gives an unbiased score). Without it, a ``holdout`` share of the
    training *texts* (drawn with ``seed``) picks the number of rounds, and the final model is
    refitted on all training texts with that many rounds.
Predictions
    Clipped to [0, 100], the range of the task's scale.
Default features (version 1)
    No LM: length, frequency, position and neighbours only. On CMCL 2021 (train.csv →
    valid.csv, seed 42) it scores an overall MAE of 3.82 at about 11,000 words/s on one CPU
    thread. Adding SmolLM2-135M surprisal (``lm="SmolLM2-135M-Instruct"``) lowers the MAE to
    about 3.75–3.77 but runs at only 30–150 words/s on two CPU cores, far below the 1,000
    words/s target; early exit after 4 or 10 layers (``lm_layers``) is faster but gains only
    0.01–0.02, within the spread between seeds.
Determinism
    LightGBM runs with ``deterministic=True``, ``force_row_wise=True`` and a fixed thread
    count; every LightGBM seed is derived from ``seed``. Same data, seed and thread count give
    the same model.

Examples
--------
>>> model = PsycholinguisticGazeModel(PsycholinguisticOptions(lm=None))
>>> table = pl.DataFrame({
...     "text_id": [0] * 6, "word_index": list(range(6)),
...     "word": ["The", "old", "lighthouse", "keeper", "slept", "soundly."],
...     "nFix": [8.0, 12, 30, 20, 15, 25], "FFD": [2.0, 3, 4, 3, 3, 4],
...     "GPT": [3.0, 5, 9, 6, 5, 12], "TRT": [3.0, 4, 9, 6, 5, 7],
...     "fixProp": [40.0, 60, 95, 80, 70, 90]})
>>> _ = model.fit(table, params={"min_data_in_leaf": 1}, num_boost_round=5)
>>> model.predict([["A", "lighthouse."]]).columns
['text_id', 'word_index', 'word', 'nFix', 'FFD', 'GPT', 'TRT', 'fixProp']
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import polars as pl

from tacitly.errors import InputError
from tacitly.signals.gaze.alignment import WORD_MEASURES
from tacitly.signals.gaze.readers import cmcl_texts
from tacitly.signals.synthetic.features import (
    SurprisalScorer,
    check_texts,
    feature_columns,
    word_features,
)

__all__ = [
    "DEFAULT_PARAMS",
    "FORMAT",
    "VERSION",
    "PsycholinguisticGazeModel",
    "PsycholinguisticOptions",
]

FORMAT = "tacitly-psycholinguistic-gaze"
"""The ``format`` field of a saved model's ``config.json``."""

VERSION = 1
"""Version of the saved-model layout and of the feature set."""

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "regression_l1",
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
}
"""LightGBM parameters used unless ``fit(params=...)`` overrides them."""

_CONFIG = "config.json"
_SCALE = (0.0, 100.0)


@dataclass(frozen=True)
class PsycholinguisticOptions:
    """Which features the model uses.

    Attributes
    ----------
    lm:
        The causal LM whose surprisal is a feature: ``"SmolLM2-135M-Instruct"`` (the embedded
        default), another name or folder for :func:`tacitly.backbones.load_causal_lm`, or None
        for no LM features at all.
    lm_layers:
        Run only the first ``lm_layers`` decoder layers (early exit); None runs all of them.
    neighbours:
        Words on each side whose core features are repeated.
    lang:
        wordfreq language code for word frequencies.
    """

    lm: str | None = field(
        default=None, metadata={"help": "LM for surprisal features; None: no LM features"}
    )
    lm_layers: int | None = field(
        default=None, metadata={"help": "first k decoder layers only (early exit); None: all"}
    )
    neighbours: int = field(default=2, metadata={"help": "neighbouring words on each side"})
    lang: str = field(default="en", metadata={"help": "wordfreq language code"})


class PsycholinguisticGazeModel:
    """Predict CMCL reading measures per word with one LightGBM regressor per measure.

    Parameters
    ----------
    options:
        Feature options (default: ``PsycholinguisticOptions()``: no LM, 2 neighbours, English).
    scorer:
        Surprisal scorer to use instead of loading ``options.lm`` when first needed
        (default: None).
    num_threads:
        LightGBM threads, fixed for determinism (default: 1: on a busy machine, OpenMP threads
        that spin-wait for each other made 2 threads ~1000 times slower on small data).
    measures:
        Measures to predict (default: nFix, FFD, GPT, TRT, fixProp).

    Examples
    --------
    >>> PsycholinguisticGazeModel().measures
    ('nFix', 'FFD', 'GPT', 'TRT', 'fixProp')
    """

    def __init__(
        self,
        options: PsycholinguisticOptions | None = None,
        *,
        scorer: SurprisalScorer | None = None,
        num_threads: int = 1,
        measures: Sequence[str] = WORD_MEASURES,
    ) -> None:
        self.options = options if options is not None else PsycholinguisticOptions()
        self.num_threads = num_threads
        self.measures = tuple(measures)
        self.boosters: dict[str, lgb.Booster] = {}
        self.features: list[str] = []
        self.training: dict[str, Any] = {}
        self._scorer = scorer

    # ----------------------------------------------------------------------------------------
    # features

    @property
    def scorer(self) -> SurprisalScorer | None:
        """The surprisal scorer, loaded on first use; None when the options use no LM."""
        if self.options.lm is None:
            return None
        if self._scorer is None:
            self._scorer = _load_scorer(self.options)
        return self._scorer

    def word_features(
        self, texts: Sequence[Sequence[str]], *, text_ids: Sequence[int] | None = None
    ) -> pl.DataFrame:
        """The feature table of ``texts`` under this model's options."""
        return word_features(
            texts,
            surprisal=self.scorer,
            neighbours=self.options.neighbours,
            text_ids=text_ids,
            lang=self.options.lang,
        )

    # ----------------------------------------------------------------------------------------
    # training

    def fit(
        self,
        train: pl.DataFrame,
        *,
        valid: pl.DataFrame | None = None,
        seed: int = 42,
        params: Mapping[str, Any] | None = None,
        num_boost_round: int = 3000,
        early_stopping_rounds: int = 100,
        holdout: float = 0.1,
        description: str | None = None,
    ) -> Self:
        """Train one regressor per measure on a CMCL-style word table.

        Parameters
        ----------
        train:
            ``text_id``, ``word_index``, ``word`` and the measures (e.g. ``read_cmcl(...)``).
        valid:
            A table like ``train`` for early stopping (default: None, a holdout of ``train``).
        seed:
            Seed of the holdout draw and of LightGBM (default: 42).
        params:
            LightGBM parameters overriding :data:`DEFAULT_PARAMS` (default: None).
        num_boost_round:
            Most boosting rounds (default: 3000).
        early_stopping_rounds:
            Stop after this many rounds without improvement; 0 trains ``num_boost_round``
            rounds without any stopping (default: 100).
        holdout:
            Share of training texts that picks the number of rounds when ``valid`` is None
            (default: 0.1).
        description:
            What the training data was, stored in ``config.json`` (default: None, a count of
            words and texts).

        Returns
        -------
        PsycholinguisticGazeModel
            ``self``, fitted.

        Raises
        ------
        InputError
            When a table misses a column or has missing or non-finite measures.
        """
        train_x, train_y = self._design(train, source="train")
        settings = self._params(seed, params)
        if valid is not None:
            valid_x, valid_y = self._design(valid, source="valid")
            rounds = self._fit_with_stopping(
                train_x, train_y, valid_x, valid_y, settings, num_boost_round, early_stopping_rounds
            )
        else:
            rounds = self._fit_with_holdout(
                train, train_x, train_y, settings, seed=seed, holdout=holdout,
                num_boost_round=num_boost_round, early_stopping_rounds=early_stopping_rounds,
            )  # fmt: skip
        self.training = {
            "data": description or _describe_table(train),
            "words": train.height,
            "texts": train.get_column("text_id").n_unique(),
            "seed": seed,
            "params": settings,
            "rounds": rounds,
            "early_stopping": "valid" if valid is not None else f"holdout {holdout:g} of texts",
        }
        return self

    def _design(self, table: pl.DataFrame, *, source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        _check_measures(table, self.measures, source=source)
        texts = cmcl_texts(table)
        features = self.word_features([w for _, w in texts], text_ids=[i for i, _ in texts])
        self.features = feature_columns(features)
        gold = features.select("text_id", "word_index").join(
            table.select("text_id", "word_index", *self.measures),
            on=["text_id", "word_index"],
            how="left",
            maintain_order="left",
        )
        return features, gold

    def _params(self, seed: int, params: Mapping[str, Any] | None) -> dict[str, Any]:
        return {
            **DEFAULT_PARAMS,
            **(params or {}),
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.num_threads,
            "verbosity": -1,
        }

    def _fit_with_stopping(
        self,
        train_x: pl.DataFrame,
        train_y: pl.DataFrame,
        valid_x: pl.DataFrame,
        valid_y: pl.DataFrame,
        settings: dict[str, Any],
        num_boost_round: int,
        early_stopping_rounds: int,
    ) -> dict[str, int]:
        rounds = {}
        for measure in self.measures:
            booster = self._train_one(
                train_x, train_y[measure], settings, num_boost_round,
                valid=(valid_x, valid_y[measure]), early_stopping_rounds=early_stopping_rounds,
            )  # fmt: skip
            rounds[measure] = booster.best_iteration or booster.current_iteration()
            self.boosters[measure] = booster
        return rounds

    def _fit_with_holdout(
        self,
        train: pl.DataFrame,
        train_x: pl.DataFrame,
        train_y: pl.DataFrame,
        settings: dict[str, Any],
        *,
        seed: int,
        holdout: float,
        num_boost_round: int,
        early_stopping_rounds: int,
    ) -> dict[str, int]:
        held = _holdout_mask(train_x.get_column("text_id"), share=holdout, seed=seed)
        rounds = {}
        for measure in self.measures:
            count = num_boost_round
            if early_stopping_rounds > 0 and held.any() and not held.all():
                probe = self._train_one(
                    train_x.filter(~held), train_y[measure].filter(~held), settings,
                    num_boost_round, valid=(train_x.filter(held), train_y[measure].filter(held)),
                    early_stopping_rounds=early_stopping_rounds,
                )  # fmt: skip
                count = probe.best_iteration or probe.current_iteration()
            self.boosters[measure] = self._train_one(
                train_x, train_y[measure], settings, count, valid=None, early_stopping_rounds=0
            )
            rounds[measure] = count
        return rounds

    def _train_one(
        self,
        x: pl.DataFrame,
        y: pl.Series,
        settings: dict[str, Any],
        num_boost_round: int,
        *,
        valid: tuple[pl.DataFrame, pl.Series] | None,
        early_stopping_rounds: int,
    ) -> lgb.Booster:
        data = lgb.Dataset(
            self._matrix(x), label=y.to_numpy(), feature_name=self.features, free_raw_data=False
        )
        valid_sets: list[lgb.Dataset] = []
        callbacks: list[Callable[..., Any]] = []
        if valid is not None:
            valid_sets = [
                lgb.Dataset(self._matrix(valid[0]), label=valid[1].to_numpy(), reference=data)
            ]
            if early_stopping_rounds > 0:
                callbacks = [lgb.early_stopping(early_stopping_rounds, verbose=False)]
        return lgb.train(
            {**settings, "metric": "l1"},
            data,
            num_boost_round=num_boost_round,
            valid_sets=valid_sets,
            callbacks=callbacks,
        )

    def _matrix(self, features: pl.DataFrame) -> npt.NDArray[np.float64]:
        # Nulls (neighbours beyond the text) become NaN, which LightGBM treats as missing.
        return (
            features.select(pl.col(self.features).cast(pl.Float64))
            .to_numpy()
            .astype(np.float64, copy=False)
        )

    # ----------------------------------------------------------------------------------------
    # prediction

    def predict(
        self, texts: Sequence[Sequence[str]], *, text_ids: Sequence[int] | None = None
    ) -> pl.DataFrame:
        """Predicted reading measures of every word of every text.

        Parameters
        ----------
        texts:
            One sequence of words per text (split at whitespace, punctuation attached).
        text_ids:
            Identifier of each text (default: None, i.e. 0, 1, 2, ...).

        Returns
        -------
        pl.DataFrame
            ``text_id``, ``word_index``, ``word`` and one Float64 column per measure, in
            [0, 100].

        Raises
        ------
        InputError
            On texts that are not lists of non-empty words; RuntimeError when not fitted.
        """
        if not self.boosters:
            raise RuntimeError("the model is not fitted: call fit() or load() first")
        features = self.word_features(check_texts(texts), text_ids=text_ids)
        matrix = self._matrix(features)
        return features.select("text_id", "word_index", "word").with_columns(
            pl.Series(measure, self._predict_one(measure, matrix), dtype=pl.Float64)
            for measure in self.measures
        )

    def _predict_one(self, measure: str, matrix: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
        raw = self.boosters[measure].predict(matrix, num_threads=self.num_threads)
        return np.clip(np.asarray(raw, dtype=np.float64), *_SCALE)

    # ----------------------------------------------------------------------------------------
    # persistence

    def save(self, folder: str | PathLike[str]) -> Path:
        """Write ``<measure>.txt`` (LightGBM text models) and ``config.json`` into ``folder``.

        Returns
        -------
        Path
            The folder.
        """
        if not self.boosters:
            raise RuntimeError("the model is not fitted: nothing to save")
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        for measure, booster in self.boosters.items():
            booster.save_model(str(target / f"{measure}.txt"))
        scorer = self._scorer
        config = {
            "format": FORMAT,
            "version": VERSION,
            "measures": list(self.measures),
            "features": self.features,
            "options": dataclasses.asdict(self.options),
            "lm": scorer.describe() if scorer is not None and self.options.lm else None,
            "num_threads": self.num_threads,
            "scale": list(_SCALE),
            "training": self.training,
            "packages": _package_versions(),
        }
        (target / _CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return target

    @classmethod
    def load(
        cls, folder: str | PathLike[str], *, scorer: SurprisalScorer | None = None
    ) -> PsycholinguisticGazeModel:
        """Read a model written by :meth:`save`.

        Parameters
        ----------
        folder:
            The folder with ``config.json`` and the LightGBM model files.
        scorer:
            Surprisal scorer to use instead of loading the configured LM (default: None).

        Raises
        ------
        InputError
            When the folder is not a saved model of this format and version, or a file is
            missing or does not match the configuration.
        """
        source = Path(folder)
        config = _read_config(source / _CONFIG)
        model = cls(
            PsycholinguisticOptions(**config["options"]),
            scorer=scorer,
            num_threads=int(config.get("num_threads", 1)),
            measures=config["measures"],
        )
        model.features = list(config["features"])
        model.training = dict(config.get("training") or {})
        for measure in model.measures:
            model.boosters[measure] = _read_booster(source / f"{measure}.txt", model.features)
        return model


# --------------------------------------------------------------------------------------------
# helpers


def _load_scorer(options: PsycholinguisticOptions) -> SurprisalScorer:
    from tacitly.backbones import DEFAULT_LM, load_causal_lm

    if options.lm == DEFAULT_LM:
        return SurprisalScorer.default(layers=options.lm_layers)
    model, tokenizer = load_causal_lm(options.lm)
    return SurprisalScorer(model, tokenizer, layers=options.lm_layers, name=options.lm)


def _check_measures(table: pl.DataFrame, measures: Sequence[str], *, source: str) -> None:
    for column in ("text_id", "word_index", "word", *measures):
        if column not in table.columns:
            raise InputError("missing column", source=source, field=column)
    if table.height == 0:
        raise InputError("the table has no words", source=source)
    for measure in measures:
        values = table.get_column(measure).cast(pl.Float64)
        bad = values.is_null() | ~values.is_finite()
        if bad.any():
            raise InputError(
                "missing or non-finite value",
                source=source,
                row=int(bad.arg_true()[0]) + 1,
                field=measure,
            )


def _holdout_mask(text_ids: pl.Series, *, share: float, seed: int) -> pl.Series:
    if not 0.0 <= share < 1.0:
        raise InputError(f"holdout={share}", field="holdout", expected="0 <= holdout < 1")
    distinct = np.sort(text_ids.unique().to_numpy())
    count = round(share * len(distinct))
    chosen = np.random.default_rng(seed).choice(distinct, size=count, replace=False)
    return text_ids.is_in(chosen.tolist())


def _package_versions() -> dict[str, str]:
    """Versions that the features and models depend on (wordfreq data change the features)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("tacitly", "lightgbm", "wordfreq"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "unknown"
    return found


def _describe_table(table: pl.DataFrame) -> str:
    return f"{table.height} words in {table.get_column('text_id').n_unique()} texts"


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("no saved model here (config.json is missing)", source=path) from None
    except (OSError, ValueError) as error:
        raise InputError(f"config.json cannot be read: {error}", source=path) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise InputError("not a saved psycholinguistic gaze model", source=path, field="format")
    if config.get("version") != VERSION:
        raise InputError(
            f"saved with version {config.get('version')}",
            source=path,
            field="version",
            expected=f"version {VERSION}",
        )
    return config


def _read_booster(path: Path, features: list[str]) -> lgb.Booster:
    if not path.is_file():
        raise InputError("model file is missing", source=path)
    try:
        booster = lgb.Booster(model_file=str(path))
    except lgb.basic.LightGBMError as error:
        raise InputError(f"not a LightGBM model: {error}", source=path) from None
    if booster.feature_name() != features:
        raise InputError(
            "the model's features differ from config.json", source=path, field="features"
        )
    return booster
