"""Implicit-behaviour reward (IFllm): predict which of two answers a person preferred from how
their gaze and mouse moved over them.

Inputs are feature tables from :func:`tacitly.signals.behavior.build_feature_table` (one row per
side-by-side question; ``label`` 1.0 when the left answer was preferred). A model outputs the
calibrated probability that the left answer is preferred.

Design decisions
----------------
Side symmetry (``mirror=True``).
    Every training question is also shown to the model with its answers swapped
    (:func:`~tacitly.signals.behavior.mirror_features`: ``_1``↔``_2``, ``_diff`` negated,
    label flipped), and a prediction averages ``p(x)`` and ``1 - p(mirror(x))``. Swapping the
    answers therefore exactly flips the prediction, and a worker's habit of preferring one
    side cannot be learned as a constant.
Text baseline.
    Lengths (characters, words, lines, their log ratios, the question's length) plus MiniLM
    (all-MiniLM-L6-v2, mean-pooled, unit norm) features: the cosine of each answer with the
    question, their difference, the cosine between the answers, and the first
    ``n_components`` principal components of the difference of the answers' embeddings (the
    PCA is fitted on the training rows only). Embeddings are cached on disk per text
    (``$TACITLY_CACHE/behavior/minilm/``).
Calibration (``calibrate=True``).
    A side-symmetric Platt scaling ``p = sigmoid(a · logit(p_raw))`` whose single slope ``a`` is
    fitted on out-of-fold predictions of the training rows (worker-grouped folds inside the
    training set), so the test rows never touch it. It is monotone, so accuracy and AUC do not
    change; Brier score and the reliability table do.
Tuning (``tune=True``, the default).
    The regularisation (LR: ``C``; random forest: leaf size; LightGBM: leaves and leaf size) is
    chosen from :data:`TUNING_GRIDS` by the log loss of out-of-fold predictions from
    worker-grouped folds inside the training rows, so under :func:`cross_validate` it is nested
    and the test fold never takes part. The winner's out-of-fold predictions also fit the
    calibration slope. The choice and every candidate's loss are kept in ``params`` and
    ``tuning`` and saved with the model.
Per-worker standardisation (``worker_standardize``, off by default).
    Behaviour features can be rescaled per worker from that worker's own rows (features only,
    never labels): side measures and symmetric measures are centred and scaled by the
    worker's mean and deviation, ``_diff`` measures only scaled (so that they stay
    antisymmetric). This uses a test worker's unlabeled behaviour, never anyone's
    preferences; it is reported as its own row.
Blend (``model="blend"``).
    A text part (``text_model``, default LR on the text features) and a behaviour part
    (``behavior_model``, default LightGBM on the set's behaviour features) are combined as
    ``sigmoid(w_text · logit p_text + w_behaviour · logit p_behaviour)``. The weights are a
    no-intercept logistic regression (so the blend stays side-symmetric) fitted on the parts'
    out-of-fold logits from worker-grouped folds inside the training rows (nested: an outer
    test fold never touches them); ``blend_weights="mean"`` instead gives both parts one shared
    weight. With ``tune`` each part also tunes itself inside those folds, which is honest but
    slow (about 7 minutes for one worker-grouped 5-fold run with 3 seeds on 2 cores). The
    stack is itself a calibration, so ``calibrate`` does not apply. Feature sets
    without text (or without behaviour) give a one-part blend: that part with a fitted slope.
    On the shared IFllm subset (544 questions, 44 workers; grouped 5-fold, seeds 0-2) it was
    not better than tuned LightGBM on all features or LR on text alone (see
    ``benchmarks/behavior_accuracy.py`` and ``docs/behavior.md``), because the behaviour
    logits correlate 0.45-0.6 with the text logits: much of where people look restates how
    long the answers are.
Side columns (``side_columns``).
    ``False`` drops the per-answer (``_1``/``_2``) behaviour columns and keeps differences and
    symmetric measures (text columns are kept whole).
No leakage.
    Worker ids are never features; folds of the primary protocol are grouped by worker
    (``GroupKFold``); the feature table has no column derived from ``preference``,
    ``likert_*`` or ``adjustment`` other than the target ``label``.
Rows without a label.
    Questions without a preference are skipped when training and scoring and may be labelled.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from tacitly.errors import InputError
from tacitly.evaluate.metrics import bootstrap_ci
from tacitly.signals.behavior.table import TEXT_COLUMNS, feature_columns

__all__ = [
    "FEATURE_SETS",
    "MODEL_KINDS",
    "TUNING_GRIDS",
    "BehaviorRewardConfig",
    "BehaviorRewardModel",
    "CrossValidation",
    "ablation_table",
    "cross_validate",
    "embed_texts",
    "embedding_features",
    "evaluate_predictions",
    "paired_difference_ci",
    "plot_feature_importance",
    "preference_rows",
    "reliability_table",
]

FloatArray = npt.NDArray[np.float64]
StrPath = str | PathLike[str]
ModelKind = Literal["rf", "lgbm", "lr", "blend"]
Protocol = Literal["grouped", "plain"]

MODEL_KINDS: tuple[str, ...] = ("rf", "lgbm", "lr", "blend")
"""Random forest (scikit-learn), gradient boosting (LightGBM), logistic regression, and a
stacked blend of a text model and a behaviour model (see the module's design notes)."""
_BASE_KINDS = ("rf", "lgbm", "lr")
_BLEND_WEIGHTS = ("stack", "mean")

_BEHAVIOR_GROUPS = ("gaze", "fix", "mouse", "agreement", "prev_gaze", "prev_mouse")
FEATURE_SETS: dict[str, tuple[tuple[str, ...], bool]] = {
    "text": (("text",), True),
    "gaze": (("gaze", "fix", "prev_gaze"), False),
    "mouse": (("mouse", "prev_mouse"), False),
    "behavior": (_BEHAVIOR_GROUPS, False),
    "all": ((*_BEHAVIOR_GROUPS, "text"), True),
}
"""Named feature sets: column-name prefixes and whether MiniLM embedding features are added.
``text`` is the text-only baseline, ``gaze``/``mouse`` the single-modality ablations,
``behavior`` both modalities without text, ``all`` behaviour plus text."""

_DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "rf": {"min_samples_leaf": 3},
    "lgbm": {"num_leaves": 8, "min_child_samples": 15},
    "lr": {"C": 0.05},
}
TUNING_GRIDS: dict[str, tuple[dict[str, Any], ...]] = {
    "lr": tuple({"C": c} for c in (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)),
    "rf": tuple({"min_samples_leaf": k} for k in (30, 10, 3, 1)),
    "lgbm": (
        {"num_leaves": 2, "min_child_samples": 80},
        {"num_leaves": 2, "min_child_samples": 40},
        {"num_leaves": 4, "min_child_samples": 80},
        {"num_leaves": 4, "min_child_samples": 40},
        {"num_leaves": 8, "min_child_samples": 40},
        {"num_leaves": 8, "min_child_samples": 15},
        {"num_leaves": 16, "min_child_samples": 15},
    ),
}
"""Candidates tried by ``tune=True``, most regularised first (the first wins a tie)."""

