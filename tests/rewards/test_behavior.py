"""Tests of tacitly.rewards.behavior on synthetic feature tables (no encoder needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tacitly.errors import InputError
from tacitly.rewards.behavior import (
    TUNING_GRIDS,
    BehaviorRewardConfig,
    BehaviorRewardModel,
    cross_validate,
    evaluate_predictions,
    paired_difference_ci,
    plot_feature_importance,
    preference_rows,
    reliability_table,
)
from tacitly.signals.behavior import mirror_features


def _table(n: int = 160, *, seed: int = 0) -> pl.DataFrame:
    """Gaze balance predicts the label; the mouse carries noise; 16 workers."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, size=n).astype(float)
    signal = np.where(label == 1.0, 1.0, -1.0) * 0.8 + rng.normal(size=n)
    left = np.exp(rng.normal(size=n)) * 5
    right = np.exp(rng.normal(size=n)) * 5
    return pl.DataFrame(
        {
            "query_ID": np.arange(n),
            "user_id": [f"w{i % 16}" for i in range(n)],
            "label": label,
            "gaze_share_diff": signal,
            "gaze_engaged_1": left,
            "gaze_engaged_2": right,
            "mouse_share_diff": rng.normal(size=n),
            "text_chars_diff": rng.normal(size=n),
            "user_query": ["q"] * n,
            "llm_response_1": ["a" * (10 + i) for i in range(n)],
            "llm_response_2": ["b"] * n,
        }
    )


@pytest.mark.parametrize("kind", [pytest.param(k, id=k) for k in ("rf", "lgbm", "lr")])
def test_models_learn_the_signal_and_are_side_symmetric(kind: str) -> None:
    table = _table()
    model = BehaviorRewardModel(
        BehaviorRewardConfig(model=kind, feature_set="gaze", n_estimators=60)
    ).fit(table)
    p = model.predict_proba(table)
    assert ((p > 0.5) == (table["label"].to_numpy() > 0.5)).mean() > 0.7
    swapped = model.predict_proba(mirror_features(table))
    np.testing.assert_allclose(swapped, 1.0 - p, atol=1e-9)


def test_feature_sets_choose_columns() -> None:
    model = BehaviorRewardModel(BehaviorRewardConfig(model="lr", feature_set="mouse")).fit(_table())
    assert model.feature_names == ["mouse_share_diff"]


def test_side_columns_off_keeps_differences_and_text() -> None:
    config = BehaviorRewardConfig(model="lr", feature_set="all", side_columns=False)
    model = BehaviorRewardModel(config).fit(_table())
    assert model.feature_names == ["gaze_share_diff", "mouse_share_diff", "text_chars_diff"]


