"""How well the shipped eye-tracking predictors match real reading of texts they never saw.

Three evaluations, one JSON line each per predictor version:

* ``cmcl_valid``: MAE per measure and overall on CMCL 2021 ``valid.csv`` (4,005 words,
  200 sentences; the predictors were trained on ``train.csv``), next to the two baselines.
* ``onestop``: Pearson and Spearman r between predicted and measured per-word TRT, FFD and nFix
  on the 12 OneStop paragraphs shipped in ``scanpath-studio`` (EyeLink IA report; dwell time,
  first fixation duration and fixation count averaged over the paragraph's 2 readers, skipped
  words counted as 0).
* ``oasst_etc``: the same on the OASST-ETC word files (people reading OASST1 chat answers;
  measures averaged over about 3 readers, seconds), pooled over all 371 answers.

Usage::

    .venv/bin/python benchmarks/synthetic_gaze_accuracy.py [--versions 1 2]

Needs ``../shared/data`` (CMCL, OASST-ETC) and the ``scanpath-studio`` sample; a missing source
is reported and skipped. The predictions are deterministic (no sampling), so no seed applies.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats

from tacitly.signals.gaze import read_cmcl, read_eyelink_ia, read_oasst_etc
from tacitly.signals.gaze.alignment import WORD_MEASURES
from tacitly.signals.synthetic import GazePredictor
from tacitly.signals.synthetic.baselines import LinearBaseline, MeanBaseline
from tacitly.signals.synthetic.metrics import mae_table
from tacitly.signals.synthetic.training import predict_table

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# Our measure → the column holding the real reading of the same quantity.
ONESTOP = {"TRT": "IA_DWELL_TIME", "FFD": "IA_FIRST_FIXATION_DURATION", "nFix": "IA_FIXATION_COUNT"}
CORRELATED = ("TRT", "FFD", "nFix")


def correlations(predicted: pl.DataFrame, measured: pl.DataFrame) -> dict[str, dict[str, float]]:
    """Pearson and Spearman r per measure over all words (rows aligned one to one)."""
    result = {}
    for name in CORRELATED:
        x = predicted[name].to_numpy()
        y = measured[name].to_numpy()
        result[name] = {
            "pearson": round(float(stats.pearsonr(x, y).statistic), 4),
            "spearman": round(float(stats.spearmanr(x, y).statistic), 4),
        }
    return result


def onestop_words() -> pl.DataFrame | None:
    spec = importlib.util.find_spec("scanpath_studio")
    if spec is None or spec.origin is None:
        return None
    ia = read_eyelink_ia(Path(spec.origin).parent / "sample_data" / "ia.csv")
    # Trials are "<reader>_<paragraph>"; the same paragraph is read by both readers.
    paragraph = pl.col("trial").str.slice(pl.col("reader").str.len_chars() + 1)
    per_reader = ia.with_columns(paragraph.alias("paragraph")).select(
        "paragraph",
        "reader",
        "aoi",
        "text",
        *[
            pl.col(source).cast(pl.Float64).fill_null(0.0).alias(name)
            for name, source in ONESTOP.items()
        ],
    )
    return (
        per_reader.group_by("paragraph", "aoi", maintain_order=True)
        .agg(
            pl.col("text").first(), pl.len().alias("readers"), *[pl.col(n).mean() for n in ONESTOP]
        )
        .sort("paragraph", "aoi")
    )


def predict_texts(predictor: GazePredictor, texts: list[list[str]]) -> pl.DataFrame:
    values = predictor.predict_words(texts)
    return pl.DataFrame(
        np.concatenate(values).astype(np.float64), schema=list(WORD_MEASURES), orient="row"
    )


def evaluate_cmcl(predictors: dict[int, GazePredictor]) -> None:
    folder = SHARED / "cmcl2021"
    if not folder.is_dir():
        print(f"skipped cmcl_valid: {folder} not found", file=sys.stderr)
        return
    train, valid = read_cmcl(folder / "train.csv"), read_cmcl(folder / "valid.csv")
    models = {
        "baseline: training mean": MeanBaseline().fit(train),
        "baseline: linear (length, log frequency)": LinearBaseline().fit(train),
    }
    for version, predictor in predictors.items():
        models[f"version {version}"] = predictor.model  # type: ignore[assignment]
    for name, model in models.items():
        scores = mae_table(predict_table(model, valid), valid)
        line = {"eval": "cmcl_valid", "model": name, "overall_mae": round(scores["overall"], 4)}
        line |= {m: round(scores[m], 4) for m in WORD_MEASURES}
        line |= {"n_words": valid.height, "n_texts": valid["text_id"].n_unique()}
        print(json.dumps(line))


def evaluate_onestop(predictors: dict[int, GazePredictor]) -> None:
    words = onestop_words()
    if words is None:
        print("skipped onestop: scanpath-studio is not installed", file=sys.stderr)
        return
    texts = [
        group["text"].to_list() for _, group in words.group_by("paragraph", maintain_order=True)
    ]
    for version, predictor in predictors.items():
        predicted = predict_texts(predictor, texts)
        line = {"eval": "onestop", "model": f"version {version}"}
        line |= correlations(predicted, words)
        line |= {"n_words": words.height, "n_texts": len(texts), "readers_per_text": 2}
        print(json.dumps(line))


def evaluate_oasst_etc(predictors: dict[int, GazePredictor]) -> None:
    folder = SHARED / "oasst_etc" / "gaze_features_real"
    if not folder.is_dir():
        print(f"skipped oasst_etc: {folder} not found", file=sys.stderr)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 5 empty word slots with fixations are dropped
        words = read_oasst_etc(folder)
    groups = words.group_by("set", "trial", maintain_order=True)
    texts = [group["word"].to_list() for _, group in groups]
    for version, predictor in predictors.items():
        predicted = predict_texts(predictor, texts)
        line = {"eval": "oasst_etc", "model": f"version {version}"}
        line |= correlations(predicted, words)
        line |= {"n_words": words.height, "n_texts": len(texts)}
        print(json.dumps(line))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    args = parser.parse_args()
    started = time.perf_counter()
    # Each predictor is loaded once (version 2 loads three encoders) and serves all three evals.
    predictors = {version: GazePredictor(version, cache=None) for version in args.versions}
    evaluate_cmcl(predictors)
    evaluate_onestop(predictors)
    evaluate_oasst_etc(predictors)
    print(f"done in {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