_EMBED_PREFIX = "emb_"
_CONFIG_FILE = "config.json"
_MODEL_FILE = "model.joblib"
_PROBA_CLIP = 1e-6


@dataclass
class BehaviorRewardConfig:
    """Settings of a behaviour reward model; saved as ``config.json`` next to the model."""

    model: str = field(default="lgbm", metadata={"help": "rf, lgbm, lr or blend."})
    feature_set: str = field(default="all", metadata={"help": "A key of FEATURE_SETS."})
    n_components: int = field(
        default=16, metadata={"help": "PCA components of the answers' embedding difference."}
    )
    mirror: bool = field(default=True, metadata={"help": "Train and predict side-symmetric."})
    calibrate: bool = field(default=True, metadata={"help": "Symmetric Platt scaling."})
    calibration_folds: int = field(
        default=5,
        metadata={
            "help": "Worker-grouped folds inside the training rows for the calibration, the "
            "tuning and the blend's stacking."
        },
    )
    worker_standardize: bool = field(
        default=False, metadata={"help": "Rescale behaviour features per worker (own rows)."}
    )
    side_columns: bool = field(
        default=True,
        metadata={
            "help": "Keep per-answer (_1/_2) behaviour columns; False keeps only left-right "
            "differences and symmetric measures."
        },
    )
    n_estimators: int = field(default=500, metadata={"help": "Trees (rf, lgbm)."})
    tune: bool = field(
        default=True,
        metadata={
            "help": "Choose the regularisation (lr: C; rf: leaf size; lgbm: leaves and leaf "
            "size) by worker-grouped cross-validation inside the training rows."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the model's randomness."})
    text_model: str = field(
        default="lr", metadata={"help": "blend: model of the text part (rf, lgbm or lr)."}
    )
    behavior_model: str = field(
        default="lgbm", metadata={"help": "blend: model of the behaviour part (rf, lgbm or lr)."}
    )
    blend_weights: str = field(
        default="stack",
        metadata={
            "help": "blend: 'stack' (a weight per part) or 'mean' (equal weights, one slope)."
        },
    )

    def __post_init__(self) -> None:
        if self.model not in MODEL_KINDS:
            raise InputError(
                f"unknown model {self.model!r}", field="model", expected=", ".join(MODEL_KINDS)
            )
        for name in ("text_model", "behavior_model"):
            if getattr(self, name) not in _BASE_KINDS:
                raise InputError(
                    f"unknown {name} {getattr(self, name)!r}",
                    field=name,
                    expected=", ".join(_BASE_KINDS),
                )
        if self.blend_weights not in _BLEND_WEIGHTS:
            raise InputError(
                f"unknown blend_weights {self.blend_weights!r}",
                field="blend_weights",
                expected=", ".join(_BLEND_WEIGHTS),
            )
        if self.feature_set not in FEATURE_SETS:
            raise InputError(
                f"unknown feature set {self.feature_set!r}",
                field="feature_set",
                expected=", ".join(FEATURE_SETS),
            )
        if self.n_components < 0 or self.n_estimators < 1 or self.calibration_folds < 2:
            raise InputError(
                "n_components must be >= 0, n_estimators >= 1 and calibration_folds >= 2",
                field="config",
            )


# --------------------------------------------------------------------------------------------
# Text embeddings
# --------------------------------------------------------------------------------------------


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def embed_texts(
    texts: Sequence[str],
    *,
    cache_dir: StrPath | None = None,
    batch_size: int = 16,
    max_length: int = 256,
) -> FloatArray:
    """Unit-norm mean-pooled all-MiniLM-L6-v2 embeddings, cached on disk per text.

    Parameters
    ----------
    texts:
        The texts.
    cache_dir:
        Root of tacitly's cache (default: None, :func:`tacitly.backbones.cache_root`); vectors
        live under ``behavior/minilm/``.
    batch_size:
        Texts per encoder call (default: 16).
    max_length:
        Tokens kept per text (default: 256, the length MiniLM was trained on).

    Returns
    -------
    numpy.ndarray
        ``[len(texts), 384]`` float64.

    Examples
    --------
    >>> embed_texts(["a sentence"]).shape  # doctest: +SKIP
    (1, 384)
    """
    from tacitly.backbones import cache_root

    folder = cache_root(cache_dir) / "behavior" / "minilm"
    folder.mkdir(parents=True, exist_ok=True)
    keys = [_text_key(text) for text in texts]
    missing = sorted({k: t for k, t in zip(keys, texts, strict=True)}.items())
    missing = [(k, t) for k, t in missing if not (folder / f"{k}.npy").is_file()]
    if missing:
        vectors = _encode([t for _, t in missing], batch_size=batch_size, max_length=max_length)
        for (key, _), vector in zip(missing, vectors, strict=True):
            temporary = folder / f"{key}.tmp.npy"
            np.save(temporary, vector)
            temporary.replace(folder / f"{key}.npy")
    if not keys:
        return np.zeros((0, 384))
    return np.stack([np.load(folder / f"{key}.npy") for key in keys]).astype(np.float64)


def _encode(texts: Sequence[str], *, batch_size: int, max_length: int) -> FloatArray:
    import torch

    from tacitly.backbones import load_encoder

    encoder, tokenizer = load_encoder()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            states = encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            chunks.append(pooled.to(torch.float64).numpy())
    return np.concatenate(chunks)


def embedding_features(table: pl.DataFrame, *, cache_dir: StrPath | None = None) -> pl.DataFrame:
    """MiniLM features of each question's texts, for the text baseline.

    Parameters
    ----------
    table:
        A feature table with ``query_ID`` and :data:`~tacitly.signals.behavior.TEXT_COLUMNS`.
    cache_dir:
        As for :func:`embed_texts` (default: None).

    Returns
    -------
    pl.DataFrame
        ``query_ID``, ``emb_qsim_1``, ``emb_qsim_2`` (cosine of each answer with the question),
        ``emb_qsim_diff``, ``emb_pair_sim`` (cosine between the answers) and
        ``emb_d{k}_diff`` for k < 384 (left minus right embedding).

    Examples
    --------
    >>> import polars as pl
    >>> t = pl.DataFrame({"query_ID": [1], "user_query": ["Hi"],
    ...     "llm_response_1": ["Hello"], "llm_response_2": ["Hey"]})
    >>> embedding_features(t).width  # doctest: +SKIP
    389
    """
    for name in ("query_ID", *TEXT_COLUMNS):
        if name not in table.columns:
            raise InputError("missing column", source="feature table", field=name)
    texts = [table[name].fill_null("").to_list() for name in TEXT_COLUMNS]
    n = table.height
    vectors = embed_texts([t for column in texts for t in column], cache_dir=cache_dir)
    query, left, right = vectors[:n], vectors[n : 2 * n], vectors[2 * n :]
    sim_1 = (query * left).sum(1)
    sim_2 = (query * right).sum(1)
    columns: dict[str, Any] = {
        "query_ID": table["query_ID"],
        "emb_qsim_1": sim_1,
        "emb_qsim_2": sim_2,
        "emb_qsim_diff": sim_1 - sim_2,
        "emb_pair_sim": (left * right).sum(1),
    }
    difference = left - right
    for k in range(difference.shape[1]):
        columns[f"emb_d{k}_diff"] = difference[:, k]
    return pl.DataFrame(columns)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


@dataclass
class _Layout:
    """Which columns a model reads, and how swapping the answers moves them."""

    columns: list[str]
    embedding_diffs: list[str]
    partner: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sign: FloatArray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        index = {name: i for i, name in enumerate(self.columns)}
        partner = np.arange(len(self.columns))
        sign = np.ones(len(self.columns))
        for i, name in enumerate(self.columns):
            if name.endswith("_1") and name[:-2] + "_2" in index:
                partner[i] = index[name[:-2] + "_2"]
            elif name.endswith("_2") and name[:-2] + "_1" in index:
                partner[i] = index[name[:-2] + "_1"]
            elif name.endswith("_diff"):
                sign[i] = -1.0
        self.partner, self.sign = partner, sign

    def mirror(self, matrix: FloatArray) -> FloatArray:
        return matrix[:, self.partner] * self.sign


def _layout(table: pl.DataFrame, feature_set: str, *, side_columns: bool = True) -> _Layout:
    groups, with_embeddings = FEATURE_SETS[feature_set]
    names = [c for c in feature_columns(table, groups) if not c.startswith(_EMBED_PREFIX)]
    if not side_columns:
        names = [c for c in names if c.startswith("text_") or not c.endswith(("_1", "_2"))]
    if with_embeddings:
        names += [c for c in table.columns if c.startswith("emb_") and not c.startswith("emb_d")]
        diffs = [c for c in table.columns if c.startswith("emb_d")]
    else:
        diffs = []
    if not names and not diffs:
        raise InputError(
            f"the table has no column of feature set {feature_set!r}",
            field="feature_set",
            expected="a table from build_feature_table (with embedding_features for text sets)",
        )
    return _Layout(columns=names, embedding_diffs=diffs)


def _matrix(table: pl.DataFrame, columns: Sequence[str]) -> FloatArray:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(
            f"the table lacks {len(missing)} feature column(s) the model needs",
            field=missing[0],
            expected="a table built like the training table",
        )
    if not columns:
        return np.zeros((table.height, 0))
    return table.select(pl.col(list(columns)).cast(pl.Float64)).to_numpy().astype(np.float64)


def _worker_standardized(
    matrix: FloatArray, columns: Sequence[str], workers: Sequence[str]
) -> FloatArray:
    """Rescale behaviour columns within each worker from that worker's rows (see module)."""
    out = matrix.copy()
    groups = np.asarray(workers)
    behavioural = [
        i for i, name in enumerate(columns) if not name.startswith(("text_", _EMBED_PREFIX))
    ]
    side_pairs: dict[str, list[int]] = {}
    for i in behavioural:
        name = columns[i]
        if name.endswith(("_1", "_2")):
            side_pairs.setdefault(name[:-2], []).append(i)
    for worker in np.unique(groups):
        rows = groups == worker
        block = matrix[rows]
        for i in behavioural:
            name = columns[i]
            if name.endswith("_diff"):
                scale = (
                    np.sqrt(np.nanmean(block[:, i] ** 2)) if np.isfinite(block[:, i]).any() else 0.0
                )
                out[rows, i] = block[:, i] / scale if scale > 0 else block[:, i]
            elif not name.endswith(("_1", "_2")):
                out[rows, i] = _zscore(block[:, i], block[:, i])
        for indices in side_pairs.values():
            pooled = block[:, indices].ravel()
            for i in indices:
                out[rows, i] = _zscore(block[:, i], pooled)
    return out


def _zscore(values: FloatArray, reference: FloatArray) -> FloatArray:
    finite = reference[np.isfinite(reference)]
    if finite.size < 2:
        return values
    scale = float(finite.std())
    centred: FloatArray = values - float(finite.mean())
    return centred / scale if scale > 0 else centred


def _estimator(
    config: BehaviorRewardConfig, seed: int, params: Mapping[str, Any] | None = None
) -> Any:
    """The untrained estimator of ``config.model`` with the defaults overridden by ``params``."""
    chosen = {**_DEFAULT_PARAMS[config.model], **(params or {})}
    if config.model == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=config.n_estimators,
            min_samples_leaf=chosen["min_samples_leaf"],
            max_features="sqrt",
            n_jobs=1,
            random_state=seed,
        )
    if config.model == "lgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(
            n_estimators=config.n_estimators // 2,
            learning_rate=0.02,
            num_leaves=chosen["num_leaves"],
            min_child_samples=chosen["min_child_samples"],
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.5,
            reg_lambda=1.0,
            random_state=seed,
            n_jobs=1,
            verbose=-1,
        )
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=chosen["C"], max_iter=2000),
    )