def test_save_and_load_give_the_same_predictions(tmp_path: Path) -> None:
    table = _table()
    model = BehaviorRewardModel(
        BehaviorRewardConfig(model="lgbm", feature_set="behavior", n_estimators=40)
    ).fit(table)
    folder = model.save(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.joblib"]
    loaded = BehaviorRewardModel.load(folder)
    np.testing.assert_allclose(loaded.predict_proba(table), model.predict_proba(table))
    assert loaded.config == model.config and loaded.slope == model.slope


def test_calibration_slope_is_fitted_and_keeps_the_ranking() -> None:
    table = _table()
    raw = BehaviorRewardModel(
        BehaviorRewardConfig(model="lr", feature_set="gaze", calibrate=False)
    ).fit(table)
    calibrated = BehaviorRewardModel(BehaviorRewardConfig(model="lr", feature_set="gaze")).fit(
        table
    )
    assert raw.slope == 1.0 and calibrated.slope != 1.0
    p_raw, p_cal = raw.predict_proba(table), calibrated.predict_proba(table)
    np.testing.assert_array_equal(np.argsort(p_raw), np.argsort(p_cal))


def test_tuning_regularises_noise_and_frees_a_strong_signal() -> None:
    table = _table(240)
    noise = BehaviorRewardModel(
        BehaviorRewardConfig(model="lr", feature_set="mouse", tune=True)
    ).fit(table)
    strong = table.with_columns(
        gaze_share_diff=(pl.col("label") * 2.0 - 1.0) * 3.0 + pl.col("mouse_share_diff") * 0.3
    )
    free = BehaviorRewardModel(BehaviorRewardConfig(model="lr", feature_set="gaze", tune=True)).fit(
        strong
    )
    smallest = TUNING_GRIDS["lr"][0]["C"]
    # A feature unrelated to the label is best shrunk to nothing; a clean one is not.
    assert noise.params == {"C": smallest}
    assert free.params["C"] >= 0.1
    assert [row["C"] for row in free.tuning] == [c["C"] for c in TUNING_GRIDS["lr"]]
    losses = [row["log_loss"] for row in free.tuning]
    assert free.tuning[int(np.argmin(losses))]["C"] == free.params["C"]


@pytest.mark.parametrize("kind", [pytest.param(k, id=k) for k in ("rf", "lgbm")])
def test_tuning_tree_models_picks_a_candidate_and_survives_save(kind: str, tmp_path: Path) -> None:
    table = _table()
    model = BehaviorRewardModel(
        BehaviorRewardConfig(model=kind, feature_set="gaze", tune=True, n_estimators=40)
    ).fit(table)
    assert model.params in [dict(c) for c in TUNING_GRIDS[kind]]
    assert len(model.tuning) == len(TUNING_GRIDS[kind])
    loaded = BehaviorRewardModel.load(model.save(tmp_path / kind))
    assert loaded.params == model.params and loaded.tuning == model.tuning
    np.testing.assert_allclose(loaded.predict_proba(table), model.predict_proba(table))


def test_tuning_under_cross_validation_never_sees_the_test_fold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tuned: list[set[int]] = []
    scored: list[set[int]] = []
    tune, predict = BehaviorRewardModel._tune, BehaviorRewardModel.predict_proba

    def spy_tune(self: BehaviorRewardModel, labelled: pl.DataFrame, *args: object) -> object:
        tuned.append(set(labelled["query_ID"].to_list()))
        return tune(self, labelled, *args)  # type: ignore[arg-type]

    def spy_predict(self: BehaviorRewardModel, table: pl.DataFrame) -> object:
        scored.append(set(table["query_ID"].to_list()))
        return predict(self, table)

    monkeypatch.setattr(BehaviorRewardModel, "_tune", spy_tune)
    monkeypatch.setattr(BehaviorRewardModel, "predict_proba", spy_predict)
    config = BehaviorRewardConfig(model="lr", feature_set="gaze", tune=True)
    cross_validate(_table(), config, protocol="grouped", n_splits=4, seeds=(0,))
    assert len(tuned) == len(scored) == 4
    for train, test in zip(tuned, scored, strict=True):
        assert not train & test and len(train | test) == 160


def test_a_folder_saved_before_tuning_loads_untuned(tmp_path: Path) -> None:
    table = _table()
    model = BehaviorRewardModel(
        BehaviorRewardConfig(model="lr", feature_set="gaze", tune=False)
    ).fit(table)
    folder = model.save(tmp_path / "old")
    meta = json.loads((folder / "config.json").read_text())
    for key in ("params", "tuning"):
        del meta[key]
    del meta["config"]["tune"]
    (folder / "config.json").write_text(json.dumps(meta))
    loaded = BehaviorRewardModel.load(folder)
    assert loaded.config.tune is False and loaded.params == {}
    np.testing.assert_allclose(loaded.predict_proba(table), model.predict_proba(table))


def test_unlabelled_rows_are_skipped_in_training() -> None:
    table = _table().with_columns(
        pl.when(pl.col("query_ID") < 20).then(None).otherwise(pl.col("label")).alias("label")
    )
    model = BehaviorRewardModel(BehaviorRewardConfig(model="lr", feature_set="gaze")).fit(table)
    assert model.n_train == 140


def test_grouped_cross_validation_predicts_every_labelled_question() -> None:
    config = BehaviorRewardConfig(model="lr", feature_set="gaze", calibrate=False)
    run = cross_validate(_table(), config, protocol="grouped", n_splits=4, seeds=(0, 1))
    assert run.probabilities.shape == (2, 160)
    assert run.hits.mean() > 0.65


def test_worker_standardisation_keeps_symmetry() -> None:
    table = _table()
    config = BehaviorRewardConfig(model="lr", feature_set="gaze", worker_standardize=True)
    model = BehaviorRewardModel(config).fit(table)
    np.testing.assert_allclose(
        model.predict_proba(mirror_features(table)), 1.0 - model.predict_proba(table), atol=1e-9
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param({"model": "svm"}, "unknown model", id="model"),
        pytest.param({"feature_set": "eyes"}, "unknown feature set", id="features"),
    ],
)
def test_bad_settings_are_named(settings: dict[str, str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        BehaviorRewardConfig(**settings)  # type: ignore[arg-type]


def test_too_few_labels_are_refused() -> None:
    with pytest.raises(InputError, match="labelled"):
        BehaviorRewardModel().fit(_table().head(5))


def test_too_few_workers_for_grouped_folds() -> None:
    table = _table().with_columns(pl.lit("w").alias("user_id"))
    with pytest.raises(InputError, match="1 workers cannot fill 5"):
        cross_validate(table, BehaviorRewardConfig(model="lr", feature_set="gaze"))


def test_evaluation_metrics_by_hand() -> None:
    labels = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    p = np.array([0.9, 0.2, 0.4, 0.6, 0.7, 0.1])
    metrics = evaluate_predictions(labels, p, lengths=np.array([1.0, 2, 3, 4, 5, 6]))
    assert metrics["n"] == 6 and metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["brier"] == pytest.approx(np.mean((p - labels) ** 2))
    assert metrics["accuracy_by_length_tercile"] == [1.0, 0.0, 1.0]
    assert reliability_table(labels, p, n_bins=2).rows() == [
        (0.0, 0.5, 3, pytest.approx((0.2 + 0.4 + 0.1) / 3), pytest.approx(1 / 3)),
        (0.5, 1.0, 3, pytest.approx((0.9 + 0.6 + 0.7) / 3), pytest.approx(2 / 3)),
    ]


def test_paired_difference() -> None:
    diff, low, high = paired_difference_ci(
        np.array([1.0, 1.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 0.0])
    )
    assert diff == 0.5 and 0.0 <= low <= diff <= high <= 1.0


def test_preference_rows_choose_the_predicted_answer_with_confidence_weight() -> None:
    table = _table().head(3)
    rows = preference_rows(table, np.array([0.9, 0.3, 0.5]))
    assert [r["meta"]["chosen_position"] for r in rows] == [1, 2, 1]
    assert [round(r["weight"], 2) for r in rows] == [0.9, 0.7, 0.5]
    assert rows[1]["chosen"] == [{"role": "assistant", "content": "b"}]
    assert rows[0]["prompt"] == [{"role": "user", "content": "q"}]
    assert rows[0]["meta"]["human_position"] == (1 if table["label"][0] == 1.0 else 2)


def test_preference_rows_by_query_skip_missing() -> None:
    rows = preference_rows(_table().head(3), {0: 0.2})
    assert len(rows) == 1 and rows[0]["meta"]["query_ID"] == 0


def test_feature_importance_plot(tmp_path: Path) -> None:
    model = BehaviorRewardModel(
        BehaviorRewardConfig(model="rf", feature_set="behavior", n_estimators=30, calibrate=False)
    ).fit(_table())
    importance = model.feature_importance()
    assert max(importance, key=importance.__getitem__) == "gaze_share_diff"
    png = plot_feature_importance(model, tmp_path / "imp.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_blend_stacks_a_text_part_and_a_behaviour_part(tmp_path: Path) -> None:
    table = _table()
    config = BehaviorRewardConfig(model="blend", feature_set="all", n_estimators=40)
    model = BehaviorRewardModel(config).fit(table)
    assert [part.config.feature_set for part in model.parts] == ["text", "behavior"]
    assert [part.config.model for part in model.parts] == ["lr", "lgbm"]
    # The text part is noise here, so the out-of-fold stack leans on the behaviour part.
    assert abs(model.weights[1]) > abs(model.weights[0])
    p = model.predict_proba(table)
    assert ((p > 0.5) == (table["label"].to_numpy() > 0.5)).mean() > 0.7
    np.testing.assert_allclose(model.predict_proba(mirror_features(table)), 1.0 - p, atol=1e-9)
    assert set(model.feature_names) == set(model.feature_importance())
    loaded = BehaviorRewardModel.load(model.save(tmp_path / "blend"))
    np.testing.assert_allclose(loaded.predict_proba(table), p)
    assert loaded.config == config


@pytest.mark.parametrize(
    ("features", "parts"),
    [
        pytest.param("gaze", ["gaze"], id="behaviour-only"),
        pytest.param("text", ["text"], id="text-only"),
    ],
)
def test_blend_of_a_single_part_set(features: str, parts: list[str]) -> None:
    config = BehaviorRewardConfig(model="blend", feature_set=features, blend_weights="mean")
    model = BehaviorRewardModel(config).fit(_table())
    assert [part.config.feature_set for part in model.parts] == parts
    assert model.weights.shape == (1,)


def test_bad_blend_settings_are_named() -> None:
    with pytest.raises(InputError, match="unknown behavior_model"):
        BehaviorRewardConfig(model="blend", behavior_model="svm")
    with pytest.raises(InputError, match="unknown blend_weights"):
        BehaviorRewardConfig(model="blend", blend_weights="vote")