class BehaviorRewardModel:
    """A fitted behaviour reward model: feature table → P(left answer preferred).

    Parameters
    ----------
    config:
        The settings (default: ``BehaviorRewardConfig()``, LightGBM on all features with its
        regularisation tuned inside the training rows).

    Examples
    --------
    >>> import numpy as np, polars as pl
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=80)
    >>> table = pl.DataFrame({"query_ID": np.arange(80), "user_id": [f"w{i % 8}" for i in range(80)],
    ...     "label": (x > 0).astype(float), "gaze_share_diff": x})
    >>> model = BehaviorRewardModel(BehaviorRewardConfig(model="lr", feature_set="gaze")).fit(table)
    >>> bool((model.predict_proba(table) > 0.5).mean() > 0.4)
    True
    """  # noqa: E501

    def __init__(self, config: BehaviorRewardConfig | None = None) -> None:
        self.config = config if config is not None else BehaviorRewardConfig()
        self.layout: _Layout | None = None
        self.estimator: Any = None
        self.pca: Any = None
        self.slope = 1.0
        self.params: dict[str, Any] = {}
        self.tuning: list[dict[str, Any]] = []
        self.n_train = 0
        self.parts: list[BehaviorRewardModel] = []
        self.weights: FloatArray = np.zeros(0)
        self.part_shares: FloatArray = np.zeros(0)

    # ---- design matrix -------------------------------------------------------------------

    def _design(self, table: pl.DataFrame, *, fit: bool) -> FloatArray:
        assert self.layout is not None
        matrix = _matrix(table, self.layout.columns)
        if self.config.worker_standardize:
            if "user_id" not in table.columns:
                raise InputError("worker_standardize needs a user_id column", field="user_id")
            matrix = _worker_standardized(
                matrix, self.layout.columns, table["user_id"].cast(pl.String).to_list()
            )
        diffs = self.layout.embedding_diffs
        if diffs and self.config.n_components > 0:
            embedded = _matrix(table, diffs)
            if fit:
                from sklearn.decomposition import PCA

                n = min(self.config.n_components, embedded.shape[0], embedded.shape[1])
                # Fitted on the rows and their mirror images, so the components are centred at
                # zero and the projection of a swapped pair is the negated projection.
                self.pca = PCA(n_components=n, random_state=self.config.seed).fit(
                    np.vstack([embedded, -embedded])
                )
            matrix = np.hstack([matrix, self.pca.transform(embedded)])
        return matrix

    def _full_layout(self) -> _Layout:
        assert self.layout is not None
        extra = []
        if self.pca is not None:
            extra = [f"emb_pc{k}_diff" for k in range(self.pca.n_components_)]
        return _Layout(columns=[*self.layout.columns, *extra], embedding_diffs=[])

    @property
    def feature_names(self) -> list[str]:
        """The columns the estimator sees, in order (PCA components as ``emb_pc{k}_diff``)."""
        if self.parts:
            return [name for part in self.parts for name in part.feature_names]
        return self._full_layout().columns

    # ---- fit / predict -------------------------------------------------------------------

    def _fit_raw(
        self,
        matrix: FloatArray,
        labels: FloatArray,
        seed: int,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        layout = self._full_layout()
        x, y = matrix, labels
        if self.config.mirror:
            x = np.vstack([matrix, layout.mirror(matrix)])
            y = np.concatenate([labels, 1.0 - labels])
        estimator = _estimator(self.config, seed, self.params if params is None else params)
        estimator.fit(x, y.astype(int))
        return estimator

    def _raw_proba(self, estimator: Any, matrix: FloatArray) -> FloatArray:
        p = np.asarray(estimator.predict_proba(matrix)[:, 1], dtype=np.float64)
        if self.config.mirror:
            swapped = np.asarray(
                estimator.predict_proba(self._full_layout().mirror(matrix))[:, 1],
                dtype=np.float64,
            )
            p = 0.5 * (p + 1.0 - swapped)
        return p

    def fit(self, table: pl.DataFrame) -> BehaviorRewardModel:
        """Fit on the labelled rows of ``table`` (rows with a null ``label`` are skipped).

        Parameters
        ----------
        table:
            Feature table (with :func:`embedding_features` joined for text feature sets).

        Returns
        -------
        BehaviorRewardModel
            ``self``.

        Raises
        ------
        InputError
            Without a ``label`` column, with fewer than 10 labelled rows or only one class.
        """
        labelled = _labelled(table)
        if self.config.model == "blend":
            return self._fit_blend(labelled)
        self.layout = _layout(
            labelled, self.config.feature_set, side_columns=self.config.side_columns
        )
        self.pca = None
        matrix = self._design(labelled, fit=True)
        labels = labelled["label"].to_numpy().astype(np.float64)
        self.params, self.tuning, oof = {}, [], None
        if self.config.tune:
            oof = self._tune(labelled, matrix, labels)
        self.estimator = self._fit_raw(matrix, labels, self.config.seed)
        self.slope = 1.0
        if self.config.calibrate:
            if oof is None:
                oof = self._inner_predictions(labelled, matrix, labels, self.params)
            self.slope = _symmetric_platt(oof, labels)
        self.n_train = labelled.height
        return self

    def _inner_predictions(
        self,
        labelled: pl.DataFrame,
        matrix: FloatArray,
        labels: FloatArray,
        params: Mapping[str, Any],
    ) -> FloatArray:
        """Out-of-fold raw probabilities from worker-grouped folds inside the training rows."""
        oof = np.full(len(labels), 0.5)
        for train, test in _inner_splits(labelled, self.config.calibration_folds):
            if len(np.unique(labels[train])) < 2:
                continue
            estimator = self._fit_raw(matrix[train], labels[train], self.config.seed + 1, params)
            oof[test] = self._raw_proba(estimator, matrix[test])
        return oof

    def _tune(self, labelled: pl.DataFrame, matrix: FloatArray, labels: FloatArray) -> FloatArray:
        """Pick the candidate of :data:`TUNING_GRIDS` with the lowest inner out-of-fold log loss.

        Log loss rather than accuracy: on a few hundred questions accuracy moves in steps of
        one question and ties often, while log loss also rewards confidence where it is due.
        Returns the winner's out-of-fold predictions (the calibration reuses them).
        """
        from sklearn.metrics import log_loss

        best: tuple[float, dict[str, Any], FloatArray] | None = None
        for candidate in TUNING_GRIDS[self.config.model]:
            oof = self._inner_predictions(labelled, matrix, labels, candidate)
            clipped = np.clip(oof, _PROBA_CLIP, 1.0 - _PROBA_CLIP)
            loss = float(log_loss(labels, clipped, labels=[0.0, 1.0]))
            self.tuning.append({**candidate, "log_loss": loss})
            if best is None or loss < best[0] - 1e-12:
                best = (loss, dict(candidate), oof)
        assert best is not None
        self.params = best[1]
        return best[2]

    # ---- blend ---------------------------------------------------------------------------

    def _part_configs(self) -> list[BehaviorRewardConfig]:
        """The text part and the behaviour part of a blend (those the feature set has)."""
        groups = FEATURE_SETS[self.config.feature_set][0]
        base = {**asdict(self.config), "calibrate": False}
        configs = []
        if "text" in groups:
            configs.append(
                BehaviorRewardConfig(
                    **{**base, "model": self.config.text_model, "feature_set": "text"}
                )
            )
        behavioural = tuple(g for g in groups if g != "text")
        if behavioural:
            name = next(
                key
                for key, (key_groups, embeds) in FEATURE_SETS.items()
                if key_groups == behavioural and not embeds
            )
            configs.append(
                BehaviorRewardConfig(
                    **{**base, "model": self.config.behavior_model, "feature_set": name}
                )
            )
        return configs

    def _fit_blend(self, labelled: pl.DataFrame) -> BehaviorRewardModel:
        configs = self._part_configs()
        labels = labelled["label"].to_numpy().astype(np.float64)
        # The combination is fitted on the parts' out-of-fold logits from worker-grouped folds
        # inside the training rows, so it learns how far each part generalises to new workers.
        oof = np.zeros((labelled.height, len(configs)))
        for train, test in _inner_splits(labelled, self.config.calibration_folds):
            if labelled[train]["label"].n_unique() < 2 or len(train) < 10:
                continue
            for k, config in enumerate(configs):
                part = BehaviorRewardModel(
                    BehaviorRewardConfig(**{**asdict(config), "seed": config.seed + 1})
                ).fit(labelled[train])
                oof[test, k] = _logit(part.predict_proba(labelled[test]))
        self.weights = _blend_weights(oof, labels, how=self.config.blend_weights)
        spread = oof.std(axis=0)
        contribution = np.abs(self.weights) * spread
        total = contribution.sum()
        self.part_shares = (
            contribution / total if total > 0 else np.full(len(configs), 1 / len(configs))
        )
        self.parts = [BehaviorRewardModel(config).fit(labelled) for config in configs]
        self.layout = None
        self.estimator = None
        self.slope = 1.0
        self.n_train = labelled.height
        return self

    def _blend_proba(self, table: pl.DataFrame) -> FloatArray:
        logits = np.column_stack([_logit(part.predict_proba(table)) for part in self.parts])
        return np.asarray(1.0 / (1.0 + np.exp(-(logits @ self.weights))), dtype=np.float64)

    def predict_proba(self, table: pl.DataFrame) -> FloatArray:
        """Calibrated probability that the left answer (response 1) is preferred, per row.

        Parameters
        ----------
        table:
            Feature table with the columns the model was fitted on (labels not needed).

        Returns
        -------
        numpy.ndarray
            One probability per row of ``table``.
        """
        if self.parts:
            return self._blend_proba(table)
        if self.estimator is None or self.layout is None:
            raise InputError("the model is not fitted", expected="fit() or load() first")
        raw = self._raw_proba(self.estimator, self._design(table, fit=False))
        return _apply_slope(raw, self.slope)

    def feature_importance(self) -> dict[str, float]:
        """Importance per feature: impurity (rf), gain (lgbm) or |standardised coefficient| (lr).

        Returns
        -------
        dict[str, float]
            Feature name → importance, normalised to sum to 1. A blend's parts are scaled by
            their share of the combined logit (weight × spread of the part's logits).
        """
        if self.parts:
            return {
                name: share * value
                for part, share in zip(self.parts, self.part_shares, strict=True)
                for name, value in part.feature_importance().items()
            }
        if self.estimator is None:
            raise InputError("the model is not fitted", expected="fit() or load() first")
        if self.config.model == "lr":
            values = np.abs(self.estimator[-1].coef_[0])
        elif self.config.model == "lgbm":
            values = np.asarray(self.estimator.booster_.feature_importance("gain"), dtype=float)
        else:
            values = np.asarray(self.estimator.feature_importances_, dtype=float)
        total = values.sum()
        values = values / total if total > 0 else values
        return dict(zip(self.feature_names, (float(v) for v in values), strict=True))

    # ---- persistence ---------------------------------------------------------------------

    def save(self, folder: StrPath) -> Path:
        """Write ``config.json`` (settings, columns, slope) and ``model.joblib``.

        Parameters
        ----------
        folder:
            Target folder (created).

        Returns
        -------
        Path
            The folder.
        """
        import joblib
        import sklearn

        if self.parts:
            return self._save_blend(Path(folder))
        if self.estimator is None or self.layout is None:
            raise InputError("the model is not fitted", expected="fit() first")
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        joblib.dump({"estimator": self.estimator, "pca": self.pca}, target / _MODEL_FILE)
        meta = {
            "config": asdict(self.config),
            "columns": self.layout.columns,
            "embedding_diffs": self.layout.embedding_diffs,
            "slope": self.slope,
            "params": self.params,
            "tuning": self.tuning,
            "n_train": self.n_train,
            "sklearn_version": sklearn.__version__,
        }
        (target / _CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return target

    def _save_blend(self, target: Path) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        for k, part in enumerate(self.parts):
            part.save(target / f"part{k}")
        meta = {
            "config": asdict(self.config),
            "weights": [float(w) for w in self.weights],
            "part_shares": [float(s) for s in self.part_shares],
            "n_train": self.n_train,
        }
        (target / _CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return target

    @classmethod
    def load(cls, folder: StrPath) -> BehaviorRewardModel:
        """Load a model written by :meth:`save` (``model.joblib`` is a pickle: trusted files only).

        Parameters
        ----------
        folder:
            The folder.

        Returns
        -------
        BehaviorRewardModel
            The fitted model.
        """
        import joblib

        source = Path(folder)
        config_file = source / _CONFIG_FILE
        blend = cls._load_blend(source)
        if blend is not None:
            return blend
        if not config_file.is_file() or not (source / _MODEL_FILE).is_file():
            raise InputError(
                "not a behaviour reward model folder",
                source=source,
                expected=f"{_CONFIG_FILE} and {_MODEL_FILE}",
            )
        try:
            meta = json.loads(config_file.read_text(encoding="utf-8"))
            # Folders saved before tuning existed were not tuned; keep their config truthful.
            settings = {"tune": "params" in meta, **meta["config"]}
            model = cls(BehaviorRewardConfig(**settings))
            model.layout = _Layout(
                columns=list(meta["columns"]), embedding_diffs=list(meta["embedding_diffs"])
            )
            model.slope = float(meta["slope"])
            model.params = dict(meta.get("params", {}))
            model.tuning = list(meta.get("tuning", []))
            model.n_train = int(meta["n_train"])
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"unreadable config: {error}", source=config_file) from error
        stored = joblib.load(source / _MODEL_FILE)
        model.estimator, model.pca = stored["estimator"], stored["pca"]
        return model

    @classmethod
    def _load_blend(cls, source: Path) -> BehaviorRewardModel | None:
        """A blend saved by :meth:`save`, or None when ``source`` holds a single model."""
        config_file = source / _CONFIG_FILE
        if not config_file.is_file() or (source / _MODEL_FILE).is_file():
            return None
        try:
            meta = json.loads(config_file.read_text(encoding="utf-8"))
            if meta.get("config", {}).get("model") != "blend":
                return None
            model = cls(BehaviorRewardConfig(**meta["config"]))
            model.weights = np.asarray(meta["weights"], dtype=np.float64)
            model.part_shares = np.asarray(meta["part_shares"], dtype=np.float64)
            model.n_train = int(meta["n_train"])
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise InputError(f"unreadable config: {error}", source=config_file) from error
        model.parts = [cls.load(source / f"part{k}") for k in range(len(model.weights))]
        return model

    @property
    def needs_embeddings(self) -> bool:
        """Whether the model reads MiniLM features (join :func:`embedding_features` first)."""
        return FEATURE_SETS[self.config.feature_set][1]


def _labelled(table: pl.DataFrame) -> pl.DataFrame:
    if "label" not in table.columns:
        raise InputError("the table has no label column", field="label")
    labelled = table.filter(pl.col("label").is_not_null())
    if labelled.height < 10 or labelled["label"].n_unique() < 2:
        raise InputError(
            f"{labelled.height} labelled row(s) with {labelled['label'].n_unique()} class(es)",
            field="label",
            expected="at least 10 labelled questions with both answers preferred sometimes",
        )
    return labelled


def _inner_splits(
    labelled: pl.DataFrame, n_splits: int
) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    """Folds inside a training set: by worker when there is a ``user_id`` column."""
    from sklearn.model_selection import GroupKFold, KFold

    groups = (
        labelled["user_id"].cast(pl.String).to_numpy() if "user_id" in labelled.columns else None
    )
    k = min(n_splits, len(set(groups)) if groups is not None else labelled.height)
    if k < 2:
        return []
    splitter: Any = GroupKFold(n_splits=k) if groups is not None else KFold(n_splits=k)
    return list(splitter.split(np.zeros(labelled.height), None, groups))


def _blend_weights(logits: FloatArray, labels: FloatArray, *, how: str) -> FloatArray:
    """No-intercept logistic weights of the parts' logits (side symmetry needs no intercept)."""
    if how == "mean":
        slope = _symmetric_platt(1.0 / (1.0 + np.exp(-logits.mean(axis=1))), labels)
        return np.full(logits.shape[1], slope / logits.shape[1])
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(labels)) < 2 or not np.any(logits):
        return np.full(logits.shape[1], 1.0 / logits.shape[1])
    stacker = LogisticRegression(fit_intercept=False, C=1.0, max_iter=1000)
    stacker.fit(logits, labels.astype(int))
    return np.asarray(stacker.coef_[0], dtype=np.float64)


def _logit(p: FloatArray) -> FloatArray:
    clipped = np.clip(p, _PROBA_CLIP, 1.0 - _PROBA_CLIP)
    return np.log(clipped / (1.0 - clipped))


def _apply_slope(p: FloatArray, slope: float) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-slope * _logit(p)))


def _symmetric_platt(p: FloatArray, labels: FloatArray) -> float:
    """Slope ``a`` of ``sigmoid(a · logit p)`` maximising the likelihood (no intercept)."""
    z = _logit(p)
    slope = 1.0
    for _ in range(50):  # Newton steps on a one-parameter concave log-likelihood
        q = 1.0 / (1.0 + np.exp(-slope * z))
        gradient = float(np.sum((labels - q) * z))
        hessian = float(np.sum(q * (1.0 - q) * z * z))
        if hessian <= 1e-12:
            break
        step = gradient / hessian
        slope = min(max(slope + step, 0.01), 100.0)
        if abs(step) < 1e-8:
            break
    return slope


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@dataclass
class CrossValidation:
    """Out-of-fold predictions of one configuration under one protocol."""

    config: BehaviorRewardConfig
    protocol: str
    seeds: tuple[int, ...]
    query_ids: list[int]
    labels: FloatArray
    probabilities: FloatArray
    """``[len(seeds), n]`` out-of-fold probabilities that the left answer is preferred."""

    @property
    def mean_probability(self) -> FloatArray:
        """Probabilities averaged over seeds."""
        return np.asarray(self.probabilities.mean(axis=0), dtype=np.float64)

    @property
    def hits(self) -> FloatArray:
        """Per question, the share of seeds whose prediction was right."""
        predicted = self.probabilities > 0.5
        return np.asarray((predicted == (self.labels > 0.5)).mean(axis=0), dtype=np.float64)


def cross_validate(
    table: pl.DataFrame,
    config: BehaviorRewardConfig,
    *,
    protocol: Protocol = "grouped",
    n_splits: int = 5,
    seeds: Sequence[int] = (0, 1, 2),
) -> CrossValidation:
    """Out-of-fold predictions for every labelled question, repeated over seeds.

    ``grouped`` splits by worker (``GroupKFold`` with shuffling, each worker's questions all in
    one fold: the model is always tested on people it has never seen); ``plain`` is shuffled
    ``KFold`` over questions, the protocol of the IFllm paper, which lets a worker's other
    questions into training.

    Parameters
    ----------
    table:
        Feature table (with embedding features for text sets) with ``user_id`` and ``label``.
    config:
        Model settings; its ``seed`` is replaced by each seed in turn.
    protocol:
        ``"grouped"`` or ``"plain"`` (default: "grouped").
    n_splits:
        Folds (default: 5).
    seeds:
        Seeds of the fold assignment and the model (default: (0, 1, 2)).

    Returns
    -------
    CrossValidation
        The out-of-fold probabilities.

    Examples
    --------
    >>> cv = cross_validate(table, BehaviorRewardConfig())  # doctest: +SKIP
    """
    from sklearn.model_selection import GroupKFold, KFold

    if protocol not in ("grouped", "plain"):
        raise InputError(
            f"unknown protocol {protocol!r}", field="protocol", expected="grouped, plain"
        )
    labelled = _labelled(table)
    if "user_id" not in labelled.columns:
        raise InputError("the table has no user_id column", field="user_id")
    groups = labelled["user_id"].cast(pl.String).to_numpy()
    labels = labelled["label"].to_numpy().astype(np.float64)
    if protocol == "grouped" and len(set(groups)) < n_splits:
        raise InputError(
            f"{len(set(groups))} workers cannot fill {n_splits} worker-grouped folds",
            field="n_splits",
        )
    out = np.zeros((len(seeds), labelled.height))
    for row, seed in enumerate(seeds):
        splitter: Any = (
            GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            if protocol == "grouped"
            else KFold(n_splits=n_splits, shuffle=True, random_state=seed)
        )
        settings = BehaviorRewardConfig(**{**asdict(config), "seed": seed})
        for train, test in splitter.split(labels, labels, groups):
            model = BehaviorRewardModel(settings).fit(labelled[train])
            out[row, test] = model.predict_proba(labelled[test])
    return CrossValidation(
        config=config,
        protocol=protocol,
        seeds=tuple(seeds),
        query_ids=labelled["query_ID"].to_list(),
        labels=labels,
        probabilities=out,
    )


def reliability_table(
    labels: FloatArray, probabilities: FloatArray, *, n_bins: int = 10
) -> pl.DataFrame:
    """Reliability (calibration) table: predicted vs observed frequency per probability bin.

    Parameters
    ----------
    labels:
        1.0 where the left answer was preferred, else 0.0.
    probabilities:
        Predicted probabilities of the same.
    n_bins:
        Equal-width bins over [0, 1] (default: 10).

    Returns
    -------
    pl.DataFrame
        ``low``, ``high``, ``n``, ``mean_predicted``, ``observed`` for non-empty bins.

    Examples
    --------
    >>> import numpy as np
    >>> reliability_table(np.array([1.0, 0.0, 1.0]), np.array([0.9, 0.15, 0.95]), n_bins=2).rows()
    [(0.0, 0.5, 1, 0.15, 0.0), (0.5, 1.0, 2, 0.925, 1.0)]
    """
    bins = np.minimum((probabilities * n_bins).astype(int), n_bins - 1)
    frame = pl.DataFrame({"bin": bins, "p": probabilities, "y": labels})
    return (
        frame.group_by("bin")
        .agg(
            pl.len().alias("n"),
            pl.col("p").mean().alias("mean_predicted"),
            pl.col("y").mean().alias("observed"),
        )
        .sort("bin")
        .select(
            (pl.col("bin") / n_bins).alias("low"),
            ((pl.col("bin") + 1) / n_bins).alias("high"),
            pl.col("n").cast(pl.Int64),
            "mean_predicted",
            "observed",
        )
    )


def evaluate_predictions(
    labels: FloatArray,
    probabilities: FloatArray,
    *,
    lengths: FloatArray | None = None,
    hits: FloatArray | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy (with a bootstrap interval), AUC, Brier score, ECE and accuracy by length.

    Parameters
    ----------
    labels:
        1.0 where the left answer was preferred, else 0.0.
    probabilities:
        Predicted probabilities of the same.
    lengths:
        A length per question (e.g. mean characters of the two answers) for accuracy by
        tercile (default: None, no terciles).
    hits:
        Per-question correctness to bootstrap instead of ``probabilities > 0.5`` (e.g. averaged
        over seeds) (default: None).
    seed:
        Bootstrap seed (default: 0).

    Returns
    -------
    dict
        ``n``, ``accuracy``, ``accuracy_ci95``, ``auc``, ``brier``, ``ece`` and, with
        ``lengths``, ``accuracy_by_length_tercile`` (short, middle, long).

    Examples
    --------
    >>> import numpy as np
    >>> m = evaluate_predictions(np.array([1.0, 0.0, 1.0, 0.0]), np.array([0.8, 0.3, 0.4, 0.2]))
    >>> m["accuracy"], m["auc"]
    (0.75, 1.0)
    """
    from sklearn.metrics import brier_score_loss, roc_auc_score

    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    if y.size == 0 or y.shape != p.shape:
        raise InputError("labels and probabilities must be non-empty and of equal length")
    correct = (
        np.asarray(hits, dtype=np.float64)
        if hits is not None
        else ((p > 0.5) == (y > 0.5)).astype(float)
    )
    bins = reliability_table(y, p)
    ece = float(
        (
            bins["n"].to_numpy()
            * np.abs(bins["mean_predicted"].to_numpy() - bins["observed"].to_numpy())
        ).sum()
        / y.size
    )
    low, high = bootstrap_ci(correct, n=2000, seed=seed)
    result: dict[str, Any] = {
        "n": int(y.size),
        "accuracy": float(correct.mean()),
        "accuracy_ci95": [low, high],
        "auc": float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else math.nan,
        "brier": float(brier_score_loss(y, p)),
        "ece": ece,
    }
    if lengths is not None:
        edges = np.quantile(lengths, [1 / 3, 2 / 3])
        tercile = np.searchsorted(edges, lengths, side="right")
        result["accuracy_by_length_tercile"] = [
            float(correct[tercile == t].mean()) if (tercile == t).any() else math.nan
            for t in range(3)
        ]
    return result


def paired_difference_ci(
    first: FloatArray, second: FloatArray, *, n: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``first - second`` (per-question hits) and its percentile bootstrap interval.

    Parameters
    ----------
    first, second:
        Per-question correctness of two models on the same questions.
    n:
        Resamples (default: 2000).
    seed:
        Seed (default: 0).

    Returns
    -------
    tuple of float
        ``(difference, low, high)``.

    Examples
    --------
    >>> import numpy as np
    >>> paired_difference_ci(np.ones(10), np.zeros(10))
    (1.0, 1.0, 1.0)
    """
    delta = np.asarray(first, dtype=np.float64) - np.asarray(second, dtype=np.float64)
    low, high = bootstrap_ci(delta, n=n, seed=seed)
    return float(delta.mean()), low, high


def _lengths_of(table: pl.DataFrame, query_ids: Sequence[int]) -> FloatArray | None:
    if not {"llm_response_1", "llm_response_2"} <= set(table.columns):
        return None
    lengths = table.select(
        "query_ID",
        (
            (
                pl.col("llm_response_1").fill_null("").str.len_chars()
                + pl.col("llm_response_2").fill_null("").str.len_chars()
            )
            / 2.0
        ).alias("length"),
    )
    ordered = pl.DataFrame({"query_ID": list(query_ids)}).join(
        lengths, on="query_ID", how="left", maintain_order="left"
    )
    return ordered["length"].to_numpy().astype(np.float64)


def ablation_table(
    table: pl.DataFrame,
    *,
    models: Sequence[str] = MODEL_KINDS,
    feature_sets: Sequence[str] = ("text", "gaze", "mouse", "behavior", "all"),
    protocols: Sequence[str] = ("grouped", "plain"),
    n_splits: int = 5,
    seeds: Sequence[int] = (0, 1, 2),
    base: BehaviorRewardConfig | None = None,
    reference: str = "text",
) -> tuple[pl.DataFrame, dict[tuple[str, str, str], CrossValidation]]:
    """Cross-validate every model × feature set × protocol; compare each with ``reference``.

    Parameters
    ----------
    table:
        Feature table with embedding features joined.
    models, feature_sets, protocols:
        What to run (defaults: all models; text, gaze, mouse, behavior, all; both protocols).
    n_splits, seeds:
        As for :func:`cross_validate` (defaults: 5, (0, 1, 2)).
    base:
        Other settings (default: ``BehaviorRewardConfig()``).
    reference:
        Feature set every row is compared with, same model and protocol (default: "text").

    Returns
    -------
    tuple
        The table (``protocol``, ``model``, ``features``, ``n``, ``accuracy``, ``ci_low``,
        ``ci_high``, ``auc``, ``brier``, ``ece``, ``acc_short``, ``acc_mid``, ``acc_long``,
        ``vs_reference``, ``vs_low``, ``vs_high``) and the cross-validations by
        ``(protocol, model, features)``.

    Examples
    --------
    >>> rows, runs = ablation_table(table, models=("rf",))  # doctest: +SKIP
    """
    settings = base if base is not None else BehaviorRewardConfig()
    runs: dict[tuple[str, str, str], CrossValidation] = {}
    records = []
    for protocol in protocols:
        for model in models:
            for features in feature_sets:
                config = BehaviorRewardConfig(
                    **{**asdict(settings), "model": model, "feature_set": features}
                )
                run = cross_validate(
                    table,
                    config,
                    protocol=protocol,  # type: ignore[arg-type]
                    n_splits=n_splits,
                    seeds=seeds,
                )
                runs[(protocol, model, features)] = run
            for features in feature_sets:
                run = runs[(protocol, model, features)]
                metrics = evaluate_predictions(
                    run.labels,
                    run.mean_probability,
                    lengths=_lengths_of(table, run.query_ids),
                    hits=run.hits,
                )
                ref = runs.get((protocol, model, reference))
                diff = (
                    paired_difference_ci(run.hits, ref.hits) if ref is not None else (math.nan,) * 3
                )
                terciles = metrics.get("accuracy_by_length_tercile", [math.nan] * 3)
                records.append(
                    {
                        "protocol": protocol,
                        "model": model,
                        "features": features,
                        "n": metrics["n"],
                        "accuracy": metrics["accuracy"],
                        "ci_low": metrics["accuracy_ci95"][0],
                        "ci_high": metrics["accuracy_ci95"][1],
                        "auc": metrics["auc"],
                        "brier": metrics["brier"],
                        "ece": metrics["ece"],
                        "acc_short": terciles[0],
                        "acc_mid": terciles[1],
                        "acc_long": terciles[2],
                        "vs_reference": diff[0],
                        "vs_low": diff[1],
                        "vs_high": diff[2],
                    }
                )
    return pl.DataFrame(records), runs


# --------------------------------------------------------------------------------------------
# Outputs: plot, preference rows
# --------------------------------------------------------------------------------------------


def plot_feature_importance(model: BehaviorRewardModel, path: StrPath, *, top: int = 25) -> Path:
    """Save a horizontal bar chart of the ``top`` most important features as a PNG.

    Parameters
    ----------
    model:
        A fitted model.
    path:
        The PNG file.
    top:
        How many features to show (default: 25).

    Returns
    -------
    Path
        The file written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = sorted(model.feature_importance().items(), key=lambda item: item[1])[-top:]
    figure, axes = plt.subplots(figsize=(7, 0.28 * len(ranked) + 1.2))
    axes.barh([name for name, _ in ranked], [value for _, value in ranked], color="#3b6ea5")
    axes.set_xlabel("importance (normalised)")
    axes.set_title(f"{model.config.model} on '{model.config.feature_set}' features")
    figure.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=120)
    plt.close(figure)
    return target


def preference_rows(
    table: pl.DataFrame, probabilities: FloatArray | Mapping[int, float]
) -> list[dict[str, Any]]:
    """Preference rows labelled by the model, weighted by its confidence, for (robust) DPO.

    For each question the answer the model thinks was preferred is ``chosen``; ``weight`` is
    the model's probability of that choice (``max(p, 1 - p)``, between 0.5 and 1). Use
    out-of-fold probabilities (:func:`cross_validate`) for questions the model was trained on.

    Parameters
    ----------
    table:
        Feature table with ``query_ID`` and the question's texts.
    probabilities:
        P(left preferred) per row of ``table``, or by ``query_ID`` (rows without one are
        skipped).

    Returns
    -------
    list of dict
        ``prompt``, ``chosen``, ``rejected`` (conversations), ``weight``, and ``meta``
        (``query_ID``, ``user_id``, ``p_left``, ``chosen_position``, ``human_position``
        when the worker gave a preference).

    Examples
    --------
    >>> import numpy as np, polars as pl
    >>> t = pl.DataFrame({"query_ID": [3], "user_id": ["w"], "label": [None],
    ...     "user_query": ["Hi?"], "llm_response_1": ["A"], "llm_response_2": ["B"]})
    >>> row = preference_rows(t, np.array([0.2]))[0]
    >>> row["chosen"][0]["content"], round(row["weight"], 2)
    ('B', 0.8)
    """
    if isinstance(probabilities, Mapping):
        p_of = [probabilities.get(q) for q in table["query_ID"].to_list()]
    else:
        values = np.asarray(probabilities, dtype=np.float64)
        if values.shape != (table.height,):
            raise InputError(
                f"{values.size} probabilities for {table.height} rows", field="probabilities"
            )
        p_of = [float(v) for v in values]
    rows = []
    labels = table["label"].to_list() if "label" in table.columns else [None] * table.height
    users = table["user_id"].to_list() if "user_id" in table.columns else [None] * table.height
    for record, p, label, user in zip(
        table.select("query_ID", *TEXT_COLUMNS).iter_rows(named=True),
        p_of,
        labels,
        users,
        strict=True,
    ):
        if p is None or not math.isfinite(p):
            continue
        left = p >= 0.5
        chosen, rejected = (
            ("llm_response_1", "llm_response_2") if left else ("llm_response_2", "llm_response_1")
        )
        rows.append(
            {
                "prompt": [{"role": "user", "content": record["user_query"] or ""}],
                "chosen": [{"role": "assistant", "content": record[chosen] or ""}],
                "rejected": [{"role": "assistant", "content": record[rejected] or ""}],
                "weight": float(max(p, 1.0 - p)),
                "meta": {
                    "source": "ifllm-behavior",
                    "query_ID": record["query_ID"],
                    "user_id": user,
                    "p_left": float(p),
                    "chosen_position": 1 if left else 2,
                    "human_position": None if label is None else (1 if label > 0.5 else 2),
                },
            }
        )
    return rows
